// Ratios, target verdicts, limit notes, Markdown rendering, percentiles and the chart's inputs.
import { describe, expect, test } from '@jest/globals';
import { gnuplotScript, seriesData } from '../../bench/chart.js';
import { formatNumber, metricTable, renderMarkdown, summaryTable } from '../../bench/markdown.js';
import { bestPeer, evaluate, limitNote, type Metric } from '../../bench/report.js';
import { distributionPoints, percentile, summarize } from '../../bench/stats.js';

const rps = (values: Record<string, number | null>, extra: Partial<Metric> = {}): Metric => ({
  id: 'http-rps',
  section: 'HTTP',
  title: 'HTTP requests/s',
  unit: 'req/s',
  better: 'higher',
  digits: 0,
  reference: 'direct',
  peers: ['haproxy', 'nginx'],
  rows: Object.entries(values).map(([path, value]) => ({
    path,
    value,
    errors: 0,
    usage: { cpuCores: 0.5, machineBusy: 0.5 },
  })),
  target: { path: 'detour', op: '>=', factor: 1.0, of: 'nginx' },
  ...extra,
});

describe('ratios and targets', () => {
  test('ratios to direct and to the best peer (higher is better)', () => {
    const m = evaluate(rps({ direct: 20000, detour: 9000, haproxy: 8000, nginx: 10000 }), 2);
    const detour = m.rows.find((r) => r.path === 'detour')!;
    expect(detour.vsReference).toBeCloseTo(0.45);
    expect(detour.vsBestPeer).toEqual({ ratio: 0.9, peer: 'nginx' });
    expect(m.verdict).toMatchObject({ status: 'miss', target: '≥ 1× nginx' });
    expect(m.verdict?.actual).toBeCloseTo(0.9);
    expect(m.verdict?.limitedBy).toContain('detour used 50% of a core');
  });

  test('the best peer of a lower-is-better figure is the smallest', () => {
    const m = rps({ direct: 1, detour: 3, haproxy: 2, nginx: 4 }, { better: 'lower' });
    expect(bestPeer(m)?.path).toBe('haproxy');
  });

  test('pass on an upper limit, and an absolute target', () => {
    const p99 = rps(
      { direct: 1, detour: 1.4, haproxy: 1, nginx: 1 },
      { better: 'lower', target: { path: 'detour', op: '<=', factor: 1.5, of: 'nginx' } },
    );
    expect(evaluate(p99, 2).verdict).toMatchObject({ status: 'pass' });
    const cpu = rps(
      { detour: 0.12, haproxy: 0.05 },
      { better: 'lower', reference: undefined, target: { path: 'detour', op: '<=', factor: 0.1 } },
    );
    const v = evaluate(cpu, 2).verdict!;
    expect(v).toMatchObject({ status: 'miss', actual: 0.12, target: '≤ 0.1 req/s' });
  });

  test('a miss of the process’s own cost is explained by the metric’s note alone', () => {
    const rss = rps(
      { detour: 140, haproxy: 15, nginx: 13 },
      {
        better: 'lower',
        reference: undefined,
        ownCost: true,
        note: 'detour holds 130 MB idle',
        target: { path: 'detour', op: '<=', factor: 60 },
      },
    );
    expect(evaluate(rss, 2).verdict).toEqual({
      status: 'miss',
      actual: 140,
      target: '≤ 60 req/s',
      limitedBy: 'detour holds 130 MB idle',
    });
  });

  test('a failed path gives no ratios and an unknown verdict, never a pass', () => {
    const m = rps({ direct: 20000, detour: 9000, haproxy: 8000, nginx: 10000 });
    m.rows[1] = { path: 'detour', value: null, failure: '300 of 1000 failed', errors: 300 };
    const e = evaluate(m, 2);
    expect(e.rows[1]).toMatchObject({ vsReference: null, vsBestPeer: null });
    expect(e.verdict).toMatchObject({ status: 'unknown', actual: null });
  });

  test('a failed peer is not the best peer', () => {
    const m = rps({ direct: 20000, detour: 9000, haproxy: 8000, nginx: 10000 });
    m.rows[3] = { path: 'nginx', value: null, failure: 'no figure' };
    expect(bestPeer(m)?.path).toBe('haproxy');
    expect(evaluate(m, 2).verdict?.status).toBe('unknown');
  });

  test('limit notes say whether the process or the machine is saturated', () => {
    expect(limitNote('detour', { cpuCores: 0.97, machineBusy: 0.8 }, 2)).toMatch(
      /^detour is CPU-bound: its process used 97% of a core; the machine's 2 cores were 80% busy$/,
    );
    expect(limitNote('detour', { cpuCores: 0.6, machineBusy: 0.95 }, 2)).toMatch(
      /the cores are saturated \(95% busy.*detour got 60% of a core/,
    );
    expect(limitNote('detour', { cpuCores: 0.2, machineBusy: 0.3 }, 2)).toMatch(/neither is saturated/);
    expect(limitNote('detour', undefined, 2)).toBe('no process figures for detour');
  });
});

describe('Markdown', () => {
  test('numbers are grouped by thousands', () => {
    expect(formatNumber(15946.25, 0)).toBe('15 946');
    expect(formatNumber(0.1234, 3)).toBe('0.123');
    expect(formatNumber(1234567.891, 2)).toBe('1 234 567.89');
    expect(formatNumber(NaN, 2)).toBe('—');
  });

  test('a metric table: one row per path with figure, ratios, errors and the verdict on the target row', () => {
    const table = metricTable(evaluate(rps({ direct: 20000, detour: 9000, haproxy: 8000, nginx: 10000 }), 2));
    expect(table.split('\n')).toEqual([
      '#### HTTP requests/s (req/s, higher is better)',
      '',
      '| path | req/s | × direct | × best peer | errors | target |',
      '|---|---:|---:|---:|---:|---|',
      '| direct | 20 000 | 1.00× | 2.00× nginx | 0 |  |',
      '| detour | 9 000 | 0.45× | 0.90× nginx | 0 | ≥ 1× nginx: **miss** (0.90×) |',
      '| haproxy | 8 000 | 0.40× | 0.80× nginx | 0 |  |',
      '| nginx | 10 000 | 0.50× | 1.00× nginx | 0 |  |',
      '',
      "Limited by: detour used 50% of a core, the machine's 2 cores were 50% busy: neither is saturated, so the time goes to waiting (latency inside detour).",
    ]);
  });

  test('a failed row says why', () => {
    const m = rps({ direct: 20000, detour: 9000, haproxy: 8000, nginx: 10000 });
    m.rows[2] = { path: 'haproxy', value: null, failure: '12 of 1000 failed', errors: 12 };
    expect(metricTable(evaluate(m, 2))).toContain('| haproxy | failed: 12 of 1000 failed | — | — | 12 |  |');
  });

  test('summary and the whole document', () => {
    const metrics = [evaluate(rps({ direct: 2, detour: 1, haproxy: 1, nginx: 1 }), 2)];
    expect(summaryTable(metrics)).toContain('| HTTP requests/s | ≥ 1× nginx | pass (1.00×) |  |');
    const md = renderMarkdown(
      {
        date: '2026-11-25T15:00:00Z',
        machine: '2 cores',
        durationS: 8,
        quick: false,
        rate: 1000,
        notes: ['noisy'],
      },
      metrics,
    );
    expect(md).toMatch(/^# detour bench — 2026-11-25T15:00:00Z\n/);
    expect(md).toContain('Machine: 2 cores. Full run: 8 s per tool and path, fixed rate 1000 req/s.');
    expect(md).toContain('- noisy');
    expect(md).toContain('## Targets');
    expect(md).toContain('## HTTP\n\n#### HTTP requests/s');
    expect(summaryTable([])).toMatch(/No targets/);
  });
});

describe('percentiles and the latency chart', () => {
  test('nearest-rank percentiles', () => {
    const s = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(s, 50)).toBe(50);
    expect(percentile(s, 99)).toBe(99);
    expect(percentile(s, 100)).toBe(100);
    expect(percentile(s, 0)).toBe(1);
    expect(percentile([], 50)).toBeNaN();
    expect(summarize([5, 1, 3])).toEqual({ count: 3, p50: 3, p90: 5, p99: 5, p999: 5, max: 5 });
  });

  test('distribution points go as deep into the tail as the samples allow', () => {
    const samples = Array.from({ length: 1000 }, (_, i) => i + 1);
    const points = distributionPoints(samples, 1);
    expect(points.map(([p]) => Number(p.toFixed(3)))).toEqual([0, 90, 99, 99.9, 100]);
    expect(points.at(-1)).toEqual([100, 1000]);
    expect(distributionPoints([])).toEqual([]);
  });

  test('chart data: x = 1/(1 − percentile), latency in ms, the max left out', () => {
    const lines = seriesData([1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000]).split('\n');
    expect(lines[0]).toBe('1.00000 1.00000');
    expect(lines.some((l) => l.startsWith('Infinity'))).toBe(false);
  });

  test('the gnuplot script: one panel per measure, one line per path, PNG output', () => {
    const script = gnuplotScript(
      [
        { title: 'HTTP', series: { direct: [1], detour: [2] } },
        { title: 'TCP', series: { direct: [1] } },
      ],
      [{ direct: '/r/0-direct.dat', detour: '/r/0-detour.dat' }, { direct: '/r/1-direct.dat' }],
      '/r/latency.png',
    );
    expect(script).toContain('set output "/r/latency.png"');
    expect(script).toContain('set multiplot layout 1,2');
    expect(script).toContain('"99%%" 100');
    expect(script).toMatch(
      /set title "HTTP"\nplot "\/r\/0-direct.dat" using 1:2 .*title "direct", "\/r\/0-detour.dat"/,
    );
    expect(script).toMatch(/set title "TCP"\nplot "\/r\/1-direct.dat"/);
  });
});

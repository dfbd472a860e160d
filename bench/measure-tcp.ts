// TCP measures: iperf3 throughput (1 and 4 streams), and request latency at the fixed rate over plain
// TCP forwarding (detour: a Type: TCP destination; haproxy mode tcp; nginx stream).
import { parseIperf3 } from './parse-iperf3.js';
import {
  client,
  fixedRate,
  ms,
  PEERS,
  row,
  sampled,
  skipped,
  wholeSeconds,
  type MeasureContext,
  type MeasureOutput,
} from './measure-kit.js';
import type { Metric, Row } from './report.js';

/** h2load logs latencies in µs: an added latency below that is "not measurable", not 0 (ratios need it). */
const LATENCY_RESOLUTION_MS = 0.001;

export async function tcpThroughput(ctx: MeasureContext): Promise<MeasureOutput> {
  const raw: Record<string, unknown> = {};
  const metrics: Metric[] = [];
  for (const streams of [1, 4]) {
    const rows: Row[] = [];
    for (const p of ctx.world.paths) {
      if (!p.iperf) {
        rows.push(skipped(p.name, p.tcpMissing ?? 'no TCP forward'));
        continue;
      }
      const iperf = p.iperf;
      const run = await sampled(p, async () => {
        const d = wholeSeconds(ctx.opts.durationS);
        const argv = [
          'iperf3',
          '-c',
          iperf.host,
          '-p',
          String(iperf.port),
          '-t',
          String(d),
          '--json',
          '--connect-timeout',
          '3000',
        ];
        if (streams > 1) argv.push('-P', String(streams));
        for (let attempt = 1; ; attempt++) {
          // iperf3 -s serves one test at a time; one that is still being torn down answers "busy".
          const r = await client(ctx, p, argv, d);
          try {
            return parseIperf3(r.stdout);
          } catch (e) {
            if (attempt >= 3 || !/busy/.test((e as Error).message)) throw e;
            await new Promise((res) => setTimeout(res, 1000));
          }
        }
      });
      raw[`${p.name}-${streams}`] = run.result ?? run.failure;
      rows.push(row(p.name, run.result ? run.result.bitsPerSecond / 1e9 : null, run));
      ctx.log(
        `tcp ${streams} stream(s) ${p.name}: ${run.result ? (run.result.bitsPerSecond / 1e9).toFixed(2) + ' Gbit/s' : run.failure}`,
      );
    }
    metrics.push({
      id: `tcp-throughput-${streams}`,
      section: 'TCP (iperf3)',
      title: `TCP throughput, ${streams} stream${streams > 1 ? 's' : ''}`,
      unit: 'Gbit/s',
      better: 'higher',
      digits: 2,
      rows,
      reference: 'direct',
      peers: PEERS,
      target: { path: 'detour', op: '>=', factor: 0.8, of: 'haproxy' },
    });
  }
  return { metrics, raw };
}

export async function tcpLatency(ctx: MeasureContext): Promise<MeasureOutput> {
  const raw: Record<string, unknown> = {};
  const samples: Record<string, number[]> = {};
  const p50: Row[] = [];
  const p99: Row[] = [];
  for (const p of ctx.world.paths) {
    if (!p.tcpHttp) {
      p50.push(skipped(p.name, p.tcpMissing ?? 'no TCP forward'));
      p99.push(skipped(p.name, p.tcpMissing ?? 'no TCP forward'));
      continue;
    }
    const target = p.tcpHttp;
    const run = await sampled(p, () => fixedRate(ctx, p, target, 'tcp'));
    const s = run.result;
    raw[p.name] = s ? { ...s.summary, latencyUs: s.latency } : run.failure;
    if (s) samples[p.name] = s.log.latenciesUs;
    p50.push(row(p.name, s ? ms(s.latency.p50) : null, run, s?.summary.errors, s?.summary.total));
    p99.push(row(p.name, s ? ms(s.latency.p99) : null, run, s?.summary.errors, s?.summary.total));
    ctx.log(
      `tcp latency ${p.name}: ${s ? `p50 ${ms(s.latency.p50).toFixed(3)} ms, p99 ${ms(s.latency.p99).toFixed(3)} ms` : run.failure}`,
    );
  }
  const direct = p50.find((r) => r.path === 'direct')?.value ?? null;
  const added: Row[] = p50
    .filter((r) => r.path !== 'direct')
    .map((r) => ({
      ...r,
      value: r.value === null || direct === null ? null : Math.max(LATENCY_RESOLUTION_MS, r.value - direct),
    }));
  const common = {
    section: `TCP forwarding: request latency at ${ctx.opts.rate} req/s (h2load over plain TCP)`,
    unit: 'ms',
    better: 'lower' as const,
    digits: 3,
    peers: PEERS,
  };
  return {
    raw,
    samples,
    metrics: [
      { ...common, id: 'tcp-latency-p50', title: 'TCP request latency p50', rows: p50, reference: 'direct' },
      { ...common, id: 'tcp-latency-p99', title: 'TCP request latency p99', rows: p99, reference: 'direct' },
      {
        ...common,
        id: 'tcp-added-p50',
        title: 'TCP added latency p50 (p50 − direct p50)',
        rows: added,
        target: { path: 'detour', op: '<=', factor: 1.5, of: 'haproxy' },
      },
    ],
  };
}

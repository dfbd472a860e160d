// The benchmark harness end to end, short (--quick): builds its own lab, measures every path, writes
// results.json, results.md and latency.png, and tears the lab down. Checks that every path produced a
// real figure (errors, if any, at most 1%) — a path that breaks (e.g. stops injecting Authorization, so the upstream
// answers 401) fails this test. Asserts nothing about speed. Needs root and `npm run build`.
import { describe, expect, test } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listNamespaces } from '../lab/teardown.js';
import { REPO } from './helpers.js';

interface Row {
  path: string;
  value: number | null;
  errors?: number;
  failure?: string;
}
interface Metric {
  id: string;
  rows: Row[];
  verdict?: { status: string };
}

const run = promisify(execFile);
// A forwarder idle for 1 s may truly use no CPU tick.
const ZERO_ALLOWED = new Set(['cpu-idle']);

describe('npm run bench -- --quick', () => {
  test('every path gives real numbers; results.json, results.md and latency.png are written', async () => {
    const script = join(REPO, 'dist', 'bench', 'run.js');
    expect(existsSync(script) ? script : 'dist/bench/run.js missing: run `npm run build`').toBe(script);
    const out = mkdtempSync(join(tmpdir(), 'detour-bench-smoke-'));
    let benchPid: number | undefined;
    try {
      const child = run(process.execPath, [script, '--quick', '--out', out], {
        timeout: 170_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      benchPid = child.child.pid;
      const r = await child.catch((e: { code?: number; stdout?: string; stderr?: string }) => {
        throw new Error(`bench exited with ${e.code}:\n${e.stderr ?? ''}\n${e.stdout ?? ''}`);
      });
      expect(r.stdout).toContain('## Targets');

      const [dir] = readdirSync(out);
      const results = join(out, dir ?? 'missing');
      for (const f of ['results.json', 'results.md', 'latency.png', 'dataplane.log'])
        expect(existsSync(join(results, f)) ? f : `${f} missing`).toBe(f);
      expect(statSync(join(results, 'latency.png')).size).toBeGreaterThan(5000);
      expect(readFileSync(join(results, 'results.md'), 'utf8')).toBe(r.stdout);

      const json = JSON.parse(readFileSync(join(results, 'results.json'), 'utf8')) as { metrics: Metric[] };
      const byId = new Map(json.metrics.map((m) => [m.id, m]));
      const paths = (id: string): string[] => (byId.get(id)?.rows ?? []).map((r) => r.path);
      const all = ['direct', 'detour', 'haproxy', 'nginx'];
      for (const id of [
        'tcp-throughput-1',
        'tcp-throughput-4',
        'tcp-latency-p50',
        'http-rps',
        'http-rate-p99',
        'http-connections',
      ])
        expect([id, paths(id)]).toEqual([id, all]);
      expect(paths('cpu-at 1000 req/s')).toEqual(['detour', 'haproxy', 'nginx']);
      expect(paths('dns-qps')).toEqual(['detour', 'dnsmasq']);

      const problems = json.metrics.flatMap((m) =>
        m.rows
          .filter(
            (row) =>
              row.failure ||
              !(
                typeof row.value === 'number' &&
                (row.value > 0 || (ZERO_ALLOWED.has(m.id) && row.value === 0))
              ),
          )
          .map((row) => `${m.id}/${row.path}: ${row.failure ?? row.value}`),
      );
      expect(problems).toEqual([]);
      // Where the tool counts errors, they were counted (a row with more than 1% errors is a failure above).
      const counted = json.metrics.flatMap((m) => m.rows.filter((row) => row.errors !== undefined));
      expect(counted.length).toBeGreaterThan(20);
      for (const row of counted)
        expect(Number.isInteger(row.errors) && (row.errors as number) >= 0).toBe(true);
      // Every target got a verdict from real figures.
      for (const m of json.metrics.filter((x) => x.verdict))
        expect([m.id, m.verdict?.status]).not.toEqual([m.id, 'unknown']);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    // The bench's lab (named after its pid; other labs may come and go meanwhile) is gone again.
    expect(benchPid).toBeDefined();
    expect(listNamespaces().filter((n) => n.startsWith(`dtlab-${benchPid}-`))).toEqual([]);
  }, 180_000);
});

// `npm run bench`: builds the lab, measures every path side by side, writes results.json, results.md
// and latency.png to bench/results/<timestamp>/, prints the Markdown, and tears the lab down (also on
// failure, Ctrl-C, or when the run overstays its time limit).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { writeChartInputs, type ChartPanel } from './chart.js';
import { renderMarkdown, type RunInfo } from './markdown.js';
import { RUNNERS, type MeasureOutput } from './measures.js';
import { MEASURES, parseOptions, UsageError, type BenchOptions } from './options.js';
import { rssBytes, sampleUsage } from './proc.js';
import { profileMarkdown, summarizeProfile, type CpuProfile } from './profile.js';
import { evaluate, type Metric } from './report.js';
import { buildWorld, PEERS, repoRoot, type World } from './world.js';

const t0 = performance.now();
const log = (line: string): void =>
  void process.stderr.write(`bench [${((performance.now() - t0) / 1000).toFixed(1)} s]: ${line}\n`);

function timestamp(d: Date): string {
  return d.toISOString().replace(/[:]/g, '-').replace(/\..*$/, 'Z');
}

function version(argv: string[], re: RegExp): string {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  return re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? '?';
}

function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} cores (${cpus[0]?.model.trim() ?? '?'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} at start`;
}

/** Time limit of the whole run: set-up, every measure on every path, teardown; generous on purpose. */
export function timeLimitS(opts: BenchOptions): number {
  const perPath = opts.durationS * 3 + 10;
  return 120 + opts.only.length * 2 * 4 * perPath;
}

async function warmUp(world: World, opts: BenchOptions): Promise<void> {
  const seconds = Math.max(1, Math.round(opts.warmupS));
  for (const p of world.paths) {
    const headers = p.http.headers.flatMap((h) => ['-H', h]);
    await world.lab.run('app', ['wrk', '-t1', '-c8', `-d${seconds}s`, ...headers, p.http.url], {
      uid: p.uid,
      timeoutMs: seconds * 3000 + 20_000,
      reject: false,
    });
  }
}

/** RSS and CPU use of each forwarder with no load, after the warm-up. */
async function idleFigures(world: World, seconds: number): Promise<Metric[]> {
  const forwarders = world.paths.filter((p) => p.name !== 'direct');
  const samplers = forwarders.map((p) => sampleUsage(() => p.pids()));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const usage = samplers.map((s) => s.stop());
  const common = {
    section: 'Forwarders idle (after warm-up, no load)',
    better: 'lower' as const,
    peers: [...PEERS],
  };
  return [
    {
      ...common,
      id: 'rss-idle',
      title: 'Forwarder RSS, idle',
      unit: 'MB',
      digits: 1,
      rows: forwarders.map((p) => ({ path: p.name, value: rssBytes(p.pids()) / 2 ** 20 })),
    },
    {
      ...common,
      id: 'cpu-idle',
      title: 'Forwarder CPU, idle',
      unit: '% of a core',
      digits: 2,
      rows: forwarders.map((p, i) => {
        const u = usage[i]!;
        return { path: p.name, value: u.wallSeconds > 0 ? (100 * u.cpuSeconds) / u.wallSeconds : null };
      }),
    },
  ];
}

/** RSS under load is explained by what the process holds when idle. */
function explainMemory(metrics: Metric[]): void {
  const idle = metrics.find((m) => m.id === 'rss-idle')?.rows.find((r) => r.path === 'detour')?.value;
  if (typeof idle !== 'number') return;
  for (const m of metrics.filter((x) => x.id.startsWith('rss-') && x.id !== 'rss-idle')) {
    const loaded = m.rows.find((r) => r.path === 'detour')?.value;
    if (typeof loaded === 'number')
      m.note = `detour holds ${idle.toFixed(1)} MB idle (Node runtime, V8 heap, loaded modules) and ${(loaded - idle).toFixed(1)} MB more under this load (buffers, connections, garbage not yet collected)`;
  }
}

function profileSection(dir: string): string {
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')) : [];
  if (files.length === 0)
    return '## Dataplane CPU profile (--profile)\n\nNo .cpuprofile was written (did the dataplane exit cleanly?).\n';
  const profile = JSON.parse(readFileSync(join(dir, files[0] as string), 'utf8')) as CpuProfile;
  return profileMarkdown(summarizeProfile(profile));
}

async function main(): Promise<number> {
  let opts: BenchOptions;
  try {
    opts = parseOptions(process.argv.slice(2), join(repoRoot(), 'bench', 'results'));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n`);
      return e.exitCode;
    }
    throw e;
  }
  const started = new Date();
  const dir = join(opts.outDir, timestamp(started));
  mkdirSync(dir, { recursive: true });
  const info: RunInfo = {
    date: started.toISOString().replace(/\.\d+Z$/, 'Z'),
    machine: machine(),
    durationS: opts.durationS,
    quick: opts.quick,
    rate: opts.rate,
    notes: [
      'Client, forwarder and upstream share the same cores; other work on this machine makes the figures noisy — compare ratios from one run, not absolute numbers across runs.',
      `Forwarders: detour dataplane (node ${process.versions.node}, one event loop, --log-level warn), haproxy ${version(['haproxy', '-v'], /version (\S+)/)} (nbthread 1), nginx ${version(['nginx', '-v'], /nginx\/(\S+)/)} (1 worker); access logs off on all three.`,
      'Upstream: nginx (1 worker) in the net namespace, answering only requests whose Authorization carries a token the token server issued; a path that does not inject it shows up as errors.',
    ],
  };
  let world: World | undefined;
  let stopping = false;
  const abort = (why: string, code: number): void => {
    if (stopping) return;
    stopping = true;
    log(`${why}: tearing the lab down`);
    void (world?.destroy() ?? Promise.resolve()).finally(() => process.exit(code));
  };
  process.once('SIGINT', () => abort('interrupted', 130));
  process.once('SIGTERM', () => abort('terminated', 143));
  const limit = setTimeout(
    () => abort(`time limit of ${timeLimitS(opts)} s reached`, 4),
    timeLimitS(opts) * 1000,
  );
  limit.unref();

  const metrics: Metric[] = [];
  const raw: Record<string, unknown> = {};
  const panels: ChartPanel[] = [];
  try {
    world = await buildWorld(log, dir, opts.profile ? join(dir, 'profile') : undefined);
    if (opts.only.some((m) => m.startsWith('http'))) {
      log(`warming up every HTTP path (${opts.warmupS} s each)`);
      await warmUp(world, opts);
    }
    metrics.push(...(await idleFigures(world, opts.quick ? 1 : 2)));
    for (const id of opts.only) {
      if (stopping) break;
      log(`measuring ${id}`);
      let out: MeasureOutput;
      try {
        out = await RUNNERS[id]({ world, opts, log });
      } catch (e) {
        log(`${id} failed: ${(e as Error).message}`);
        raw[id] = { error: (e as Error).message };
        continue;
      }
      metrics.push(...out.metrics);
      raw[id] = out.raw;
      if (out.samples && Object.keys(out.samples).length > 0)
        panels[id === 'http-rate' ? 'unshift' : 'push']({
          title:
            id === 'http-rate'
              ? `HTTP at ${opts.rate} req/s (auth injected)`
              : `plain TCP forwarding at ${opts.rate} req/s`,
          series: out.samples,
        });
    }
  } finally {
    if (!stopping) await world?.destroy();
  }
  if (stopping) return 1;

  explainMemory(metrics);
  const cores = os.cpus().length;
  const evaluated = metrics.map((m) => evaluate(m, cores));
  let markdown = renderMarkdown(info, evaluated);
  if (opts.profile) markdown += '\n' + profileSection(join(dir, 'profile'));
  writeFileSync(join(dir, 'results.md'), markdown);
  writeFileSync(
    join(dir, 'results.json'),
    JSON.stringify(
      {
        ...info,
        finished: new Date().toISOString(),
        options: opts,
        measures: MEASURES.filter((m) => opts.only.includes(m)),
        metrics: evaluated,
        raw,
      },
      null,
      2,
    ) + '\n',
  );
  if (panels.length > 0) {
    const script = writeChartInputs(panels, dir, join(dir, 'latency.png'));
    // gnuplot reports script errors on stderr but may still exit 0.
    const g = spawnSync('gnuplot', [script], { encoding: 'utf8' });
    if (g.status !== 0 || g.stderr.trim()) log(`gnuplot: ${g.error?.message ?? g.stderr.trim()}`);
  }
  process.stdout.write(markdown);
  log(`results in ${dir}`);
  const failed = evaluated.flatMap((m) =>
    m.rows.filter((r) => r.failure).map((r) => `${m.id}/${r.path}: ${r.failure}`),
  );
  const missingMeasures = opts.only.filter((id) => (raw[id] as { error?: string } | undefined)?.error);
  if (failed.length > 0 || missingMeasures.length > 0) {
    for (const f of [...new Set(failed)]) log(`failed: ${f}`);
    for (const m of missingMeasures) log(`measure failed: ${m}`);
    return 3;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    log(`failed: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);

// The measurements: each runs its load tool once per path, in the client's place in `app`, while the
// forwarder's processes are sampled, and turns the tool's output into metric rows.
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchOptions, MeasureId } from './options.js';
import { parseDnsperf } from './parse-dnsperf.js';
import { parseH2load, parseH2loadLog } from './parse-h2load.js';
import { parseIperf3 } from './parse-iperf3.js';
import { parseWrk } from './parse-wrk.js';
import { sampleUsage, type ProcessUsage } from './proc.js';
import type { Metric, Row } from './report.js';
import { summarize } from './stats.js';
import type { HttpTarget, PathSpec, World } from './world.js';

/** Latency samples (µs) of the fixed-rate runs, for the chart. */
export type Samples = Record<string, Record<string, number[]>>;

export interface MeasureOutput {
  metrics: Metric[];
  /** tool figures per path, for results.json */
  raw: Record<string, unknown>;
  samples?: Record<string, number[]>;
}

interface Ctx {
  world: World;
  opts: BenchOptions;
  log: (line: string) => void;
}

/** A row's share of errors above which its figure is not used (a broken path must not look fast). */
export const MAX_ERROR_SHARE = 0.01;
const PEERS = ['haproxy', 'nginx'];
const HTTP_CONNECTIONS = 32;
const CLOSE_CONNECTIONS = 16;
const RATE_CLIENTS = 20;
/** h2load logs latencies in µs: an added latency below that is "not measurable", not 0 (ratios need it). */
const LATENCY_RESOLUTION_MS = 0.001;

interface Run<T> {
  result?: T;
  failure?: string;
  usage: ProcessUsage;
}

async function sampled<T>(path: PathSpec, fn: () => Promise<T>): Promise<Run<T>> {
  const sampler = sampleUsage(() => path.pids());
  try {
    const result = await fn();
    return { result, usage: sampler.stop() };
  } catch (e) {
    return { failure: (e as Error).message.split('\n')[0] ?? String(e), usage: sampler.stop() };
  }
}

function usageOf(u: ProcessUsage): Row['usage'] {
  return { cpuCores: u.wallSeconds > 0 ? u.cpuSeconds / u.wallSeconds : 0, machineBusy: u.machineBusy };
}

function row(path: string, value: number | null, run: Run<unknown>, errors?: number, total?: number): Row {
  const r: Row = { path, value: run.failure ? null : value, usage: usageOf(run.usage) };
  if (errors !== undefined) r.errors = errors;
  if (run.failure) r.failure = run.failure;
  else if (errors !== undefined && total !== undefined && errors > Math.max(0, total * MAX_ERROR_SHARE)) {
    r.failure = `${errors} of ${total} failed`;
    r.value = null;
  } else if (value !== null && !(value > 0)) {
    r.failure = 'no figure';
    r.value = null;
  }
  return r;
}

const skipped = (path: string, why: string): Row => ({ path, value: null, failure: why });

function client(ctx: Ctx, path: PathSpec, argv: string[], seconds: number) {
  return ctx.world.lab.run('app', argv, { uid: path.uid, timeoutMs: Math.round(seconds * 3000) + 30_000 });
}

const headerArgs = (t: HttpTarget): string[] => t.headers.flatMap((h) => ['-H', h]);
const wholeSeconds = (s: number): number => Math.max(1, Math.round(s));

async function wrk(ctx: Ctx, path: PathSpec, seconds: number, connections: number, extra: string[] = []) {
  const d = wholeSeconds(seconds);
  const argv = [
    'wrk',
    '-t1',
    `-c${connections}`,
    `-d${d}s`,
    '--latency',
    ...headerArgs(path.http),
    ...extra,
    path.http.url,
  ];
  const r = await client(ctx, path, argv, d);
  return parseWrk(r.stdout + r.stderr);
}

/**
 * h2load at a fixed rate: RATE_CLIENTS keep-alive connections opened 1 ms apart, each sending rate/clients
 * requests per second, so requests arrive spread out rather than in bursts.
 */
async function fixedRate(ctx: Ctx, path: PathSpec, target: HttpTarget, tag: string) {
  const clients = Math.min(RATE_CLIENTS, ctx.opts.rate);
  const perClient = Math.max(1, Math.round(ctx.opts.rate / clients));
  const seconds = wholeSeconds(ctx.opts.durationS);
  const logFile = join(ctx.world.clientDir, `h2load-${tag}-${path.name}.log`);
  rmSync(logFile, { force: true });
  const argv = [
    'h2load',
    '--h1',
    `-n${clients * perClient * seconds}`,
    `-c${clients}`,
    '-r1',
    '--rate-period=1ms',
    `--rps=${perClient}`,
    `--log-file=${logFile}`,
    ...headerArgs(target),
    target.url,
  ];
  const r = await client(ctx, path, argv, seconds);
  const summary = parseH2load(r.stdout + r.stderr);
  const log = parseH2loadLog(readFileSync(logFile, 'utf8'));
  return { summary, log, latency: summarize(log.latenciesUs) };
}

const ms = (us: number): number => us / 1000;

async function tcpThroughput(ctx: Ctx): Promise<MeasureOutput> {
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

async function tcpLatency(ctx: Ctx): Promise<MeasureOutput> {
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

function resourceMetrics(
  section: string,
  label: string,
  runs: Record<string, { usage: ProcessUsage; requests: number; failed: boolean }>,
  targets: { cpu?: number; rssMb?: number },
): Metric[] {
  const forwarders = Object.keys(runs);
  const cpu: Row[] = forwarders.map((name) => {
    const r = runs[name]!;
    const value = r.failed || r.requests === 0 ? null : (r.usage.cpuSeconds / r.requests) * 1000;
    return { path: name, value, usage: usageOf(r.usage), ...(r.failed ? { failure: 'the run failed' } : {}) };
  });
  const rss: Row[] = forwarders.map((name) => {
    const r = runs[name]!;
    return {
      path: name,
      value: r.usage.maxRssBytes > 0 ? r.usage.maxRssBytes / 2 ** 20 : null,
      usage: usageOf(r.usage),
    };
  });
  const detourCpu = cpu.find((r) => r.path === 'detour')?.value;
  const cpuNote =
    typeof detourCpu === 'number'
      ? `detour spends ${detourCpu.toFixed(3)} ms of CPU per request in its own process (the request path: parsing, authentication, rewriting, undici, the event loop); run with --profile to see where`
      : undefined;
  return [
    {
      id: `cpu-${label}`,
      section,
      title: `Forwarder CPU per 1000 requests (${label}) = vCPU per 1000 req/s`,
      unit: 'CPU s',
      better: 'lower',
      digits: 3,
      rows: cpu,
      peers: PEERS,
      ownCost: true,
      ...(cpuNote ? { note: cpuNote } : {}),
      ...(targets.cpu ? { target: { path: 'detour', op: '<=' as const, factor: targets.cpu } } : {}),
    },
    {
      id: `rss-${label}`,
      section,
      title: `Forwarder RSS, max (${label})`,
      unit: 'MB',
      better: 'lower',
      digits: 1,
      rows: rss,
      peers: PEERS,
      ownCost: true,
      ...(targets.rssMb ? { target: { path: 'detour', op: '<=' as const, factor: targets.rssMb } } : {}),
    },
  ];
}

async function httpSaturation(ctx: Ctx): Promise<MeasureOutput> {
  const raw: Record<string, unknown> = {};
  const rps: Row[] = [];
  const p50: Row[] = [];
  const p99: Row[] = [];
  const res: Record<string, { usage: ProcessUsage; requests: number; failed: boolean }> = {};
  for (const p of ctx.world.paths) {
    const run = await sampled(p, () => wrk(ctx, p, ctx.opts.durationS, HTTP_CONNECTIONS));
    const w = run.result;
    raw[p.name] = w ?? run.failure;
    const total = w ? w.requests + w.socketErrors.connect : undefined;
    rps.push(row(p.name, w?.requestsPerSecond ?? null, run, w?.errors, total));
    p50.push(row(p.name, w ? ms(w.latencyUs.p50) : null, run, w?.errors, total));
    p99.push(row(p.name, w ? ms(w.latencyUs.p99) : null, run, w?.errors, total));
    if (p.name !== 'direct') res[p.name] = { usage: run.usage, requests: w?.requests ?? 0, failed: !w };
    ctx.log(
      `http saturation ${p.name}: ${w ? `${w.requestsPerSecond.toFixed(0)} req/s, errors ${w.errors}` : run.failure}`,
    );
  }
  const section = `HTTP with Authorization injected, at saturation (wrk, ${HTTP_CONNECTIONS} keep-alive connections)`;
  const common = { section, reference: 'direct', peers: PEERS };
  const co =
    'wrk is closed-loop: its percentiles leave out the requests a stalled connection did not send (coordinated omission)';
  return {
    raw,
    metrics: [
      {
        ...common,
        id: 'http-rps',
        title: 'HTTP requests/s at saturation',
        unit: 'req/s',
        better: 'higher',
        digits: 0,
        rows: rps,
        target: { path: 'detour', op: '>=', factor: 1.0, of: 'nginx' },
      },
      {
        ...common,
        id: 'http-saturation-p50',
        title: 'HTTP latency p50 at saturation',
        unit: 'ms',
        better: 'lower',
        digits: 3,
        rows: p50,
        note: co,
      },
      {
        ...common,
        id: 'http-saturation-p99',
        title: 'HTTP latency p99 at saturation',
        unit: 'ms',
        better: 'lower',
        digits: 3,
        rows: p99,
        note: co,
      },
      ...resourceMetrics(section, 'at saturation', res, {}),
    ],
  };
}

async function httpRate(ctx: Ctx): Promise<MeasureOutput> {
  const raw: Record<string, unknown> = {};
  const samples: Record<string, number[]> = {};
  const p50: Row[] = [];
  const p99: Row[] = [];
  const achieved: Row[] = [];
  const res: Record<string, { usage: ProcessUsage; requests: number; failed: boolean }> = {};
  for (const p of ctx.world.paths) {
    const run = await sampled(p, () => fixedRate(ctx, p, p.http, 'http'));
    const s = run.result;
    raw[p.name] = s ? { ...s.summary, latencyUs: s.latency } : run.failure;
    if (s) samples[p.name] = s.log.latenciesUs;
    const errors = s?.summary.errors;
    const total = s?.summary.total;
    p50.push(row(p.name, s ? ms(s.latency.p50) : null, run, errors, total));
    p99.push(row(p.name, s ? ms(s.latency.p99) : null, run, errors, total));
    achieved.push(row(p.name, s?.summary.requestsPerSecond ?? null, run, errors, total));
    if (p.name !== 'direct')
      res[p.name] = { usage: run.usage, requests: s?.summary.status['2xx'] ?? 0, failed: !s };
    ctx.log(
      `http ${ctx.opts.rate} req/s ${p.name}: ${s ? `p50 ${ms(s.latency.p50).toFixed(3)} ms, p99 ${ms(s.latency.p99).toFixed(3)} ms, errors ${s.summary.errors}` : run.failure}`,
    );
  }
  const section = `HTTP with Authorization injected, at a fixed ${ctx.opts.rate} req/s (h2load, ${RATE_CLIENTS} keep-alive connections)`;
  const common = { section, reference: 'direct', peers: PEERS };
  return {
    raw,
    samples,
    metrics: [
      {
        ...common,
        id: 'http-rate-achieved',
        title: 'HTTP requests/s achieved',
        unit: 'req/s',
        better: 'higher',
        digits: 0,
        rows: achieved,
      },
      {
        ...common,
        id: 'http-rate-p50',
        title: `HTTP latency p50 at ${ctx.opts.rate} req/s`,
        unit: 'ms',
        better: 'lower',
        digits: 3,
        rows: p50,
      },
      {
        ...common,
        id: 'http-rate-p99',
        title: `HTTP latency p99 at ${ctx.opts.rate} req/s`,
        unit: 'ms',
        better: 'lower',
        digits: 3,
        rows: p99,
        target: { path: 'detour', op: '<=', factor: 1.5, of: 'nginx' },
      },
      ...resourceMetrics(section, `at ${ctx.opts.rate} req/s`, res, { cpu: 0.1, rssMb: 60 }),
    ],
  };
}

async function httpConnections(ctx: Ctx): Promise<MeasureOutput> {
  const raw: Record<string, unknown> = {};
  const rows: Row[] = [];
  for (const p of ctx.world.paths) {
    const run = await sampled(p, () =>
      wrk(ctx, p, ctx.opts.durationS, CLOSE_CONNECTIONS, ['-H', 'Connection: close']),
    );
    const w = run.result;
    raw[p.name] = w ?? run.failure;
    rows.push(
      row(
        p.name,
        w?.requestsPerSecond ?? null,
        run,
        w?.errors,
        w ? w.requests + w.socketErrors.connect : undefined,
      ),
    );
    ctx.log(
      `new connections ${p.name}: ${w ? `${w.requestsPerSecond.toFixed(0)}/s, errors ${w.errors}` : run.failure}`,
    );
  }
  return {
    raw,
    metrics: [
      {
        id: 'http-connections',
        section: `New connections (wrk, ${CLOSE_CONNECTIONS} connections, one request each: Connection: close)`,
        title: 'New connections per second (one HTTP request each)',
        unit: 'conn/s',
        better: 'higher',
        digits: 0,
        rows,
        reference: 'direct',
        peers: PEERS,
      },
    ],
  };
}

/** Sum of detour_dns_queries_total answered from the local zone. */
export function localDnsAnswers(metrics: string): number {
  let sum = 0;
  for (const m of metrics.matchAll(/^detour_dns_queries_total\{[^}]*source="local"[^}]*\} (\d+(?:\.\d+)?)/gm))
    sum += Number(m[1]);
  return sum;
}

async function dns(ctx: Ctx): Promise<MeasureOutput> {
  const raw: Record<string, unknown> = {};
  const qps: Row[] = [];
  const p99: Row[] = [];
  const detour = ctx.world.paths.find((p) => p.name === 'detour')!;
  for (const s of ctx.world.dns.servers) {
    const asPath: PathSpec = {
      ...detour,
      name: detour.name,
      uid: s.uid,
      pids: s.name === 'detour' ? detour.pids : () => [],
    };
    const before = localDnsAnswers(await ctx.world.dataplaneMetrics());
    const out = join(ctx.world.clientDir, `dnsperf-${s.name}.txt`);
    const d = wholeSeconds(ctx.opts.durationS);
    const run = await sampled(asPath, async () => {
      const cmd = `exec dnsperf -s ${s.server} -p ${s.port} -d ${ctx.world.dns.queryFile} -l ${d} -t 2 -v > ${out} 2>&1`;
      await client(ctx, asPath, ['sh', '-c', cmd], d);
      return parseDnsperf(readFileSync(out, 'utf8'));
    });
    const answered = localDnsAnswers(await ctx.world.dataplaneMetrics()) - before;
    const r = run.result;
    // The same address answers both: the rules send the app's queries to the embedded DNS, the direct
    // UID's to dnsmasq. The dataplane's counter says which one really answered.
    if (r && s.name === 'detour' && answered < r.completed * 0.99)
      run.failure = `the embedded DNS answered ${answered} of ${r.completed} queries (not redirected?)`;
    if (r && s.name !== 'detour' && answered > r.completed * 0.01)
      run.failure = `the embedded DNS answered ${answered} queries meant for ${s.name}`;
    const latency = r ? summarize(r.latenciesUs) : undefined;
    raw[s.name] = r
      ? { ...r, latenciesUs: undefined, latencyUs: latency, answeredByDataplane: answered }
      : run.failure;
    qps.push(row(s.name, r?.queriesPerSecond ?? null, run, r?.errors, r?.sent));
    p99.push(row(s.name, latency ? ms(latency.p99) : null, run, r?.errors, r?.sent));
    ctx.log(
      `dns ${s.name}: ${r ? `${r.queriesPerSecond.toFixed(0)} q/s, p99 ${latency ? ms(latency.p99).toFixed(3) : '?'} ms, errors ${r.errors}` : run.failure}`,
    );
  }
  const section = `DNS: local names (dnsperf, ${ctx.world.dns.names.length} names, up to 100 queries in flight)`;
  const common = { section, peers: ['dnsmasq'] };
  return {
    raw,
    metrics: [
      {
        ...common,
        id: 'dns-qps',
        title: 'DNS queries/s (embedded DNS vs dnsmasq)',
        unit: 'queries/s',
        better: 'higher',
        digits: 0,
        rows: qps,
        target: { path: 'detour', op: '>=', factor: 0.5, of: 'dnsmasq' },
      },
      {
        ...common,
        id: 'dns-p99',
        title: 'DNS latency p99 at saturation',
        unit: 'ms',
        better: 'lower',
        digits: 3,
        rows: p99,
      },
    ],
  };
}

export const RUNNERS: Record<MeasureId, (ctx: Ctx) => Promise<MeasureOutput>> = {
  'tcp-throughput': tcpThroughput,
  'tcp-latency': tcpLatency,
  'http-saturation': httpSaturation,
  'http-rate': httpRate,
  'http-connections': httpConnections,
  dns,
};

export type { Ctx as MeasureContext };

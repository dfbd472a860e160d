// HTTP measures with Authorization injected: saturation (wrk), the fixed rate (h2load), new connections
// (wrk with Connection: close), and the forwarder's CPU per request and RSS during them.
import {
  fixedRate,
  ms,
  PEERS,
  RATE_CLIENTS,
  row,
  sampled,
  usageOf,
  wrk,
  type MeasureContext,
  type MeasureOutput,
} from './measure-kit.js';
import type { ProcessUsage } from './proc.js';
import type { Metric, Row } from './report.js';

const HTTP_CONNECTIONS = 32;
const CLOSE_CONNECTIONS = 16;

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

export async function httpSaturation(ctx: MeasureContext): Promise<MeasureOutput> {
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

export async function httpRate(ctx: MeasureContext): Promise<MeasureOutput> {
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

export async function httpConnections(ctx: MeasureContext): Promise<MeasureOutput> {
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

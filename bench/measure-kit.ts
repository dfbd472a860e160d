// What every measure shares: the context, running a load tool as the path's client in `app` while the
// forwarder's processes are sampled, and turning a run into a metric row (errors above 1% → failed).
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchOptions } from './options.js';
import { parseH2load, parseH2loadLog } from './parse-h2load.js';
import { parseWrk } from './parse-wrk.js';
import { sampleUsage, type ProcessUsage } from './proc.js';
import type { Metric, Row } from './report.js';
import { summarize } from './stats.js';
import type { HttpTarget, PathSpec, World } from './world.js';

export interface MeasureOutput {
  metrics: Metric[];
  /** tool figures per path, for results.json */
  raw: Record<string, unknown>;
  /** path → latency samples (µs) of a fixed-rate run, for the chart */
  samples?: Record<string, number[]>;
}

export interface MeasureContext {
  world: World;
  opts: BenchOptions;
  log: (line: string) => void;
}

/** A row's share of errors above which its figure is not used (a broken path must not look fast). */
export const MAX_ERROR_SHARE = 0.01;
export const PEERS = ['haproxy', 'nginx'];
export const RATE_CLIENTS = 20;

export interface Run<T> {
  result?: T;
  failure?: string;
  usage: ProcessUsage;
}

export async function sampled<T>(path: PathSpec, fn: () => Promise<T>): Promise<Run<T>> {
  const sampler = sampleUsage(() => path.pids());
  try {
    const result = await fn();
    return { result, usage: sampler.stop() };
  } catch (e) {
    return { failure: (e as Error).message.split('\n')[0] ?? String(e), usage: sampler.stop() };
  }
}

export function usageOf(u: ProcessUsage): Row['usage'] {
  return { cpuCores: u.wallSeconds > 0 ? u.cpuSeconds / u.wallSeconds : 0, machineBusy: u.machineBusy };
}

export function row(
  path: string,
  value: number | null,
  run: Run<unknown>,
  errors?: number,
  total?: number,
): Row {
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

export const skipped = (path: string, why: string): Row => ({ path, value: null, failure: why });

export function client(ctx: MeasureContext, path: PathSpec, argv: string[], seconds: number) {
  return ctx.world.lab.run('app', argv, { uid: path.uid, timeoutMs: Math.round(seconds * 3000) + 30_000 });
}

export const headerArgs = (t: HttpTarget): string[] => t.headers.flatMap((h) => ['-H', h]);
export const wholeSeconds = (s: number): number => Math.max(1, Math.round(s));

export async function wrk(
  ctx: MeasureContext,
  path: PathSpec,
  seconds: number,
  connections: number,
  extra: string[] = [],
) {
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
export async function fixedRate(ctx: MeasureContext, path: PathSpec, target: HttpTarget, tag: string) {
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

export const ms = (us: number): number => us / 1000;

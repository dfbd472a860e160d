// h2load: the summary it prints, and the per-request --log-file (start µs since the epoch, status,
// µs until the end of the response; status -1 for a failed stream).
import { ToolOutputError } from './parse-error.js';
import { durationToUs } from './parse-units.js';

export interface H2loadSummary {
  seconds: number;
  requestsPerSecond: number;
  total: number;
  started: number;
  done: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** requests not answered with 2xx (failed, errored or timed out count once each) */
  errors: number;
}

export interface H2loadLog {
  /** latencies of 2xx responses, µs, in file order */
  latenciesUs: number[];
  /** requests with any other status (including -1) */
  errors: number;
}

export function parseH2load(text: string): H2loadSummary {
  const fail = (problem: string): never => {
    throw new ToolOutputError('h2load', problem, text);
  };
  const fin = /finished in ([\d.]+\w+), ([\d.]+) req\/s/.exec(text) ?? fail('no "finished in" line');
  const seconds = (durationToUs(fin[1] as string) ?? fail(`bad duration ${fin[1]}`)) / 1e6;
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      text,
    ) ?? fail('no "requests:" line');
  const st =
    /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text) ?? fail('no "status codes:" line');
  const n = (m: RegExpExecArray, i: number): number => Number(m[i]);
  const total = n(req, 1);
  const status = { '2xx': n(st, 1), '3xx': n(st, 2), '4xx': n(st, 3), '5xx': n(st, 4) };
  return {
    seconds,
    requestsPerSecond: Number(fin[2]),
    total,
    started: n(req, 2),
    done: n(req, 3),
    succeeded: n(req, 4),
    failed: n(req, 5),
    errored: n(req, 6),
    timeout: n(req, 7),
    status,
    errors: total - status['2xx'],
  };
}

export function parseH2loadLog(text: string): H2loadLog {
  const latenciesUs: number[] = [];
  let errors = 0;
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue;
    const cols = line.split('\t');
    const status = Number(cols[1]);
    const us = Number(cols[2]);
    if (cols.length < 3 || !Number.isFinite(status) || !Number.isFinite(us))
      throw new ToolOutputError('h2load --log-file', `line ${i + 1} is not "start<TAB>status<TAB>µs"`, line);
    if (status >= 200 && status < 300) latenciesUs.push(us);
    else errors++;
  }
  return { latenciesUs, errors };
}

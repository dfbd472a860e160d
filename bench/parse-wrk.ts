// wrk --latency output: requests/s, the latency percentiles wrk prints, and every kind of error it counts.
// wrk is closed-loop: a slow response delays the next request on that connection (coordinated
// omission), so its percentiles describe saturation, not a fixed offered load.
import { ToolOutputError } from './parse-error.js';
import { durationToUs } from './parse-units.js';

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  /** from "Latency Distribution" (needs --latency), in microseconds */
  latencyUs: { p50: number; p75: number; p90: number; p99: number };
  non2xx3xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** non-2xx/3xx responses + all socket errors */
  errors: number;
}

export function parseWrk(text: string): WrkResult {
  const fail = (problem: string): never => {
    throw new ToolOutputError('wrk', problem, text);
  };
  const unable = /unable to connect to (\S+) (.*)/.exec(text);
  if (unable) fail(`could not connect to ${unable[1]}: ${unable[2]}`);
  const total = /(\d+) requests in ([\d.]+\w+),/.exec(text) ?? fail('no "N requests in T" line');
  const seconds = (durationToUs(total[2] as string) ?? fail(`bad duration ${total[2]}`)) / 1e6;
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text) ?? fail('no "Requests/sec:" line');
  const pct = (p: number): number => {
    const m =
      new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(text) ?? fail(`no ${p}% latency (--latency missing?)`);
    return durationToUs(m[1] as string) ?? fail(`bad latency ${m[1]}`);
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = {
    connect: Number(sock?.[1] ?? 0),
    read: Number(sock?.[2] ?? 0),
    write: Number(sock?.[3] ?? 0),
    timeout: Number(sock?.[4] ?? 0),
  };
  const errors = non2xx + Object.values(socketErrors).reduce((a, b) => a + b, 0);
  return {
    requests: Number(total[1]),
    seconds,
    requestsPerSecond: Number(rps[1]),
    latencyUs: { p50: pct(50), p75: pct(75), p90: pct(90), p99: pct(99) },
    non2xx3xx: non2xx,
    socketErrors,
    errors,
  };
}

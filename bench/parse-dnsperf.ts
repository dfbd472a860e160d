// dnsperf (2.x) output: the statistics block, and with -v one "> RCODE name type seconds" line per
// answered query, from which the latency percentiles are computed (dnsperf prints only mean/stddev).
import { ToolOutputError } from './parse-error.js';

export interface DnsperfResult {
  sent: number;
  completed: number;
  lost: number;
  queriesPerSecond: number;
  /** response codes and their counts, e.g. { NOERROR: 45260 } */
  rcodes: Record<string, number>;
  /** per-query latencies from -v lines, µs */
  latenciesUs: number[];
  /** lost queries + answers other than NOERROR */
  errors: number;
}

export function parseDnsperf(text: string): DnsperfResult {
  const fail = (problem: string): never => {
    throw new ToolOutputError('dnsperf', problem, text);
  };
  const num = (re: RegExp, what: string): number => Number((re.exec(text) ?? fail(`no "${what}" line`))[1]);
  const sent = num(/Queries sent:\s+(\d+)/, 'Queries sent');
  const completed = num(/Queries completed:\s+(\d+)/, 'Queries completed');
  const lost = num(/Queries lost:\s+(\d+)/, 'Queries lost');
  const queriesPerSecond = num(/Queries per second:\s+([\d.]+)/, 'Queries per second');
  const rcodes: Record<string, number> = {};
  const codes = /Response codes:[ \t]*(.*)/.exec(text)?.[1] ?? '';
  for (const m of codes.matchAll(/([A-Z]+) (\d+) \(/g)) rcodes[m[1] as string] = Number(m[2]);
  const latenciesUs: number[] = [];
  for (const m of text.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)) latenciesUs.push(Number(m[1]) * 1e6);
  const notOk = Object.entries(rcodes)
    .filter(([code]) => code !== 'NOERROR')
    .reduce((a, [, c]) => a + c, 0);
  return { sent, completed, lost, queriesPerSecond, rcodes, latenciesUs, errors: lost + notOk };
}

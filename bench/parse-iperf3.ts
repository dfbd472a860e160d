// iperf3 --json: the receiver's throughput (what arrived, not what was queued), streams and retransmits.
import { ToolOutputError } from './parse-error.js';

export interface IperfResult {
  /** bits per second received at the server, summed over streams */
  bitsPerSecond: number;
  streams: number;
  seconds: number;
  retransmits: number;
}

interface IperfJson {
  error?: string;
  start?: { test_start?: { num_streams?: number } };
  end?: {
    sum_received?: { bits_per_second?: number; seconds?: number };
    sum_sent?: { retransmits?: number };
  };
}

export function parseIperf3(text: string): IperfResult {
  let json: IperfJson;
  try {
    json = JSON.parse(text) as IperfJson;
  } catch {
    throw new ToolOutputError('iperf3', 'output is not JSON (was --json given?)', text);
  }
  if (json.error) throw new ToolOutputError('iperf3', `reported an error: ${json.error}`, '');
  const received = json.end?.sum_received;
  if (typeof received?.bits_per_second !== 'number')
    throw new ToolOutputError('iperf3', 'no end.sum_received.bits_per_second', text);
  return {
    bitsPerSecond: received.bits_per_second,
    streams: json.start?.test_start?.num_streams ?? 1,
    seconds: received.seconds ?? 0,
    retransmits: json.end?.sum_sent?.retransmits ?? 0,
  };
}

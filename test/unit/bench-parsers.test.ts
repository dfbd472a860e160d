// The bench's parsers, fed with real outputs of the Debian tools (captured in a lab, in bench-fixtures/).
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDnsperf } from '../../bench/parse-dnsperf.js';
import { parseH2load, parseH2loadLog } from '../../bench/parse-h2load.js';
import { parseIperf3 } from '../../bench/parse-iperf3.js';
import { durationToUs } from '../../bench/parse-units.js';
import { parseWrk } from '../../bench/parse-wrk.js';

const fixture = (name: string): string =>
  readFileSync(join(dirname(fileURLToPath(import.meta.url)), 'bench-fixtures', name), 'utf8');

describe('durations', () => {
  test('the units wrk and h2load print', () => {
    expect(durationToUs('597.00us')).toBe(597);
    expect(durationToUs('1.65ms')).toBeCloseTo(1650);
    expect(durationToUs('2.02s')).toBeCloseTo(2_020_000);
    expect(durationToUs('1m')).toBe(60_000_000);
    expect(durationToUs('-nan%')).toBeUndefined();
  });
});

describe('iperf3 --json', () => {
  test('1 stream: the receiver side throughput', () => {
    const r = parseIperf3(fixture('iperf3-1-stream.json'));
    expect(r.streams).toBe(1);
    expect(r.bitsPerSecond).toBeCloseTo(5588927686.1, 0);
    expect(r.seconds).toBeGreaterThan(1);
  });

  test('4 streams: the sum over streams', () => {
    const r = parseIperf3(fixture('iperf3-4-streams.json'));
    expect(r.streams).toBe(4);
    expect(r.bitsPerSecond).toBeCloseTo(5438885690.06, 0);
  });

  test('the error iperf3 reports is the error thrown', () => {
    expect(() => parseIperf3(fixture('iperf3-refused.json'))).toThrow(
      /iperf3: reported an error: unable to connect to server: Connection refused/,
    );
    expect(() => parseIperf3('Connecting to host...')).toThrow(/not JSON \(was --json given\?\)/);
  });
});

describe('wrk --latency', () => {
  test('requests/s and percentiles', () => {
    const r = parseWrk(fixture('wrk-latency.txt'));
    expect(r.requests).toBe(32275);
    expect(r.seconds).toBeCloseTo(2.02);
    expect(r.requestsPerSecond).toBeCloseTo(15946.25);
    expect(r.latencyUs).toEqual({ p50: 597, p75: 1650, p90: 9800, p99: 118590 });
    expect(r.errors).toBe(0);
  });

  test('non-2xx responses count as errors', () => {
    const r = parseWrk(fixture('wrk-non2xx.txt'));
    expect(r.non2xx3xx).toBe(23308);
    expect(r.errors).toBe(23308);
  });

  test('socket errors count as errors', () => {
    const r = parseWrk(fixture('wrk-socket-errors.txt'));
    expect(r.socketErrors).toEqual({ connect: 0, read: 162, write: 0, timeout: 0 });
    expect(r.errors).toBe(162);
    expect(r.requestsPerSecond).toBe(0);
  });

  test('Connection: close run', () => {
    expect(parseWrk(fixture('wrk-connection-close.txt')).requestsPerSecond).toBeCloseTo(2170.21);
  });

  test('a refused connection is an error naming the address', () => {
    expect(() => parseWrk(fixture('wrk-refused.txt'))).toThrow(
      /wrk: could not connect to 198\.51\.100\.10:81: Connection refused/,
    );
  });

  test('output without --latency is rejected with the reason', () => {
    const text = fixture('wrk-latency.txt').replace(/ {5}\d+% .*\n/g, '');
    expect(() => parseWrk(text)).toThrow(/no 50% latency \(--latency missing\?\)/);
  });
});

describe('h2load', () => {
  test('summary of a fixed-rate run', () => {
    const r = parseH2load(fixture('h2load-rate.txt'));
    expect(r.total).toBe(3000);
    expect(r.succeeded).toBe(3000);
    expect(r.seconds).toBeCloseTo(3.0);
    expect(r.requestsPerSecond).toBeCloseTo(999.89);
    expect(r.status['2xx']).toBe(3000);
    expect(r.errors).toBe(0);
  });

  test('4xx responses are errors', () => {
    const r = parseH2load(fixture('h2load-401.txt'));
    expect(r.status['4xx']).toBe(200);
    expect(r.errors).toBe(200);
  });

  test('refused connections: every request errored, duration in µs', () => {
    const r = parseH2load(fixture('h2load-refused.txt'));
    expect(r.errored).toBe(20);
    expect(r.errors).toBe(20);
    expect(r.seconds).toBeCloseTo(0.000295);
  });

  test('the per-request log: latencies of 2xx, everything else counted', () => {
    const log = parseH2loadLog(fixture('h2load-rate.log'));
    expect(log.latenciesUs).toHaveLength(40);
    expect(log.latenciesUs[0]).toBe(5559);
    expect(log.errors).toBe(0);
    const mixed = parseH2loadLog('1\t200\t100\n2\t401\t50\n3\t-1\t0\n');
    expect(mixed).toEqual({ latenciesUs: [100], errors: 2 });
    expect(() => parseH2loadLog('garbage')).toThrow(/line 1 is not/);
  });

  test('output that is not h2load’s is rejected', () => {
    expect(() => parseH2load('h2load: command not found')).toThrow(/h2load: no "finished in" line/);
  });
});

describe('dnsperf -v', () => {
  test('statistics and per-query latencies', () => {
    const r = parseDnsperf(fixture('dnsperf-verbose.txt'));
    expect(r.sent).toBe(45260);
    expect(r.completed).toBe(45260);
    expect(r.lost).toBe(0);
    expect(r.queriesPerSecond).toBeCloseTo(45219.03);
    expect(r.rcodes).toEqual({ NOERROR: 45260 });
    // the fixture keeps the first and last verbose lines only
    expect(r.latenciesUs).toHaveLength(37);
    expect(r.latenciesUs[0]).toBeCloseTo(397);
    expect(r.errors).toBe(0);
  });

  test('lost queries are errors', () => {
    const r = parseDnsperf(fixture('dnsperf-lost.txt'));
    expect(r.lost).toBe(200);
    expect(r.completed).toBe(0);
    expect(r.errors).toBe(200);
    expect(r.rcodes).toEqual({});
  });

  test('answers other than NOERROR are errors', () => {
    const text = fixture('dnsperf-verbose.txt').replace(
      'NOERROR 45260 (100.00%)',
      'NOERROR 45000 (99.43%), NXDOMAIN 260 (0.57%)',
    );
    const r = parseDnsperf(text);
    expect(r.rcodes).toEqual({ NOERROR: 45000, NXDOMAIN: 260 });
    expect(r.errors).toBe(260);
  });
});

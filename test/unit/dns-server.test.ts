// The DNS server on loopback (port 0) with fake upstreams on 127.0.0.1: local answers, forwarding,
// cache, truncation, failover, malformed input.
import { afterEach, describe, expect, test } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { DnsLogger } from '../../dns/logger.js';
import { createDnsQueryCounter } from '../../dns/metrics.js';
import { decodeQuery } from '../../dns/query.js';
import type { DnsQueryEvent } from '../../dns/resolver.js';
import { startDnsServer, type DnsServer, type DnsServerOptions } from '../../dns/server.js';
import { createVipAllocator } from '../../dns/vip.js';
import { TYPE } from '../../dns/wire.js';
import {
  makeQuery,
  makeResponse,
  parse,
  soa,
  startBlackHole,
  startFakeUpstream,
  tcpAsk,
  udpAsk,
  udpSend,
  type FakeUpstream,
  type Parsed,
} from './dns-helpers.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const hasIpv6Loopback = existsSync('/proc/net/if_inet6');

/** Answers A queries for *.example.test with 203.0.113.5 (TTL 120), NXDOMAIN with an SOA otherwise. */
function standardAnswer(q: Parsed): Buffer {
  const question = q.questions[0]!;
  const id = q.header.id;
  if (question.name.toLowerCase().endsWith('example.test') && question.type === TYPE.A)
    return makeResponse({ id, question, answers: [{ type: TYPE.A, ttl: 120, address: '203.0.113.5' }] });
  return makeResponse({ id, question, rcode: 3, authorities: [soa('test', 600, 60)] });
}

async function upstream(
  answer: (q: Parsed, t: 'udp' | 'tcp') => Buffer | 'silent' = standardAnswer,
): Promise<FakeUpstream> {
  const u = await startFakeUpstream(answer);
  cleanups.push(() => u.close());
  return u;
}

async function server(opts: Partial<DnsServerOptions> & Pick<DnsServerOptions, 'upstream'>) {
  const events: DnsQueryEvent[] = [];
  const s = await startDnsServer({
    port: 0,
    names: ['orders', 'billing'],
    searchSuffixes: ['ns1.svc.cluster.local'],
    vips: createVipAllocator(),
    onQuery: (e) => events.push(e),
    upstreamTimeoutMs: 400,
    ...opts,
  });
  cleanups.push(() => s.close());
  return { s, events };
}

const ask = (s: DnsServer, msg: Buffer, host = '127.0.0.1') => udpAsk(s.port, msg, host).then(parse);
const askTcp = async (s: DnsServer, msg: Buffer) => parse((await tcpAsk(s.port, [msg]))[0]!);

describe('local answers', () => {
  test('A and AAAA with VIPs, authoritative, TTL 30, over UDP and TCP, on 127.0.0.1 and ::1', async () => {
    const vips = createVipAllocator();
    const { s, events } = await server({ upstream: { servers: [] }, vips });
    expect(s.addresses.map((a) => `${a.protocol} ${a.address}`)).toEqual(
      hasIpv6Loopback
        ? ['udp 127.0.0.1', 'tcp 127.0.0.1', 'udp ::1', 'tcp ::1']
        : ['udp 127.0.0.1', 'tcp 127.0.0.1'],
    );
    const a = await ask(s, makeQuery('Orders', TYPE.A, { id: 4242 }));
    expect(a.header).toMatchObject({ id: 4242, qr: 1, aa: 1, rcode: 0, rd: 1, ra: 1 });
    expect(a.questions[0]!.name).toBe('Orders');
    expect(a.answers).toEqual([
      expect.objectContaining({ name: 'Orders', type: TYPE.A, ttl: 30, address: vips.vipFor('orders').ipv4 }),
    ]);
    expect(a.additionals).toEqual([]); // no OPT for a client without EDNS
    const aaaa = await askTcp(s, makeQuery('orders.ns1.svc.cluster.local.', TYPE.AAAA, { edns: 1232 }));
    expect(aaaa.answers).toEqual([
      expect.objectContaining({ type: TYPE.AAAA, ttl: 30, address: vips.vipFor('orders').ipv6 }),
    ]);
    expect(aaaa.additionals[0]).toMatchObject({ type: TYPE.OPT });
    if (hasIpv6Loopback) expect((await ask(s, makeQuery('billing', TYPE.A), '::1')).answers).toHaveLength(1);
    expect(events.every((e) => e.source === 'local' && e.rcode === 'NOERROR')).toBe(true);
    expect(events.map((e) => `${e.type}/${e.transport}`).slice(0, 2)).toEqual(['A/udp', 'AAAA/tcp']);
  });

  test('a known name without data for the type: NOERROR, no answer, SOA with the TTL', async () => {
    const { s } = await server({ upstream: { servers: [] }, families: { ipv6: false }, ttl: 45 });
    for (const type of [TYPE.AAAA, TYPE.TXT, TYPE.MX]) {
      const r = await ask(s, makeQuery('orders', type));
      expect(r.header).toMatchObject({ rcode: 0, aa: 1 });
      expect(r.answers).toEqual([]);
      expect(r.authorities[0]).toMatchObject({ type: TYPE.SOA, ttl: 45, minimum: 45 });
    }
  });

  test('the names provider is read again: added names answer, removed names are forwarded', async () => {
    let names = ['orders'];
    const u = await upstream();
    const { s } = await server({ upstream: { servers: [`127.0.0.1:${u.port}`] }, names: () => names });
    expect((await ask(s, makeQuery('shipping', TYPE.A))).header.rcode).toBe(3);
    names = ['shipping'];
    expect((await ask(s, makeQuery('shipping', TYPE.A))).header.aa).toBe(1);
    expect((await ask(s, makeQuery('orders', TYPE.A))).header).toMatchObject({ aa: 0, rcode: 3 });
  });
});

describe('forwarding', () => {
  test('unknown names go upstream once, then come from the cache with lower TTLs', async () => {
    let now = 5_000_000;
    const u = await upstream();
    const { s, events } = await server({
      upstream: { servers: [`127.0.0.1:${u.port}`] },
      cache: { now: () => now },
    });
    const first = await ask(s, makeQuery('www.example.test', TYPE.A, { id: 1 }));
    expect(first.header).toMatchObject({ id: 1, aa: 0, rcode: 0 });
    expect(first.answers[0]).toMatchObject({ address: '203.0.113.5', ttl: 120 });
    now += 20_000;
    const second = await ask(s, makeQuery('WWW.example.TEST', TYPE.A, { id: 2 }));
    expect(second.header.id).toBe(2);
    expect(second.questions[0]!.name).toBe('WWW.example.TEST');
    expect(second.answers[0]).toMatchObject({ address: '203.0.113.5', ttl: 100 });
    expect(u.queries).toHaveLength(1);
    expect(events.map((e) => e.source)).toEqual(['upstream', 'cache']);
    // Negative answers too.
    await ask(s, makeQuery('nope.test', TYPE.A));
    const nx = await ask(s, makeQuery('nope.test', TYPE.A));
    expect(nx.header.rcode).toBe(3);
    expect(u.queries).toHaveLength(2);
    expect(events.slice(2).map((e) => `${e.source} ${e.rcode}`)).toEqual([
      'upstream NXDOMAIN',
      'cache NXDOMAIN',
    ]);
  });

  test('TCP queries are forwarded over TCP', async () => {
    const u = await upstream();
    const { s } = await server({ upstream: { servers: [`127.0.0.1:${u.port}`] } });
    const r = await askTcp(s, makeQuery('tcp.example.test', TYPE.A));
    expect(r.answers[0]).toMatchObject({ address: '203.0.113.5' });
    expect(u.queries.map((q) => q.transport)).toEqual(['tcp']);
  });

  test('a truncated upstream answer is fetched again over TCP; UDP clients get TC, then the full answer over TCP', async () => {
    const big = (q: Parsed, t: 'udp' | 'tcp') => {
      const question = q.questions[0]!;
      const answers = Array.from({ length: 40 }, (_, i) => ({
        type: TYPE.A,
        ttl: 300,
        address: `203.0.113.${i + 1}`,
      }));
      return t === 'udp'
        ? makeResponse({ id: q.header.id, question, tc: true })
        : makeResponse({ id: q.header.id, question, answers });
    };
    const u = await upstream(big);
    const { s, events } = await server({ upstream: { servers: [`127.0.0.1:${u.port}`] } });
    const udp = await ask(s, makeQuery('big.example.test', TYPE.A));
    expect(udp.header).toMatchObject({ tc: 1, rcode: 0 });
    expect(udp.answers).toEqual([]);
    expect(u.queries.map((q) => q.transport)).toEqual(['udp', 'tcp']);
    const tcp = await askTcp(s, makeQuery('big.example.test', TYPE.A));
    expect(tcp.header.tc).toBe(0);
    expect(tcp.answers).toHaveLength(40);
    expect(u.queries).toHaveLength(2); // the TCP retry came from the cache
    // A client announcing a large enough EDNS buffer gets it all over UDP.
    const edns = await ask(s, makeQuery('big.example.test', TYPE.A, { edns: 4096 }));
    expect(edns.answers).toHaveLength(40);
    expect(events.map((e) => e.source)).toEqual(['upstream', 'cache', 'upstream']);
  });

  test('a dead first server: failover to the next, and later queries skip the dead one', async () => {
    const dead = await startBlackHole();
    cleanups.push(() => dead.close());
    const u = await upstream();
    const { s } = await server({
      upstream: { servers: [`127.0.0.1:${dead.port}`, `127.0.0.1:${u.port}`] },
      upstreamTimeoutMs: 300,
    });
    let t = Date.now();
    expect((await ask(s, makeQuery('one.example.test', TYPE.A))).answers[0]).toMatchObject({
      address: '203.0.113.5',
    });
    expect(Date.now() - t).toBeGreaterThanOrEqual(280);
    t = Date.now();
    expect((await ask(s, makeQuery('two.example.test', TYPE.A))).answers).toHaveLength(1);
    expect(Date.now() - t).toBeLessThan(250);
    expect(dead.received()).toBe(1);
  });

  test('SERVFAIL from the first server: the next one is asked', async () => {
    const bad = await upstream((q) => makeResponse({ id: q.header.id, question: q.questions[0]!, rcode: 2 }));
    const good = await upstream();
    const { s } = await server({
      upstream: { servers: [`127.0.0.1:${bad.port}`, `127.0.0.1:${good.port}`] },
    });
    const r = await ask(s, makeQuery('x.example.test', TYPE.A));
    expect(r.header.rcode).toBe(0);
    expect(bad.queries).toHaveLength(1);
  });

  test('nobody answers: SERVFAIL within the total budget', async () => {
    const dead = await startBlackHole();
    cleanups.push(() => dead.close());
    const { s, events } = await server({
      upstream: { servers: [`127.0.0.1:${dead.port}`, `127.0.0.1:${dead.port}`, `127.0.0.1:${dead.port}`] },
      upstreamTimeoutMs: 300,
      upstreamTotalTimeoutMs: 500,
    });
    const t = Date.now();
    const r = await ask(s, makeQuery('x.example.test', TYPE.A, { edns: 1232 }));
    expect(Date.now() - t).toBeLessThan(1000);
    expect(r.header.rcode).toBe(2);
    expect(r.questions[0]!.name).toBe('x.example.test');
    expect(events).toEqual([{ source: 'error', rcode: 'SERVFAIL', type: 'A', transport: 'udp' }]);
  });

  test('answers with the wrong ID or question are ignored', async () => {
    const liar = await upstream((q) =>
      makeResponse({
        id: (q.header.id + 1) & 0xffff,
        question: q.questions[0]!,
        answers: [{ type: 1, address: '192.0.2.66' }],
      }),
    );
    const other = await upstream((q) =>
      makeResponse({
        id: q.header.id,
        question: { name: 'evil.test', type: 1 },
        answers: [{ type: 1, address: '192.0.2.66' }],
      }),
    );
    const good = await upstream();
    const { s } = await server({
      upstream: { servers: [`127.0.0.1:${liar.port}`, `127.0.0.1:${other.port}`, `127.0.0.1:${good.port}`] },
      upstreamTimeoutMs: 200,
    });
    const r = await ask(s, makeQuery('x.example.test', TYPE.A));
    expect(r.answers[0]).toMatchObject({ address: '203.0.113.5' });
  });
});

describe('robustness', () => {
  test('garbage, truncated and mutated packets never kill the server; FORMERR when the header is readable', async () => {
    const u = await upstream();
    const { s, events } = await server({
      upstream: { servers: [`127.0.0.1:${u.port}`] },
      upstreamTimeoutMs: 100,
    });
    const valid = makeQuery('orders', TYPE.A, { edns: 1232 });
    const inputs: Buffer[] = [];
    for (let i = 0; i < 400; i++) inputs.push(randomBytes(Math.floor(Math.random() * 600)));
    for (let n = 0; n < valid.length; n++) inputs.push(valid.subarray(0, n));
    for (let i = 0; i < 400; i++) {
      const m = Buffer.from(valid);
      for (let k = 0; k < 3; k++) m[Math.floor(Math.random() * m.length)] = Math.floor(Math.random() * 256);
      inputs.push(m);
    }
    for (const [i, input] of inputs.entries()) {
      await udpSend(s.port, input);
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    // Random TCP streams too, including a frame that announces more than it sends.
    for (let i = 0; i < 20; i++) await tcpAsk(s.port, [], '127.0.0.1', { expect: 0, raw: randomBytes(200) });
    await tcpAsk(s.port, [], '127.0.0.1', { expect: 0, raw: Buffer.from([0xff, 0xff, 1, 2, 3]) });
    const garbled = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 7, 0x61]);
    const formerr = await ask(s, garbled);
    expect(formerr.header).toMatchObject({ id: 0xabcd, qr: 1, rcode: 1 });
    const still = await ask(s, makeQuery('orders', TYPE.A));
    expect(still.answers).toHaveLength(1);
    expect((await askTcp(s, makeQuery('orders', TYPE.A))).answers).toHaveLength(1);
    expect(events.some((e) => e.rcode === 'DROPPED')).toBe(true);
    expect(events.some((e) => e.rcode === 'FORMERR')).toBe(true);
  }, 30_000);

  test('the query decoder never throws on random input', () => {
    let verdicts = 0;
    for (let i = 0; i < 20_000; i++) {
      const len = Math.floor(Math.random() * 80);
      const b = randomBytes(len);
      // Bias towards plausible headers so the deeper code paths run too.
      if (len >= 12 && i % 2 === 0) {
        b[2] = b[2]! & 0x7f;
        b.writeUInt16BE(1, 4);
      }
      expect(() => decodeQuery(b)).not.toThrow();
      verdicts++;
    }
    expect(verdicts).toBe(20_000);
  });

  test('TCP: pipelined queries on one connection, and a client that half-closes', async () => {
    const { s } = await server({ upstream: { servers: [] } });
    const answers = await tcpAsk(
      s.port,
      [1, 2, 3].map((id) => makeQuery('orders', TYPE.A, { id })),
    );
    expect(answers.map((a) => parse(a).header.id).sort()).toEqual([1, 2, 3]);
  });

  test('only loopback addresses; a taken port is a clear error', async () => {
    const base = { names: [], vips: createVipAllocator(), upstream: { servers: [] } };
    await expect(startDnsServer({ ...base, hosts: ['0.0.0.0'] })).rejects.toThrow(
      /"0\.0\.0\.0" is not a loopback address/,
    );
    await expect(startDnsServer({ ...base, hosts: ['::'] })).rejects.toThrow(/not a loopback address/);
    await expect(startDnsServer({ ...base, hosts: ['192.0.2.1'] })).rejects.toThrow(/not a loopback address/);
    const { s } = await server({ upstream: { servers: [] }, hosts: ['127.0.0.1'] });
    await expect(startDnsServer({ ...base, port: s.port, hosts: ['127.0.0.1'] })).rejects.toThrow(
      new RegExp(`cannot listen on udp 127\\.0\\.0\\.1:${s.port}: EADDRINUSE`),
    );
  });

  test('a pino logger and the prom-client counter plug in', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger: DnsLogger = pino(
      { level: 'debug' },
      { write: (l: string) => void lines.push(JSON.parse(l)) },
    );
    const registry = new Registry();
    const { onQuery } = createDnsQueryCounter(registry);
    const { s } = await server({ upstream: { servers: [] }, logger, onQuery });
    await ask(s, makeQuery('orders', TYPE.A));
    await ask(s, makeQuery('orders', TYPE.A));
    const metrics = await registry.metrics();
    expect(metrics).toContain('detour_dns_queries_total{source="local",rcode="NOERROR",type="A"} 2');
    // Tallies reach prom-client at each scrape, each query once.
    await ask(s, makeQuery('orders', TYPE.A));
    await ask(s, makeQuery('orders', TYPE.TXT));
    const again = await registry.metrics();
    expect(again).toContain('detour_dns_queries_total{source="local",rcode="NOERROR",type="A"} 3');
    expect(again).toContain('detour_dns_queries_total{source="local",rcode="NOERROR",type="TXT"} 1');
    expect(lines.find((l) => l.msg === 'dns listening')).toMatchObject({ component: 'dns' });
    expect(lines.filter((l) => l.msg === 'dns query')).toHaveLength(4);
  });
});

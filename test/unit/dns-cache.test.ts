import { describe, expect, test } from '@jest/globals';
import { cacheKey, cacheLifetime, createCache } from '../../dns/cache.js';
import { TYPE, readMessage } from '../../dns/wire.js';
import { makeResponse, parse, soa } from './dns-helpers.js';

const limits = { maxTtl: 86400, maxNegativeTtl: 300 };

function positive(name = 'www.example.test', ttls = [100, 60]): Buffer {
  return makeResponse({
    id: 7,
    question: { name, type: TYPE.A },
    answers: ttls.map((ttl, i) => ({ type: TYPE.A, ttl, address: `203.0.113.${i + 1}` })),
    additionals: [{ name: '', type: TYPE.OPT, class: 1232, ttl: 0x8000, rdata: [] }],
  });
}

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

const key = (name: string, type: number = TYPE.A) =>
  cacheKey({ name, type, class: 1, edns: true, dnssecOk: false, checkingDisabled: false });

describe('cache policy', () => {
  test('positive answers live for their smallest TTL, capped', () => {
    expect(cacheLifetime(positive(), limits)).toMatchObject({ ttl: 60, negative: false });
    expect(cacheLifetime(positive('a', [999999]), limits)).toMatchObject({ ttl: 86400 });
    // RFC 2181 §8: a TTL with the top bit set is 0, so not cacheable.
    const topBit = positive('a', [100]);
    topBit.writeUInt32BE(0x80000000, readMessage(topBit).records[0]!.ttlOffset); // dns2 would clamp it
    expect(cacheLifetime(topBit, limits)).toBeUndefined();
    expect(cacheLifetime(positive('a', [0]), limits)).toBeUndefined();
  });

  test('negative answers live for min(SOA TTL, SOA MINIMUM), capped; without an SOA not at all', () => {
    const nx = (ttl: number, minimum: number) =>
      makeResponse({
        id: 1,
        question: { name: 'nope.example.test', type: TYPE.A },
        rcode: 3,
        authorities: [soa('example.test', ttl, minimum)],
      });
    expect(cacheLifetime(nx(600, 120), limits)).toMatchObject({ ttl: 120, negative: true });
    expect(cacheLifetime(nx(45, 120), limits)).toMatchObject({ ttl: 45, negative: true });
    expect(cacheLifetime(nx(3600, 3600), limits)).toMatchObject({ ttl: 300 });
    const nodata = makeResponse({
      id: 1,
      question: { name: 'a.example.test', type: TYPE.AAAA },
      authorities: [soa('example.test', 60, 30)],
    });
    expect(cacheLifetime(nodata, limits)).toMatchObject({ ttl: 30, negative: true });
    const bare = makeResponse({ id: 1, question: { name: 'a.example.test', type: TYPE.AAAA }, rcode: 3 });
    expect(cacheLifetime(bare, limits)).toBeUndefined();
  });

  test('truncated answers, SERVFAIL, REFUSED and garbage are not cached', () => {
    const tc = makeResponse({
      id: 1,
      tc: true,
      question: { name: 'a', type: TYPE.A },
      answers: [{ type: TYPE.A, address: '203.0.113.1' }],
    });
    expect(cacheLifetime(tc, limits)).toBeUndefined();
    for (const rcode of [2, 5])
      expect(
        cacheLifetime(makeResponse({ id: 1, rcode, question: { name: 'a', type: TYPE.A } }), limits),
      ).toBeUndefined();
    expect(cacheLifetime(Buffer.from('garbage that is not dns'), limits)).toBeUndefined();
  });

  test('keys ignore case and include type, class and the EDNS bits', () => {
    expect(key('WWW.Example.test')).toBe(key('www.example.test'));
    expect(key('www.example.test', TYPE.AAAA)).not.toBe(key('www.example.test'));
    const base = { name: 'a', type: 1, class: 1, edns: true, dnssecOk: false, checkingDisabled: false };
    const variants = new Set([
      cacheKey(base),
      cacheKey({ ...base, edns: false }),
      cacheKey({ ...base, dnssecOk: true }),
      cacheKey({ ...base, checkingDisabled: true }),
      cacheKey({ ...base, class: 3 }),
    ]);
    expect(variants.size).toBe(5);
  });
});

describe('cache', () => {
  test('served TTLs drop with age; the entry expires after the smallest TTL', () => {
    const c = clock();
    const cache = createCache({ now: c.now });
    expect(cache.set(key('www.example.test'), positive())).toBe(60);
    c.advance(10_500);
    const hit = parse(cache.get(key('www.example.test'))!);
    expect(hit.answers.map((a) => a.ttl)).toEqual([90, 50]);
    expect(hit.header.id).toBe(0);
    // The OPT record's "TTL" holds flags (DO): untouched.
    expect(hit.additionals[0]).toMatchObject({ type: TYPE.OPT, doFlag: true });
    c.advance(49_000);
    expect(parse(cache.get(key('www.example.test'))!).answers.map((a) => a.ttl)).toEqual([41, 1]);
    c.advance(500);
    expect(cache.get(key('www.example.test'))).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  test('negative answers are cached and expire', () => {
    const c = clock();
    const cache = createCache({ now: c.now });
    const nx = makeResponse({
      id: 9,
      rcode: 3,
      question: { name: 'nope.example.test', type: TYPE.A },
      authorities: [soa('example.test', 600, 120)],
    });
    expect(cache.set(key('nope.example.test'), nx)).toBe(120);
    c.advance(119_999);
    const hit = parse(cache.get(key('nope.example.test'))!);
    expect(hit.header.rcode).toBe(3);
    expect(hit.authorities[0]!.ttl).toBe(600 - 119);
    c.advance(1);
    expect(cache.get(key('nope.example.test'))).toBeUndefined();
  });

  test('least recently used entries go first when the entry bound is reached', () => {
    const cache = createCache({ maxEntries: 3 });
    for (const n of ['a', 'b', 'c']) cache.set(key(n), positive(n));
    expect(cache.get(key('a'))).toBeDefined(); // a is now the most recently used
    cache.set(key('d'), positive('d'));
    expect(cache.size).toBe(3);
    expect(cache.get(key('b'))).toBeUndefined();
    for (const n of ['a', 'c', 'd']) expect(cache.get(key(n))).toBeDefined();
  });

  test('the byte bound holds too', () => {
    const one = positive('a').length;
    const cache = createCache({ maxBytes: one * 2 + 5 });
    for (const n of ['a', 'b', 'c']) cache.set(key(n), positive(n));
    expect(cache.size).toBe(2);
    expect(cache.bytes).toBeLessThanOrEqual(one * 2 + 5);
    expect(cache.get(key('a'))).toBeUndefined();
  });

  test('storing again replaces the entry (no double counting)', () => {
    const cache = createCache();
    cache.set(key('a'), positive('a'));
    const bytes = cache.bytes;
    cache.set(key('a'), positive('a'));
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(bytes);
    cache.clear();
    expect(cache.bytes).toBe(0);
  });
});

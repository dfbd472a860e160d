import { describe, expect, test } from '@jest/globals';
import { decodeQuery, udpLimit } from '../../dns/query.js';
import {
  EDNS_OPTION,
  TYPE,
  WireError,
  fitUdp,
  nameToText,
  readMessage,
  readName,
  withoutEdnsOptions,
} from '../../dns/wire.js';
import { makeQuery, makeResponse, parse } from './dns-helpers.js';

function header(id: number, flags: number, counts: [number, number, number, number]): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(flags, 2);
  counts.forEach((c, i) => b.writeUInt16BE(c, 4 + i * 2));
  return b;
}

describe('names', () => {
  test('compression pointers are followed; loops and forward pointers are errors', () => {
    // "example.test" at 12, then "www" + pointer to 12.
    const msg = Buffer.concat([
      header(1, 0, [0, 0, 0, 0]),
      Buffer.from([7, ...Buffer.from('example'), 4, ...Buffer.from('test'), 0]),
      Buffer.from([3, ...Buffer.from('www'), 0xc0, 12]),
    ]);
    const www = readName(msg, 26);
    expect(nameToText(www.labels)).toBe('www.example.test');
    expect(www.end).toBe(32);
    const loop = Buffer.concat([header(1, 0, [0, 0, 0, 0]), Buffer.from([0xc0, 12])]);
    expect(() => readName(loop, 12)).toThrow(WireError);
    const forward = Buffer.concat([header(1, 0, [0, 0, 0, 0]), Buffer.from([0xc0, 14, 0])]);
    expect(() => readName(forward, 12)).toThrow(/does not point backwards/);
    expect(() => readName(Buffer.concat([header(1, 0, [0, 0, 0, 0]), Buffer.from([5, 0x61])]), 12)).toThrow(
      /message ends inside a label/,
    );
    expect(() => readName(Buffer.concat([header(1, 0, [0, 0, 0, 0]), Buffer.from([0x40])]), 12)).toThrow(
      /unsupported label type 0x40/,
    );
  });

  test('presentation form escapes what would make two names look alike', () => {
    expect(nameToText([Buffer.from('a.b'), Buffer.from('c')])).toBe('a\\.b.c');
    expect(nameToText([Buffer.from([0x41, 0x00, 0x20])])).toBe('A\\000\\032');
    expect(nameToText([])).toBe('.');
  });
});

describe('query classification', () => {
  test('a plain query, with and without EDNS', () => {
    const v = decodeQuery(
      makeQuery('Orders.example.test', TYPE.AAAA, { id: 77, edns: 4096, dnssecOk: true }),
    );
    expect(v.kind).toBe('query');
    if (v.kind !== 'query') return;
    expect(v.query.question).toMatchObject({ name: 'Orders.example.test', type: TYPE.AAAA, class: 1 });
    expect(v.query.edns).toMatchObject({ udpSize: 4096, dnssecOk: true, version: 0 });
    expect(udpLimit(v.query)).toBe(4096);
    const plain = decodeQuery(makeQuery('a', TYPE.A));
    expect(plain.kind === 'query' && udpLimit(plain.query)).toBe(512);
  });

  test('too short or a response: dropped', () => {
    expect(decodeQuery(Buffer.alloc(11))).toMatchObject({ kind: 'drop' });
    expect(decodeQuery(makeResponse({ id: 1, question: { name: 'a', type: 1 } }))).toMatchObject({
      kind: 'drop',
      reason: 'a response, not a query',
    });
  });

  test('unreadable questions get FORMERR with the ID echoed', () => {
    const v = decodeQuery(Buffer.concat([header(0xbeef, 0x0100, [1, 0, 0, 0]), Buffer.from([3, 0x61])]));
    expect(v).toMatchObject({ kind: 'error', rcode: 1 });
    if (v.kind !== 'error') return;
    const r = parse(v.response);
    expect(r.header).toMatchObject({ id: 0xbeef, qr: 1, rcode: 1, rd: 1 });
    const two = Buffer.concat([header(5, 0, [2, 0, 0, 0]), Buffer.from([0, 0, 1, 0, 1, 0, 0, 1, 0, 1])]);
    expect(decodeQuery(two)).toMatchObject({ kind: 'error', rcode: 1, reason: '2 questions (expected 1)' });
    expect(decodeQuery(header(6, 0, [0, 0, 0, 0]))).toMatchObject({ kind: 'error', rcode: 1 });
  });

  test('other opcodes get NOTIMP, zone transfers too, EDNS version 1 gets BADVERS', () => {
    const notify = makeQuery('a', TYPE.SOA);
    notify[2] = notify[2]! | (4 << 3);
    expect(decodeQuery(notify)).toMatchObject({ kind: 'error', rcode: 4 });
    expect(decodeQuery(makeQuery('example.test', TYPE.AXFR))).toMatchObject({ kind: 'error', rcode: 4 });
    const v1 = makeQuery('a', TYPE.A, { edns: 1232 });
    v1[v1.length - 5] = 1; // OPT: name, type, class, then "TTL" = extended rcode, version, flags
    const v = decodeQuery(v1);
    expect(v).toMatchObject({ kind: 'error', rcode: 16 });
    if (v.kind === 'error') {
      const r = readMessage(v.response);
      expect(r.edns?.extendedRcode).toBe(1);
      expect(r.header.rcode).toBe(0);
    }
  });

  test('two OPT records are FORMERR', () => {
    const q = makeQuery('a', TYPE.A, { edns: 1232 });
    const opt = q.subarray(q.length - 11);
    const twice = Buffer.concat([q, opt]);
    twice.writeUInt16BE(2, 10);
    expect(decodeQuery(twice)).toMatchObject({ kind: 'error', rcode: 1 });
  });
});

describe('UDP truncation', () => {
  const many = (n: number, extra = 0) =>
    makeResponse({
      id: 3,
      question: { name: 'big.example.test', type: TYPE.A },
      answers: Array.from({ length: n }, (_, i) => ({ type: TYPE.A, address: `203.0.113.${i + 1}` })),
      additionals: [
        ...Array.from({ length: extra }, (_, i) => ({
          name: `ns${i}.example.test`,
          type: TYPE.A,
          address: '192.0.2.1',
        })),
        { name: '', type: TYPE.OPT, class: 1232, ttl: 0, rdata: [] },
      ],
    });

  test('fits: unchanged', () => {
    const r = many(3);
    expect(fitUdp(r, 512)).toBe(r);
  });

  test('too many answers: TC, the question and the OPT record only', () => {
    const r = many(40);
    expect(r.length).toBeGreaterThan(512);
    const t = parse(fitUdp(r, 512));
    expect(t.header).toMatchObject({ id: 3, tc: 1, qr: 1, ancount: 0, nscount: 0, arcount: 1 });
    expect(t.questions[0]).toMatchObject({ name: 'big.example.test', type: TYPE.A });
    expect(t.additionals[0]).toMatchObject({ type: TYPE.OPT });
    expect(fitUdp(r, 1232)).toBe(r);
  });

  test('only the additional section is too big: dropped without TC', () => {
    const r = many(3, 30);
    expect(r.length).toBeGreaterThan(512);
    const t = parse(fitUdp(r, 512));
    expect(t.header.tc).toBe(0);
    expect(t.answers).toHaveLength(3);
    expect(t.additionals.map((a) => a.type)).toEqual([TYPE.OPT]);
  });
});

describe('EDNS options', () => {
  /** A query whose OPT record carries a COOKIE (10) and a PADDING (12) option. */
  function withOptions(): Buffer {
    const q = makeQuery('www.example.test', TYPE.A, { edns: 1232 });
    const options = Buffer.concat([
      Buffer.from([0, 10, 0, 8]),
      Buffer.from('12345678'),
      Buffer.from([0, 12, 0, 2, 0, 0]),
    ]);
    const out = Buffer.concat([q, options]);
    out.writeUInt16BE(options.length, q.length - 2);
    return out;
  }

  test('the cookie is removed, other options and the rest of the message stay', () => {
    const q = withOptions();
    const layout = readMessage(q);
    const stripped = withoutEdnsOptions(q, layout.edns, new Set([EDNS_OPTION.COOKIE]));
    expect(stripped.length).toBe(q.length - 12);
    const after = readMessage(stripped);
    expect(after.edns).toMatchObject({ udpSize: 1232 });
    expect(stripped.subarray(after.edns!.start + 11)).toEqual(Buffer.from([0, 12, 0, 2, 0, 0]));
    expect(stripped.subarray(0, layout.edns!.start)).toEqual(q.subarray(0, layout.edns!.start));
    // Nothing to remove: the same buffer.
    expect(withoutEdnsOptions(stripped, after.edns, new Set([EDNS_OPTION.COOKIE]))).toBe(stripped);
    expect(withoutEdnsOptions(q, undefined, new Set([EDNS_OPTION.COOKIE]))).toBe(q);
  });

  test('a malformed option list is left alone', () => {
    const q = withOptions();
    q.writeUInt16BE(200, q.length - 16); // the cookie's length field: it claims 200 octets
    expect(withoutEdnsOptions(q, readMessage(q).edns, new Set([EDNS_OPTION.COOKIE]))).toBe(q);
  });
});

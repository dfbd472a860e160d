// The hand-written encoder of local answers: every message it makes must read back (with dns2, an
// independent decoder, and with our own strict reader) as exactly the answer the zone decided.
import { describe, expect, test } from '@jest/globals';
import { SOA_MNAME, SOA_RNAME, encodeLocalAnswer } from '../../dns/answer.js';
import { decodeQuery, type DecodedQuery } from '../../dns/query.js';
import { TYPE, readMessage } from '../../dns/wire.js';
import { makeQuery, parse } from './dns-helpers.js';

function decoded(message: Buffer): DecodedQuery {
  const verdict = decodeQuery(message);
  if (verdict.kind !== 'query') throw new Error(`not a query: ${verdict.kind}`);
  return verdict.query;
}

describe('encodeLocalAnswer', () => {
  test('A answer: header bits, the client case of the name, a compressed owner, the VIP', () => {
    const query = decoded(makeQuery('OrDers.Example', TYPE.A, { id: 4242, rd: true }));
    const out = encodeLocalAnswer(
      query,
      { kind: 'answer', destination: 'orders', records: [{ type: 'A', address: '240.240.1.2' }] },
      30,
    );
    const p = parse(out);
    expect(p.header).toMatchObject({ id: 4242, qr: 1, aa: 1, rd: 1, ra: 1, rcode: 0 });
    expect(p.questions).toEqual([{ name: 'OrDers.Example', type: TYPE.A, class: 1 }]);
    expect(p.answers).toEqual([
      expect.objectContaining({
        name: 'OrDers.Example',
        type: TYPE.A,
        class: 1,
        ttl: 30,
        address: '240.240.1.2',
      }),
    ]);
    expect(out.readUInt16BE(12 + query.questionBytes.length)).toBe(0xc00c);
    expect(readMessage(out).records).toHaveLength(1);
  });

  test('ANY: A and AAAA; RD and CD copied from the query, not set when absent', () => {
    const query = decoded(makeQuery('orders', TYPE.ANY, { rd: false }));
    const out = encodeLocalAnswer(
      query,
      {
        kind: 'answer',
        destination: 'orders',
        records: [
          { type: 'A', address: '240.240.0.7' },
          { type: 'AAAA', address: '2001:2:0:240::7' },
        ],
      },
      5,
    );
    const p = parse(out);
    expect(p.header.rd).toBe(0);
    expect(out[3]! & 0x10).toBe(0);
    expect(p.answers.map((a) => [a.type, (a as { address?: string }).address, a.ttl])).toEqual([
      [TYPE.A, '240.240.0.7', 5],
      [TYPE.AAAA, '2001:2:0:240::7', 5],
    ]);
    const cd = Buffer.from(makeQuery('orders', TYPE.A));
    cd[3] = cd[3]! | 0x10;
    const withCd = encodeLocalAnswer(decoded(cd), { kind: 'nodata', destination: 'orders' }, 5);
    expect(withCd[3]! & 0x10).toBe(0x10);
  });

  test('no data: NOERROR, no answer, an SOA whose MINIMUM is the TTL; EDNS gets an OPT with DO echoed', () => {
    const query = decoded(makeQuery('orders', TYPE.TXT, { edns: 1232, dnssecOk: true }));
    const out = encodeLocalAnswer(query, { kind: 'nodata', destination: 'orders' }, 42);
    const p = parse(out);
    expect(p.header.rcode).toBe(0);
    expect(p.answers).toHaveLength(0);
    expect(p.authorities).toEqual([
      expect.objectContaining({
        name: 'orders',
        type: TYPE.SOA,
        ttl: 42,
        primary: SOA_MNAME,
        admin: SOA_RNAME,
        serial: 1,
        refresh: 3600,
        retry: 600,
        expiration: 86400,
        minimum: 42,
      }),
    ]);
    const layout = readMessage(out);
    expect(layout.edns).toMatchObject({ dnssecOk: true, udpSize: 1232, version: 0 });
    const plain = readMessage(
      encodeLocalAnswer(
        decoded(makeQuery('orders', TYPE.TXT)),
        { kind: 'nodata', destination: 'orders' },
        42,
      ),
    );
    expect(plain.edns).toBeUndefined();
  });

  test('a question name given as a compression pointer is written out in full', () => {
    // ID 0x0161 and a zero flags byte spell the name "a" at offset 0; the question points there.
    const message = Buffer.from([0x01, 0x61, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x00, 0, 1, 0, 1]);
    const query = decoded(message);
    expect(query.question.name).toBe('a');
    const out = encodeLocalAnswer(
      query,
      { kind: 'answer', destination: 'a', records: [{ type: 'A', address: '240.240.0.1' }] },
      30,
    );
    const p = parse(out);
    expect(p.questions).toEqual([{ name: 'a', type: TYPE.A, class: 1 }]);
    expect(p.answers).toEqual([expect.objectContaining({ name: 'a', address: '240.240.0.1' })]);
  });
});

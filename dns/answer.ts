// Encodes the authoritative answers for destination names (A/AAAA with VIPs, or NOERROR/no data with
// an SOA) straight into wire format: header, the query's own question bytes (the client's case), and
// records whose owner is a compression pointer to that question. This is the hot path of every
// destination lookup, so nothing here goes through a generic message encoder.
import { isIPv4 } from 'node:net';
import { parseIPv4, parseIPv6 } from './ip.js';
import type { DecodedQuery } from './query.js';
import type { ZoneDecision } from './zone.js';
import { CLASS_IN, HEADER_SIZE, TYPE, optRecord } from './wire.js';

/** SOA names of the synthesized zone; `.invalid` (RFC 2606) so they can never resolve anywhere. */
export const SOA_MNAME = 'dns.detour.invalid';
export const SOA_RNAME = 'hostmaster.detour.invalid';

/** Pointer to the question name, which always sits right after the header. */
const OWNER_POINTER = 0xc000 | HEADER_SIZE;

function encodeName(name: string): Buffer {
  const labels = name.split('.').filter((l) => l !== '');
  const out = Buffer.alloc(labels.reduce((n, l) => n + 1 + Buffer.byteLength(l), 1));
  let at = 0;
  for (const label of labels) {
    out[at] = out.write(label, at + 1, 'ascii');
    at += 1 + out[at]!;
  }
  return out;
}

const SOA_NAMES = Buffer.concat([encodeName(SOA_MNAME), encodeName(SOA_RNAME)]);
const OPT_PLAIN = optRecord();
const OPT_DNSSEC_OK = optRecord({ dnssecOk: true });

/** The RDATA of an address, remembered per address text (there is one per VIP). */
const rdataCache = new Map<string, Buffer>();
function addressBytes(address: string): Buffer {
  let bytes = rdataCache.get(address);
  if (!bytes) {
    bytes = isIPv4(address) ? ipv4Bytes(address) : ipv6Bytes(address);
    if (rdataCache.size >= 65_536) rdataCache.clear();
    rdataCache.set(address, bytes);
  }
  return bytes;
}
function ipv4Bytes(address: string): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(parseIPv4(address)!, 0);
  return out;
}
function ipv6Bytes(address: string): Buffer {
  const value = parseIPv6(address)!;
  const out = Buffer.alloc(16);
  out.writeBigUInt64BE(value >> 64n, 0);
  out.writeBigUInt64BE(value & 0xffff_ffff_ffff_ffffn, 8);
  return out;
}

/**
 * The question as it goes into the answer: the query's bytes when its name is plain labels (always,
 * for anything a real resolver sends); re-encoded without compression when it used a pointer.
 */
function questionOf(query: DecodedQuery): Buffer {
  const q = query.questionBytes;
  for (let at = 0; at < q.length;) {
    const len = q[at]!;
    if (len === 0) return q;
    if (len >= 0xc0) break;
    at += 1 + len;
  }
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(query.question.type, 0);
  tail.writeUInt16BE(query.question.class, 2);
  return Buffer.concat([encodeName(query.question.name), tail]);
}

export function encodeLocalAnswer(
  query: DecodedQuery,
  decision: Exclude<ZoneDecision, { kind: 'forward' }>,
  ttl: number,
): Buffer {
  const question = questionOf(query);
  const opt = query.edns ? (query.edns.dnssecOk ? OPT_DNSSEC_OK : OPT_PLAIN) : undefined;
  const records = decision.kind === 'answer' ? decision.records : [];
  let size = HEADER_SIZE + question.length + (opt?.length ?? 0);
  for (const r of records) size += 12 + (r.type === 'A' ? 4 : 16);
  if (decision.kind === 'nodata') size += 12 + SOA_NAMES.length + 20;

  const out = Buffer.allocUnsafe(size);
  out.writeUInt16BE(query.header.id, 0);
  // QR, opcode QUERY, AA, the query's RD; RA, the query's CD, NOERROR.
  out[2] = 0x84 | (query.header.rd ? 0x01 : 0);
  out[3] = 0x80 | (query.header.cd ? 0x10 : 0);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(records.length, 6);
  out.writeUInt16BE(decision.kind === 'nodata' ? 1 : 0, 8);
  out.writeUInt16BE(opt ? 1 : 0, 10);
  let at = HEADER_SIZE + question.copy(out, HEADER_SIZE);
  const recordHeader = (type: number, rdlength: number): void => {
    out.writeUInt16BE(OWNER_POINTER, at);
    out.writeUInt16BE(type, at + 2);
    out.writeUInt16BE(CLASS_IN, at + 4);
    out.writeUInt32BE(ttl, at + 6);
    out.writeUInt16BE(rdlength, at + 10);
    at += 12;
  };
  for (const r of records) {
    const rdata = addressBytes(r.address);
    recordHeader(TYPE[r.type], rdata.length);
    at += rdata.copy(out, at);
  }
  if (decision.kind === 'nodata') {
    // The owner is the query name: as far as any resolver can tell, each destination name is the
    // apex of its own zone. MINIMUM = TTL: the negative-caching time (RFC 2308 §5).
    recordHeader(TYPE.SOA, SOA_NAMES.length + 20);
    at += SOA_NAMES.copy(out, at);
    for (const v of [1, 3600, 600, 86400, ttl]) {
      out.writeUInt32BE(v, at);
      at += 4;
    }
  }
  if (opt) at += opt.copy(out, at);
  return out;
}

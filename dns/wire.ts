// DNS wire format (RFC 1035 §4) on raw bytes: reading headers, names and record boundaries, and the
// few rewrites a forwarder needs (ID, TTLs, question case, truncation, error responses). Pure.
//
// Forwarded answers stay the upstream's exact bytes: decoding and re-encoding them (dns2 can do both)
// would drop what a decoder does not model (unknown EDNS options such as cookies, escaped labels,
// record types it decodes lossily), so everything here works on offsets into the original message.

export const HEADER_SIZE = 12;
/** Largest UDP payload a client may ask for without EDNS (RFC 1035 §4.2.1). */
export const MIN_UDP_SIZE = 512;
/** The payload size this server advertises in its own OPT records (DNS flag day 2020). */
export const OWN_UDP_SIZE = 1232;

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  NAPTR: 35,
  OPT: 41,
  DS: 43,
  RRSIG: 46,
  NSEC: 47,
  DNSKEY: 48,
  NSEC3: 50,
  TLSA: 52,
  SVCB: 64,
  HTTPS: 65,
  SPF: 99,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
  CAA: 257,
} as const;

export const CLASS_IN = 1;
export const CLASS_ANY = 255;

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;

const TYPE_NAMES = new Map<number, string>(Object.entries(TYPE).map(([k, v]) => [v, k]));
const RCODE_NAMES = new Map<number, string>(Object.entries(RCODE).map(([k, v]) => [v, k]));

/** "A", "AAAA", ... for the common types; "OTHER" for the rest (a bounded set, fit for metric labels). */
export function typeLabel(type: number): string {
  return TYPE_NAMES.get(type) ?? 'OTHER';
}

/** "NOERROR", "NXDOMAIN", ...; "RCODE<n>" for the rest. */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES.get(rcode) ?? `RCODE${rcode}`;
}

/** A message that cannot be read; `offset` is where reading failed. */
export class WireError extends Error {
  override name = 'WireError';
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} (at octet ${offset})`);
  }
}

export interface Header {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
  /** The 4-bit header RCODE (the OPT record may extend it). */
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readHeader(buf: Buffer): Header | undefined {
  if (buf.length < HEADER_SIZE) return undefined;
  const b2 = buf[2]!;
  const b3 = buf[3]!;
  return {
    id: buf.readUInt16BE(0),
    qr: (b2 & 0x80) !== 0,
    opcode: (b2 >> 3) & 0x0f,
    aa: (b2 & 0x04) !== 0,
    tc: (b2 & 0x02) !== 0,
    rd: (b2 & 0x01) !== 0,
    ra: (b3 & 0x80) !== 0,
    ad: (b3 & 0x20) !== 0,
    cd: (b3 & 0x10) !== 0,
    rcode: b3 & 0x0f,
    qdcount: buf.readUInt16BE(4),
    ancount: buf.readUInt16BE(6),
    nscount: buf.readUInt16BE(8),
    arcount: buf.readUInt16BE(10),
  };
}

function need(buf: Buffer, offset: number, length: number, what: string): void {
  if (offset + length > buf.length) throw new WireError(`message ends inside ${what}`, offset);
}

const MAX_NAME = 255;

/**
 * Reads the name at `offset`, following compression pointers (each must point strictly before the
 * previous one, so a crafted loop cannot hang us). Returns its labels and the offset after the name
 * as it sits at `offset`.
 */
export function readName(buf: Buffer, offset: number): { labels: Buffer[]; end: number } {
  const labels: Buffer[] = [];
  let pos = offset;
  let end = -1;
  let limit = offset;
  let octets = 1;
  for (;;) {
    need(buf, pos, 1, 'a name');
    const len = buf[pos]!;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      return { labels, end };
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      need(buf, pos, 2, 'a compression pointer');
      const target = buf.readUInt16BE(pos) & 0x3fff;
      if (end < 0) end = pos + 2;
      if (target >= limit) throw new WireError('compression pointer does not point backwards', pos);
      limit = target;
      pos = target;
      continue;
    }
    if (kind !== 0) throw new WireError(`unsupported label type 0x${len.toString(16)}`, pos);
    need(buf, pos + 1, len, 'a label');
    octets += len + 1;
    if (octets > MAX_NAME) throw new WireError('name longer than 255 octets', pos);
    labels.push(buf.subarray(pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
}

/** Offset just after the name at `offset`, without following pointers. */
export function skipName(buf: Buffer, offset: number): number {
  return readName(buf, offset).end;
}

/**
 * Presentation form (RFC 1035 §5.1): labels joined by ".", no trailing dot, "." for the root; dots,
 * backslashes and other special characters escaped, other bytes outside printable ASCII as \DDD. So
 * two names are equal (ignoring ASCII case) exactly when their texts are.
 */
export function nameToText(labels: readonly Buffer[]): string {
  if (labels.length === 0) return '.';
  return labels
    .map((label) => {
      let s = '';
      for (const c of label) {
        if (
          c === 0x2e ||
          c === 0x5c ||
          c === 0x22 ||
          c === 0x28 ||
          c === 0x29 ||
          c === 0x3b ||
          c === 0x40 ||
          c === 0x24
        )
          s += `\\${String.fromCharCode(c)}`;
        else if (c > 0x20 && c < 0x7f) s += String.fromCharCode(c);
        else s += `\\${c.toString().padStart(3, '0')}`;
      }
      return s;
    })
    .join('.');
}

/** ASCII-only lower case, as DNS compares names. */
export function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

export interface Question {
  /** Presentation form, the client's case. */
  name: string;
  type: number;
  class: number;
  /** Octets [start, end) of the question in the message. */
  start: number;
  end: number;
}

export interface Edns {
  /** The requestor's UDP payload size, as sent (may be below 512). */
  udpSize: number;
  version: number;
  dnssecOk: boolean;
  /** High 8 bits of a 12-bit RCODE (RFC 6891 §6.1.3). */
  extendedRcode: number;
  /** Octets [start, end) of the OPT record. */
  start: number;
  end: number;
}

export interface RecordInfo {
  section: 'answer' | 'authority' | 'additional';
  type: number;
  class: number;
  ttl: number;
  /** Octet offset of the 32-bit TTL field. */
  ttlOffset: number;
  rdataOffset: number;
  rdlength: number;
  start: number;
  end: number;
}

export interface MessageLayout {
  header: Header;
  questions: Question[];
  records: RecordInfo[];
  /** The OPT record, when the additional section has exactly one. */
  edns?: Edns;
  /** Where the last record ended (trailing bytes after it are ignored). */
  end: number;
}

function readQuestion(buf: Buffer, offset: number): Question {
  const { labels, end } = readName(buf, offset);
  need(buf, end, 4, 'a question');
  return {
    name: nameToText(labels),
    type: buf.readUInt16BE(end),
    class: buf.readUInt16BE(end + 2),
    start: offset,
    end: end + 4,
  };
}

/** Reads every section's boundaries. Throws WireError when the message is malformed. */
export function readMessage(buf: Buffer): MessageLayout {
  const header = readHeader(buf);
  if (!header) throw new WireError(`message of ${buf.length} octets is shorter than the header`, 0);
  let pos = HEADER_SIZE;
  const questions: Question[] = [];
  for (let i = 0; i < header.qdcount; i++) {
    const q = readQuestion(buf, pos);
    questions.push(q);
    pos = q.end;
  }
  const records: RecordInfo[] = [];
  let edns: Edns | undefined;
  let optCount = 0;
  const sections = [
    ['answer', header.ancount],
    ['authority', header.nscount],
    ['additional', header.arcount],
  ] as const;
  for (const [section, count] of sections) {
    for (let i = 0; i < count; i++) {
      const start = pos;
      const nameEnd = skipName(buf, pos);
      need(buf, nameEnd, 10, `a ${section} record`);
      const type = buf.readUInt16BE(nameEnd);
      const cls = buf.readUInt16BE(nameEnd + 2);
      const ttl = buf.readUInt32BE(nameEnd + 4);
      const rdlength = buf.readUInt16BE(nameEnd + 8);
      const rdataOffset = nameEnd + 10;
      need(buf, rdataOffset, rdlength, `the data of a ${section} record`);
      pos = rdataOffset + rdlength;
      records.push({
        section,
        type,
        class: cls,
        ttl,
        ttlOffset: nameEnd + 4,
        rdataOffset,
        rdlength,
        start,
        end: pos,
      });
      if (type === TYPE.OPT) {
        if (section !== 'additional') throw new WireError(`OPT record in the ${section} section`, start);
        if (nameEnd !== start + 1 || buf[start] !== 0)
          throw new WireError('OPT record with a non-root name', start);
        optCount++;
        edns = {
          udpSize: cls,
          version: (ttl >>> 16) & 0xff,
          extendedRcode: ttl >>> 24,
          dnssecOk: (ttl & 0x8000) !== 0,
          start,
          end: pos,
        };
      }
    }
  }
  if (optCount > 1) throw new WireError('more than one OPT record', HEADER_SIZE);
  return { header, questions, records, ...(edns ? { edns } : {}), end: pos };
}

/** A copy of `buf` with another ID. */
export function withId(buf: Buffer, id: number): Buffer {
  const out = Buffer.from(buf);
  out.writeUInt16BE(id & 0xffff, 0);
  return out;
}

/** Byte equality with ASCII letters folded to lower case (how DNS compares names). */
export function equalsIgnoringAsciiCase(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    let x = a[i]!;
    let y = b[i]!;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/** Compares two questions' bytes, names ignoring ASCII case. */
export function sameQuestion(a: Buffer, qa: Question, b: Buffer, qb: Question): boolean {
  return equalsIgnoringAsciiCase(a.subarray(qa.start, qa.end), b.subarray(qb.start, qb.end));
}

/**
 * OPT record bytes for a response: our payload size, the requestor's DO bit (RFC 3225), and the high
 * bits of an extended RCODE (RFC 6891 §6.1.3).
 */
export function optRecord(opts: { dnssecOk?: boolean; extendedRcode?: number } = {}): Buffer {
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(TYPE.OPT, 1);
  opt.writeUInt16BE(OWN_UDP_SIZE, 3);
  opt.writeUInt32BE((((opts.extendedRcode ?? 0) & 0xff) << 24) | (opts.dnssecOk ? 0x8000 : 0), 5);
  return opt;
}

/**
 * A response made of the query's header bits, its question (when readable) and optionally an OPT
 * record: FORMERR, SERVFAIL, NOTIMP, BADVERS, and the TC skeleton all have this shape.
 */
export function bareResponse(opts: {
  id: number;
  /** Flag bytes of the query (bytes 2-3), to copy opcode, RD and CD from. */
  queryFlags: number;
  rcode: number;
  question?: Buffer;
  opt?: Buffer;
  tc?: boolean;
  aa?: boolean;
}): Buffer {
  const header = Buffer.alloc(HEADER_SIZE);
  header.writeUInt16BE(opts.id, 0);
  const opcode = (opts.queryFlags >> 11) & 0x0f;
  const rd = (opts.queryFlags >> 8) & 0x01;
  const cd = opts.queryFlags & 0x10;
  header[2] = 0x80 | (opcode << 3) | (opts.aa ? 0x04 : 0) | (opts.tc ? 0x02 : 0) | rd;
  header[3] = 0x80 | cd | (opts.rcode & 0x0f);
  header.writeUInt16BE(opts.question ? 1 : 0, 4);
  header.writeUInt16BE(opts.opt ? 1 : 0, 10);
  return Buffer.concat([header, opts.question ?? Buffer.alloc(0), opts.opt ?? Buffer.alloc(0)]);
}

/**
 * Fits a response into `limit` octets for UDP. First choice: drop additional records (but not OPT)
 * without setting TC, when answer and authority then fit (RFC 2181 §9: TC means the answer is
 * incomplete). Otherwise: header with TC set, the question and the OPT record, so the client retries
 * over TCP. A response that cannot be read is returned as a TC skeleton of its header alone.
 */
export function fitUdp(response: Buffer, limit: number): Buffer {
  if (response.length <= limit) return response;
  const flags = response.readUInt16BE(2);
  let layout: MessageLayout;
  try {
    layout = readMessage(response);
  } catch {
    const header = Buffer.from(response.subarray(0, HEADER_SIZE));
    header[2] = header[2]! | 0x02;
    header.fill(0, 4);
    return header;
  }
  const question = layout.questions[0];
  const questionBytes = question ? response.subarray(question.start, question.end) : undefined;
  const opt = layout.edns ? response.subarray(layout.edns.start, layout.edns.end) : undefined;
  const lastAuthority = layout.records.filter((r) => r.section !== 'additional').at(-1);
  const coreEnd = lastAuthority?.end ?? question?.end ?? HEADER_SIZE;
  if (layout.questions.length <= 1 && coreEnd + (opt?.length ?? 0) <= limit) {
    const out = Buffer.concat([response.subarray(0, coreEnd), opt ?? Buffer.alloc(0)]);
    out.writeUInt16BE(opt ? 1 : 0, 10);
    return out;
  }
  const skeleton = bareResponse({
    id: layout.header.id,
    queryFlags: flags,
    rcode: flags & 0x0f,
    tc: true,
    aa: layout.header.aa,
    ...(questionBytes ? { question: Buffer.from(questionBytes) } : {}),
    ...(opt ? { opt: Buffer.from(opt) } : {}),
  });
  // bareResponse sets RA; keep the response's own RA/AD bits instead.
  skeleton[3] = response[3]!;
  if (skeleton.length <= limit) return skeleton;
  return bareResponse({ id: layout.header.id, queryFlags: flags, rcode: flags & 0x0f, tc: true });
}

/** A copy with every TTL (except OPT's, which holds flags) lowered by `seconds`, not below 0. */
export function withTtlsReducedBy(buf: Buffer, records: readonly RecordInfo[], seconds: number): Buffer {
  const out = Buffer.from(buf);
  if (seconds <= 0) return out;
  for (const r of records) {
    if (r.type === TYPE.OPT) continue;
    out.writeUInt32BE(Math.max(0, r.ttl - seconds), r.ttlOffset);
  }
  return out;
}

/** EDNS option codes (RFC 6891 §6.1.2). */
export const EDNS_OPTION = { COOKIE: 10 } as const;

/**
 * A copy of `buf` without the EDNS options whose codes are in `codes` (the OPT record shrinks; nothing
 * else moves relative to it, and the OPT record is last-section data nothing points into). Returns
 * `buf` itself when there is nothing to remove or the OPT record cannot be read.
 */
export function withoutEdnsOptions(buf: Buffer, edns: Edns | undefined, codes: ReadonlySet<number>): Buffer {
  if (!edns) return buf;
  const rdataOffset = edns.start + 11;
  const rdlength = buf.readUInt16BE(edns.start + 9);
  const kept: Buffer[] = [];
  let removed = false;
  for (let pos = rdataOffset; pos < rdataOffset + rdlength;) {
    if (pos + 4 > rdataOffset + rdlength) return buf;
    const code = buf.readUInt16BE(pos);
    const end = pos + 4 + buf.readUInt16BE(pos + 2);
    if (end > rdataOffset + rdlength) return buf;
    if (codes.has(code)) removed = true;
    else kept.push(buf.subarray(pos, end));
    pos = end;
  }
  if (!removed) return buf;
  const rdata = Buffer.concat(kept);
  const head = Buffer.from(buf.subarray(0, rdataOffset));
  head.writeUInt16BE(rdata.length, edns.start + 9);
  return Buffer.concat([head, rdata, buf.subarray(edns.end)]);
}

/** SOA record data: TTL of the record and its MINIMUM field (RFC 2308 §5: negative TTL = min of both). */
export function soaMinimum(buf: Buffer, record: RecordInfo): number | undefined {
  if (record.type !== TYPE.SOA || record.rdlength < 22) return undefined;
  return buf.readUInt32BE(record.rdataOffset + record.rdlength - 4);
}

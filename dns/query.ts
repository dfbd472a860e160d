// Classifies one received message: a query to answer, an error to send back (FORMERR, NOTIMP,
// BADVERS) or something to drop silently. Pure.
import {
  HEADER_SIZE,
  RCODE,
  TYPE,
  WireError,
  bareResponse,
  optRecord,
  readHeader,
  readMessage,
  readName,
  type Edns,
  type Header,
  type Question,
} from './wire.js';

export interface DecodedQuery {
  header: Header;
  /** Header bytes 2-3 (flags), as received. */
  flags: number;
  question: Question;
  /** The question's bytes, as received (the client's case). */
  questionBytes: Buffer;
  edns?: Edns;
  /** The whole message as received. */
  raw: Buffer;
}

export type QueryVerdict =
  | { kind: 'query'; query: DecodedQuery }
  /** Answer with `response` (already encoded, the query's ID). */
  | { kind: 'error'; rcode: number; reason: string; response: Buffer }
  /** Not worth an answer: too short for a header, or a response rather than a query. */
  | { kind: 'drop'; reason: string };

function firstQuestionBytes(buf: Buffer): Buffer | undefined {
  try {
    const { end } = readName(buf, HEADER_SIZE);
    return end + 4 <= buf.length ? Buffer.from(buf.subarray(HEADER_SIZE, end + 4)) : undefined;
  } catch {
    return undefined;
  }
}

export function decodeQuery(buf: Buffer): QueryVerdict {
  const header = readHeader(buf);
  if (!header) return { kind: 'drop', reason: `${buf.length} octets, shorter than a DNS header` };
  // Answering a response could start a loop between two servers, or reflect traffic at a victim.
  if (header.qr) return { kind: 'drop', reason: 'a response, not a query' };
  const flags = buf.readUInt16BE(2);
  const error = (rcode: number, reason: string, question?: Buffer, edns?: Edns): QueryVerdict => ({
    kind: 'error',
    rcode,
    reason,
    response: bareResponse({
      id: header.id,
      queryFlags: flags,
      rcode: rcode & 0x0f,
      ...(question ? { question } : {}),
      ...(edns ? { opt: optRecord({ dnssecOk: edns.dnssecOk, extendedRcode: rcode >> 4 }) } : {}),
    }),
  });
  let layout;
  try {
    layout = readMessage(buf);
  } catch (e) {
    const reason = e instanceof WireError ? e.message : String(e);
    return error(RCODE.FORMERR, reason, header.qdcount === 1 ? firstQuestionBytes(buf) : undefined);
  }
  const question = layout.questions[0];
  const questionBytes = question ? Buffer.from(buf.subarray(question.start, question.end)) : undefined;
  const single = layout.questions.length === 1 ? questionBytes : undefined;
  if (header.opcode !== 0)
    return error(RCODE.NOTIMP, `opcode ${header.opcode} is not QUERY`, single, layout.edns);
  if (!question || !questionBytes || layout.questions.length !== 1)
    return error(RCODE.FORMERR, `${layout.questions.length} questions (expected 1)`, undefined, layout.edns);
  if (layout.edns && layout.edns.version > 0)
    return error(RCODE.BADVERS, `EDNS version ${layout.edns.version} (only 0)`, undefined, layout.edns);
  if (question.type === TYPE.AXFR || question.type === TYPE.IXFR)
    return error(RCODE.NOTIMP, 'zone transfers are not served', questionBytes, layout.edns);
  return {
    kind: 'query',
    query: {
      header,
      flags,
      question,
      questionBytes,
      ...(layout.edns ? { edns: layout.edns } : {}),
      raw: buf,
    },
  };
}

/** The most a UDP answer to this query may hold: 512 without EDNS, else the client's size (≥ 512). */
export function udpLimit(query: DecodedQuery): number {
  const size = query.edns?.udpSize ?? 512;
  return Math.min(Math.max(size, 512), 65_507);
}

/** A SERVFAIL (or other rcode) for a decoded query: its question and, for EDNS clients, an OPT. */
export function errorFor(query: DecodedQuery, rcode: number): Buffer {
  return bareResponse({
    id: query.header.id,
    queryFlags: query.flags,
    rcode,
    question: query.questionBytes,
    ...(query.edns ? { opt: optRecord({ dnssecOk: query.edns.dnssecOk }) } : {}),
  });
}

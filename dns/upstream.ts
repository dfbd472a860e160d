// Forwarding to the upstream nameservers (those of the original resolv.conf).
//
// Servers are tried in order, each with its own timeout, all within a total time budget. UDP queries
// go over UDP first and are repeated over TCP to the same server when the answer has TC set; TCP
// queries go over TCP. A server that answers SERVFAIL, REFUSED or NOTIMP is alive but unhelpful: the
// next one is asked, and that answer is used only when nobody does better. A server that times out or
// fails at the socket level goes to the back of the order for `penaltyMs`, so one dead server costs
// one timeout, not one per query.
//
// The query is sent as the client sent it (its EDNS options included), under a fresh random ID and
// from a fresh socket (random source port, RFC 5452); an answer counts only when it comes from the
// server asked, carries that ID and repeats the question.
//
// When detour captures DNS, the app's resolv.conf still names these servers and the capture rules send
// that traffic to us; our own queries are not captured because the dataplane's UID is excluded, so
// forwarding to the same addresses does not loop.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { FrameReader, frame } from './tcp-frames.js';
import {
  HEADER_SIZE,
  RCODE,
  readHeader,
  readMessage,
  readName,
  rcodeName,
  sameQuestion,
  withId,
  type Question,
} from './wire.js';

export interface UpstreamServer {
  address: string;
  port: number;
}

export interface UpstreamOptions {
  servers: ReadonlyArray<string | UpstreamServer>;
  /** Per server and attempt; default 2000 ms. */
  timeoutMs?: number;
  /** For one query across all servers; default 5000 ms. */
  totalTimeoutMs?: number;
  /** How long a server that timed out stays at the back of the order; default 30000 ms. */
  penaltyMs?: number;
  now?: () => number;
}

export interface UpstreamResult {
  /** The upstream's answer, bytes as received (its ID is the one we chose, not the client's). */
  response: Buffer;
  server: UpstreamServer;
  transport: 'udp' | 'tcp';
}

export interface Upstream {
  query(message: Buffer, transport: 'udp' | 'tcp'): Promise<UpstreamResult>;
  readonly servers: readonly UpstreamServer[];
  /** Aborts queries in flight (they reject) and refuses new ones. */
  close(): void;
}

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    message: string,
    readonly attempts: readonly string[],
  ) {
    super(message);
  }
}

/** "198.51.100.1", "198.51.100.1:5353", "2001:db8::1", "[2001:db8::1]:5353", "fe80::1%eth0". */
export function parseUpstreamServer(spec: string | UpstreamServer): UpstreamServer {
  if (typeof spec !== 'string') {
    if (net.isIP(spec.address.split('%')[0]!) === 0)
      throw new Error(`upstream DNS server: "${spec.address}" is not an IP address`);
    if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535)
      throw new Error(`upstream DNS server ${spec.address}: port ${spec.port} is not 1-65535`);
    return { address: spec.address, port: spec.port };
  }
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  const v4port = /^([\d.]+):(\d+)$/.exec(spec);
  const [address, port] = bracketed
    ? [bracketed[1]!, bracketed[2]]
    : v4port
      ? [v4port[1]!, v4port[2]]
      : [spec, undefined];
  return parseUpstreamServer({ address, port: port === undefined ? 53 : Number(port) });
}

export function formatServer(s: UpstreamServer): string {
  return s.address.includes(':') ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;
}

class AttemptError extends Error {}

interface Exchange {
  promise: Promise<Buffer>;
  abort(reason: string): void;
}

/** Does `response` answer `query` (same ID, QR set, same question)? */
function answers(query: Buffer, question: Question | undefined, response: Buffer): boolean {
  const q = readHeader(query);
  const r = readHeader(response);
  if (!q || !r || !r.qr || r.id !== q.id) return false;
  if (!question) return r.qdcount === 0;
  // Some servers drop the question from error answers (e.g. FORMERR).
  if (r.qdcount === 0) return r.rcode !== RCODE.NOERROR;
  try {
    const { end } = readName(response, HEADER_SIZE);
    const rq: Question = { name: '', type: 0, class: 0, start: HEADER_SIZE, end: end + 4 };
    return end + 4 <= response.length && sameQuestion(query, question, response, rq);
  } catch {
    return false;
  }
}

function exchange(
  transport: 'udp' | 'tcp',
  server: UpstreamServer,
  query: Buffer,
  question: Question | undefined,
  timeoutMs: number,
): Exchange {
  let finish: (err: Error | undefined, res?: Buffer) => void = () => {};
  let cleanup: () => void = () => {};
  const promise = new Promise<Buffer>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => finish(new AttemptError(`no answer within ${timeoutMs} ms`)), timeoutMs);
    finish = (err, res) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      if (err) reject(err);
      else resolve(res!);
    };
    const accept = (msg: Buffer): void => {
      if (!answers(query, question, msg)) return;
      // A truncated answer may legitimately end mid-record; any other must be readable to the end.
      if (!readHeader(msg)!.tc) {
        try {
          readMessage(msg);
        } catch (e) {
          finish(new AttemptError(`malformed answer: ${(e as Error).message}`));
          return;
        }
      }
      finish(undefined, msg);
    };
    if (transport === 'udp') {
      const socket = dgram.createSocket(net.isIPv6(server.address.split('%')[0]!) ? 'udp6' : 'udp4');
      cleanup = () => {
        try {
          socket.close();
        } catch {
          // already closed
        }
      };
      socket.on('error', (e) => finish(e));
      socket.on('message', accept);
      // connect(): only the server's datagrams arrive, and an ICMP "port unreachable" surfaces as an
      // error at once instead of a timeout.
      socket.connect(server.port, server.address, () => {
        if (done) return; // aborted or timed out meanwhile: the socket is closed
        try {
          socket.send(query, (e) => e && finish(e));
        } catch (e) {
          finish(e as Error);
        }
      });
    } else {
      const socket = net.connect({ host: server.address, port: server.port });
      cleanup = () => socket.destroy();
      const reader = new FrameReader();
      socket.setNoDelay(true);
      socket.on('connect', () => socket.write(frame(query)));
      socket.on('data', (chunk: Buffer) => reader.push(chunk).forEach(accept));
      socket.on('error', (e) => finish(e));
      socket.on('close', () => finish(new AttemptError('connection closed before an answer')));
    }
  });
  return { promise, abort: (reason) => finish(new AttemptError(reason)) };
}

/** rcodes after which the next server is asked. */
const TRY_NEXT = new Set<number>([RCODE.SERVFAIL, RCODE.REFUSED, RCODE.NOTIMP]);

export function createUpstream(opts: UpstreamOptions): Upstream {
  const servers = opts.servers.map(parseUpstreamServer);
  const timeoutMs = opts.timeoutMs ?? 2000;
  const totalTimeoutMs = opts.totalTimeoutMs ?? 5000;
  const penaltyMs = opts.penaltyMs ?? 30_000;
  const now = opts.now ?? Date.now;
  const downUntil = new Map<UpstreamServer, number>();
  const inFlight = new Set<Exchange>();
  let closed = false;

  const ordered = (): UpstreamServer[] => {
    const t = now();
    const up = servers.filter((s) => (downUntil.get(s) ?? 0) <= t);
    return [...up, ...servers.filter((s) => !up.includes(s))];
  };

  const attempt = async (
    transport: 'udp' | 'tcp',
    server: UpstreamServer,
    message: Buffer,
    question: Question | undefined,
    ms: number,
  ): Promise<Buffer> => {
    if (closed) throw new AttemptError('upstream closed');
    const ex = exchange(transport, server, withId(message, randomInt(0x10000)), question, ms);
    inFlight.add(ex);
    try {
      return await ex.promise;
    } finally {
      inFlight.delete(ex);
    }
  };

  return {
    servers,
    close() {
      closed = true;
      for (const ex of [...inFlight]) ex.abort('upstream closed');
    },
    async query(message, transport) {
      let question: Question | undefined;
      try {
        question = readMessage(message).questions[0];
      } catch (e) {
        throw new UpstreamError(`cannot forward a malformed query: ${(e as Error).message}`, []);
      }
      const what = question ? `${question.name} type ${question.type}` : 'query';
      if (servers.length === 0)
        throw new UpstreamError(`no upstream DNS servers are configured to forward ${what} to`, []);
      const deadline = now() + totalTimeoutMs;
      const attempts: string[] = [];
      let unhelpful: UpstreamResult | undefined;
      for (const server of ordered()) {
        const budget = (): number => Math.min(timeoutMs, deadline - now());
        if (budget() <= 0) {
          attempts.push(`${formatServer(server)}: not tried, ${totalTimeoutMs} ms total budget spent`);
          continue;
        }
        let via = transport;
        let response: Buffer;
        try {
          response = await attempt(via, server, message, question, budget());
        } catch (e) {
          downUntil.set(server, now() + penaltyMs);
          attempts.push(`${formatServer(server)} over ${via}: ${(e as Error).message}`);
          continue;
        }
        downUntil.delete(server);
        if (readHeader(response)!.tc && via === 'udp' && budget() > 0) {
          try {
            response = await attempt('tcp', server, message, question, budget());
            via = 'tcp';
          } catch (e) {
            // The truncated answer still goes to the client, which can retry over TCP itself.
            attempts.push(
              `${formatServer(server)} over tcp after a truncated answer: ${(e as Error).message}`,
            );
          }
        }
        const rcode = readHeader(response)!.rcode;
        if (TRY_NEXT.has(rcode)) {
          attempts.push(`${formatServer(server)} over ${via}: ${rcodeName(rcode)}`);
          unhelpful ??= { response, server, transport: via };
          continue;
        }
        return { response, server, transport: via };
      }
      if (unhelpful) return unhelpful;
      throw new UpstreamError(`no upstream DNS server answered ${what}: ${attempts.join('; ')}`, attempts);
    },
  };
}

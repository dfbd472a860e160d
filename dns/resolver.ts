// One query in, one answer out (or nothing): classify, answer locally, from the cache, or from the
// upstream; errors become SERVFAIL. No sockets here: the server feeds it messages, tests call it.
import { encodeLocalAnswer } from './answer.js';
import { cacheKey, type DnsCache } from './cache.js';
import type { DnsLogger } from './logger.js';
import { decodeQuery, errorFor, udpLimit, type DecodedQuery } from './query.js';
import { formatServer, type Upstream, type UpstreamResult } from './upstream.js';
import type { Vip } from './vip.js';
import {
  EDNS_OPTION,
  MIN_UDP_SIZE,
  RCODE,
  equalsIgnoringAsciiCase,
  fitUdp,
  rcodeName,
  readHeader,
  readMessage,
  typeLabel,
  withId,
  withoutEdnsOptions,
} from './wire.js';
import { decide, type Families, type Zone } from './zone.js';

export type QuerySource = 'local' | 'cache' | 'upstream' | 'error';

export interface DnsQueryEvent {
  /** local: a destination name; cache / upstream: forwarded; error: FORMERR, NOTIMP, SERVFAIL we made, or dropped. */
  source: QuerySource;
  /** "NOERROR", "NXDOMAIN", "SERVFAIL", ...; "DROPPED" when nothing was sent back. */
  rcode: string;
  /** Query type: "A", "AAAA", "TXT", ..., "OTHER" for uncommon types, "NONE" when unreadable. */
  type: string;
  transport: 'udp' | 'tcp';
}

export interface ResolverOptions {
  zone: () => Zone;
  vipFor: (name: string) => Vip;
  families: Families;
  /** TTL of local answers, seconds. */
  ttl: number;
  upstream: Upstream;
  cache?: DnsCache;
  logger: DnsLogger;
  onQuery?: (event: DnsQueryEvent) => void;
}

/** The answer to send back, or undefined to send nothing. */
export type Reply = Buffer | undefined;

export interface Resolver {
  /**
   * The answer to send back, or undefined to send nothing. Destination names, errors and cache hits
   * are answered synchronously (no promise on the hot path); only forwarded queries return a promise.
   * Never throws or rejects.
   */
  handle(message: Buffer, transport: 'udp' | 'tcp'): Reply | Promise<Reply>;
}

const HOP_BY_HOP_OPTIONS: ReadonlySet<number> = new Set([EDNS_OPTION.COOKIE]);

/** The response's rcode including EDNS's extended bits. */
function fullRcode(response: Buffer): number {
  const header = readHeader(response);
  if (!header) return RCODE.SERVFAIL;
  try {
    return ((readMessage(response).edns?.extendedRcode ?? 0) << 4) | header.rcode;
  } catch {
    return header.rcode;
  }
}

/** A stored or upstream answer made the client's: its ID, its question's case, its RD bit. */
function forClient(response: Buffer, query: DecodedQuery): Buffer {
  const out = withId(response, query.header.id);
  out[2] = (out[2]! & ~0x01) | (query.header.rd ? 0x01 : 0);
  const q = query.questionBytes;
  // The same name ignoring case (the upstream exchange checked it, the cache key ensures it).
  if (readHeader(out)!.qdcount === 1 && equalsIgnoringAsciiCase(out.subarray(12, 12 + q.length), q))
    q.copy(out, 12);
  return out;
}

export function createResolver(opts: ResolverOptions): Resolver {
  const log = opts.logger;
  // Building a debug line's fields costs on every query; skip it unless someone will read it.
  const debugOn = (): boolean => log.isLevelEnabled?.('debug') ?? true;
  const emit = (event: DnsQueryEvent): void => {
    try {
      opts.onQuery?.(event);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'dns onQuery hook failed');
    }
  };
  // Identical questions in flight share one upstream exchange.
  const pending = new Map<string, Promise<UpstreamResult>>();

  const forward = (key: string, query: DecodedQuery, transport: 'udp' | 'tcp'): Promise<UpstreamResult> => {
    const k = `${transport}|${key}`;
    let p = pending.get(k);
    if (!p) {
      // DNS cookies (RFC 7873) are between two hops: the client's cookie means nothing to the upstream,
      // and the upstream's answer cookie would be cached and handed to other clients.
      const message = withoutEdnsOptions(query.raw, query.edns, HOP_BY_HOP_OPTIONS);
      p = opts.upstream.query(message, transport).finally(() => pending.delete(k));
      pending.set(k, p);
    }
    return p;
  };

  const answer = (query: DecodedQuery, transport: 'udp' | 'tcp'): Buffer | Promise<Buffer> => {
    const { question } = query;
    const type = typeLabel(question.type);
    const done = (source: QuerySource, response: Buffer, rcode = fullRcode(response)): Buffer => {
      emit({ source, rcode: rcodeName(rcode), type, transport });
      if (debugOn())
        log.debug({ name: question.name, type, source, rcode: rcodeName(rcode), transport }, 'dns query');
      return transport === 'udp' ? fitUdp(response, udpLimit(query)) : response;
    };
    const servfail = (e: unknown): Buffer => {
      log.warn(
        { name: question.name, type, err: (e as Error).message },
        'dns query failed, answering SERVFAIL',
      );
      return done('error', errorFor(query, RCODE.SERVFAIL), RCODE.SERVFAIL);
    };
    let key: string;
    try {
      const decision = decide(opts.zone(), question, opts.vipFor, opts.families);
      if (decision.kind !== 'forward') return done('local', encodeLocalAnswer(query, decision, opts.ttl), 0);
      key = cacheKey({
        name: question.name,
        type: question.type,
        class: question.class,
        edns: query.edns !== undefined,
        dnssecOk: query.edns?.dnssecOk ?? false,
        checkingDisabled: query.header.cd,
      });
      const cached = opts.cache?.get(key);
      if (cached) return done('cache', forClient(cached, query));
    } catch (e) {
      return servfail(e);
    }
    return forward(key, query, transport).then((result) => {
      try {
        opts.cache?.set(key, result.response);
        if (debugOn())
          log.debug(
            { name: question.name, type, server: formatServer(result.server), via: result.transport },
            'dns forwarded',
          );
        return done('upstream', forClient(result.response, query));
      } catch (e) {
        return servfail(e);
      }
    }, servfail);
  };

  const dropped = (e: unknown, transport: 'udp' | 'tcp'): undefined => {
    // Unreachable by design; if it happens, the message is dropped and the server lives on.
    log.warn({ err: (e as Error).message, transport }, 'dns message dropped after an internal error');
    emit({ source: 'error', rcode: 'DROPPED', type: 'NONE', transport });
    return undefined;
  };

  return {
    handle(message, transport) {
      try {
        const verdict = decodeQuery(message);
        if (verdict.kind === 'drop') {
          emit({ source: 'error', rcode: 'DROPPED', type: 'NONE', transport });
          if (debugOn()) log.debug({ reason: verdict.reason, transport }, 'dns message dropped');
          return undefined;
        }
        if (verdict.kind === 'error') {
          emit({ source: 'error', rcode: rcodeName(verdict.rcode), type: 'NONE', transport });
          if (debugOn())
            log.debug(
              { reason: verdict.reason, rcode: rcodeName(verdict.rcode), transport },
              'dns query rejected',
            );
          return transport === 'udp' ? fitUdp(verdict.response, MIN_UDP_SIZE) : verdict.response;
        }
        const reply = answer(verdict.query, transport);
        return reply instanceof Promise ? reply.catch((e: unknown) => dropped(e, transport)) : reply;
      } catch (e) {
        return dropped(e, transport);
      }
    },
  };
}

// Cache of upstream answers, as raw messages. Pure apart from the injected clock.
//
// Key: (name lower-case, type, class) plus the EDNS bits that change what an upstream sends back
// (EDNS present, DO, CD), so a client never gets an OPT record it did not ask for, or DNSSEC records
// it did not ask for. Policy (RFC 2308, RFC 2181 §8):
// - NOERROR with answers: cached for the smallest TTL of its records (capped at maxTtl);
// - NXDOMAIN, and NOERROR without answers (NODATA): cached for min(SOA TTL, SOA MINIMUM) of the SOA in
//   the authority section, capped at maxNegativeTtl; without an SOA not at all;
// - truncated answers, other RCODEs and TTL 0: not cached.
// Served copies have every TTL lowered by the entry's age in whole seconds. Bounded by entry count
// and bytes, least recently used first out.
import {
  RCODE,
  TYPE,
  lowerAscii,
  readMessage,
  soaMinimum,
  withTtlsReducedBy,
  type RecordInfo,
} from './wire.js';

export interface CacheOptions {
  /** Default 10000. */
  maxEntries?: number;
  /** Sum of cached message sizes; default 16 MiB. */
  maxBytes?: number;
  /** Seconds; default 86400. */
  maxTtl?: number;
  /** Seconds; default 300. */
  maxNegativeTtl?: number;
  /** Milliseconds clock; default Date.now (tests pass a fake one). */
  now?: () => number;
}

export interface CacheKeyParts {
  name: string;
  type: number;
  class: number;
  edns: boolean;
  dnssecOk: boolean;
  checkingDisabled: boolean;
}

export function cacheKey(k: CacheKeyParts): string {
  const bits = `${k.edns ? 'e' : '-'}${k.dnssecOk ? 'd' : '-'}${k.checkingDisabled ? 'c' : '-'}`;
  return `${lowerAscii(k.name)}|${k.type}|${k.class}|${bits}`;
}

/** How long a response may be cached, in seconds, or undefined when it must not be. */
export function cacheLifetime(
  response: Buffer,
  limits: { maxTtl: number; maxNegativeTtl: number },
): { ttl: number; negative: boolean; records: RecordInfo[] } | undefined {
  let layout;
  try {
    layout = readMessage(response);
  } catch {
    return undefined;
  }
  const { header, records } = layout;
  if (header.tc || !header.qr) return undefined;
  // RFC 2181 §8: a TTL with the top bit set counts as 0.
  const ttlOf = (r: RecordInfo): number => (r.ttl > 0x7fffffff ? 0 : r.ttl);
  const data = records.filter((r) => r.type !== TYPE.OPT);
  const rcode = ((layout.edns?.extendedRcode ?? 0) << 4) | header.rcode;
  const answers = data.filter((r) => r.section === 'answer');
  if (rcode === RCODE.NOERROR && answers.length > 0) {
    const ttl = Math.min(limits.maxTtl, ...data.map(ttlOf));
    return ttl > 0 ? { ttl, negative: false, records } : undefined;
  }
  if (rcode === RCODE.NXDOMAIN || (rcode === RCODE.NOERROR && answers.length === 0)) {
    const soa = data.find((r) => r.section === 'authority' && r.type === TYPE.SOA);
    const minimum = soa ? soaMinimum(response, soa) : undefined;
    if (!soa || minimum === undefined) return undefined;
    const ttl = Math.min(limits.maxNegativeTtl, ttlOf(soa), minimum > 0x7fffffff ? 0 : minimum);
    return ttl > 0 ? { ttl, negative: true, records } : undefined;
  }
  return undefined;
}

interface Entry {
  response: Buffer;
  records: RecordInfo[];
  storedAt: number;
  expiresAt: number;
}

export interface DnsCache {
  /** The cached response (ID 0, TTLs lowered by its age), or undefined when absent or expired. */
  get(key: string): Buffer | undefined;
  /** Stores `response` if the policy allows; returns the lifetime in seconds, or undefined. */
  set(key: string, response: Buffer): number | undefined;
  delete(key: string): void;
  clear(): void;
  readonly size: number;
  readonly bytes: number;
}

export function createCache(opts: CacheOptions = {}): DnsCache {
  const maxEntries = opts.maxEntries ?? 10_000;
  const maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
  const limits = { maxTtl: opts.maxTtl ?? 86_400, maxNegativeTtl: opts.maxNegativeTtl ?? 300 };
  const now = opts.now ?? Date.now;
  // A Map iterates in insertion order: re-inserting on every hit makes the first key the LRU one.
  const entries = new Map<string, Entry>();
  let bytes = 0;

  const remove = (key: string): void => {
    const e = entries.get(key);
    if (!e) return;
    bytes -= e.response.length;
    entries.delete(key);
  };

  return {
    get(key) {
      const e = entries.get(key);
      if (!e) return undefined;
      const t = now();
      if (t >= e.expiresAt) {
        remove(key);
        return undefined;
      }
      entries.delete(key);
      entries.set(key, e);
      const age = Math.floor(Math.max(0, t - e.storedAt) / 1000);
      return withTtlsReducedBy(e.response, e.records, age);
    },
    set(key, response) {
      const life = cacheLifetime(response, limits);
      if (!life || response.length > maxBytes) return undefined;
      remove(key);
      const t = now();
      const stored = Buffer.from(response);
      stored.writeUInt16BE(0, 0);
      entries.set(key, {
        response: stored,
        records: life.records,
        storedAt: t,
        expiresAt: t + life.ttl * 1000,
      });
      bytes += stored.length;
      for (const oldest of entries.keys()) {
        if (entries.size <= maxEntries && bytes <= maxBytes) break;
        remove(oldest);
      }
      return life.ttl;
    },
    delete: remove,
    clear() {
      entries.clear();
      bytes = 0;
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}

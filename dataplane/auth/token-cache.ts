// The token cache: one entry per key, refreshed `margin` before expiry, one fetch at a time per key
// (single-flight: concurrent callers share the in-flight fetch and its result or failure). Failures are
// not cached. When a refresh fails but the cached token has not actually expired yet, the cached token
// is served (stale-but-valid), except for a forced refresh, whose token the upstream already rejected.
import crypto from 'node:crypto';

export interface Clock {
  /** milliseconds since the epoch */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface CachedToken {
  value: string;
  /** clock time when the request that produced it was sent */
  obtainedAt: number;
  /** obtainedAt + lifetime */
  expiresAt: number;
  /** expiresAt - margin: from here on the next caller fetches a new token */
  refreshAt: number;
}

export interface TokenLifetimePolicy {
  /** the refresh margin before expiry; at most 10% of the token's lifetime is used. Default 60 s. */
  marginMs: number;
  /** lifetime assumed when the server sends no expires_in and the token is not a JWT with exp */
  defaultLifetimeMs: number;
}

export const DEFAULT_LIFETIME_POLICY: TokenLifetimePolicy = { marginMs: 60_000, defaultLifetimeMs: 300_000 };

/** refreshAt for a token of the given lifetime: min(margin, 10% of lifetime) before expiry. */
export function refreshTime(obtainedAt: number, lifetimeMs: number, marginMs: number): number {
  return obtainedAt + lifetimeMs - Math.min(marginMs, lifetimeMs * 0.1);
}

/** The token's lifetime: expires_in, else a JWT's exp, else the policy's default. */
export function tokenLifetimeMs(
  token: string,
  expiresInSeconds: number | undefined,
  obtainedAt: number,
  policy: TokenLifetimePolicy,
): number {
  if (expiresInSeconds !== undefined) return expiresInSeconds * 1000;
  const exp = jwtExpiry(token);
  if (exp !== undefined && exp * 1000 > obtainedAt) return exp * 1000 - obtainedAt;
  return policy.defaultLifetimeMs;
}

function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    const exp = (payload as { exp?: unknown } | null)?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What a token belongs to. Everything that yields a different token is part of the key; secrets only
 * as a salted hash (`credentials`), so a rotated secret gets a new token and the key reveals nothing.
 * `tenant` and `subject` are for per-tenant and per-user tokens (later issues).
 */
export interface TokenKeyParts {
  destination: string;
  tokenUrl: string;
  clientId: string;
  grant: string;
  user?: string;
  scope?: string;
  tenant?: string;
  subject?: string;
  credentials: string;
}

export function tokenCacheKey(parts: TokenKeyParts): string {
  return JSON.stringify([
    parts.destination,
    parts.tokenUrl,
    parts.clientId,
    parts.grant,
    parts.user ?? null,
    parts.scope ?? null,
    parts.tenant ?? null,
    parts.subject ?? null,
    parts.credentials,
  ]);
}

/** A salted hash of secrets for the cache key (the salt is per process, so the hash cannot be looked up). */
export function credentialFingerprint(salt: Buffer, secrets: (string | undefined)[]): string {
  const hash = crypto.createHmac('sha256', salt);
  for (const s of secrets) hash.update(JSON.stringify(s ?? null));
  return hash.digest('hex').slice(0, 32);
}

export type CacheOutcome = 'hit' | 'fetched' | 'shared' | 'stale';

export interface GetOptions {
  forceRefresh?: boolean;
  /** with forceRefresh: the token value the upstream rejected */
  rejectedToken?: string;
}

export interface TokenCacheOptions {
  clock: Clock;
  /**
   * forceRefresh without rejectedToken: a cached token younger than this is taken to be the refreshed
   * one (another request already refetched it), so stragglers do not fetch again. Default 1000 ms.
   */
  forceRefreshGraceMs?: number;
  /** called when a fetch fails and the still-valid cached token is served instead */
  onStale?: (key: string, error: unknown) => void;
}

export class TokenCache {
  private readonly entries = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();
  private readonly clock: Clock;
  private readonly graceMs: number;
  private readonly onStale: ((key: string, error: unknown) => void) | undefined;

  constructor(options: TokenCacheOptions) {
    this.clock = options.clock;
    this.graceMs = options.forceRefreshGraceMs ?? 1000;
    this.onStale = options.onStale;
  }

  /** The cached token, or one from `fetch` (started at most once per key at a time). */
  async get(
    key: string,
    fetch: () => Promise<CachedToken>,
    options: GetOptions = {},
  ): Promise<{ token: CachedToken; outcome: CacheOutcome }> {
    const now = this.clock.now();
    let entry = this.entries.get(key);
    if (options.forceRefresh && entry && this.isRejected(entry, now, options.rejectedToken)) {
      this.entries.delete(key);
      entry = undefined;
    }
    if (entry && (options.forceRefresh ? now < entry.expiresAt : now < entry.refreshAt)) {
      return { token: entry, outcome: 'hit' };
    }
    const running = this.inflight.get(key);
    if (running) return this.await(key, running, 'shared', entry);
    const started = fetch().then((token) => {
      this.store(key, token);
      return token;
    });
    this.inflight.set(key, started);
    const clear = () => {
      if (this.inflight.get(key) === started) this.inflight.delete(key);
    };
    started.then(clear, clear);
    return this.await(key, started, 'fetched', entry);
  }

  /** Drops every token of this key (e.g. the destination was removed). */
  delete(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }

  private isRejected(entry: CachedToken, now: number, rejectedToken: string | undefined): boolean {
    return rejectedToken !== undefined
      ? entry.value === rejectedToken
      : now - entry.obtainedAt >= this.graceMs;
  }

  private async await(
    key: string,
    pending: Promise<CachedToken>,
    outcome: CacheOutcome,
    previous: CachedToken | undefined,
  ): Promise<{ token: CachedToken; outcome: CacheOutcome }> {
    try {
      return { token: await pending, outcome };
    } catch (error) {
      // `previous` is only set when it was not rejected by a forced refresh (see get()).
      if (previous && this.clock.now() < previous.expiresAt && this.entries.get(key) === previous) {
        this.onStale?.(key, error);
        return { token: previous, outcome: 'stale' };
      }
      throw error;
    }
  }

  private store(key: string, token: CachedToken): void {
    const now = this.clock.now();
    // Bounded housekeeping: drop expired entries whenever a new one arrives.
    for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
    this.entries.set(key, token);
  }
}

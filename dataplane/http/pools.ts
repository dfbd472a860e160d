// Keep-alive connections to each destination's target: one undici Pool per destination (and per
// identity, for principal / technical user propagation: the Cloud Connector binds an identity to a
// connection, so two identities never share one), replaced when anything that decides how connections
// are made changes (origin, proxy, connect timeout, trust settings, client certificate), and closed
// after a while without use.
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import type { TlsClientCredentials } from '../auth/types.js';
import type { Destination } from '../destinations/types.js';
import type { Logger } from '../logger.js';
import { tunnelConnector } from './proxy-connector.js';
import { connectionKey, upstreamTls, type UpstreamTls } from './tls-options.js';
import { DIRECT, type UpstreamVia, viaKey } from './upstream-route.js';

export interface UpstreamEntry {
  pool: Pool;
  /** for https targets; also used for raw (Upgrade) connections */
  tls?: UpstreamTls;
  key: string;
  lastUsed: number;
}

/** The destination's trust store or client certificate cannot be used (wrong password, bad format). */
export class DestinationTlsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DestinationTlsError';
  }
}

export interface UpstreamPoolsOptions {
  log: Logger;
  /** A destination's pool unused this long is closed (default 5 min). */
  idleCloseMs?: number;
  /** Upstream keep-alive when the target sends no Keep-Alive hint (undici default 4 s). */
  keepAliveTimeoutMs?: number;
  /** A per-identity pool unused this long is closed (default 60 s). */
  identityIdleCloseMs?: number;
  /** At most this many per-identity pools; the least recently used one is closed beyond (default 256). */
  maxIdentityPools?: number;
}

/** For log lines and map keys: never the identity (a user's JWT) itself. */
export function identityDigest(identity: string): string {
  return createHash('sha256').update(identity).digest('hex').slice(0, 32);
}

export class UpstreamPools {
  private readonly entries = new Map<string, UpstreamEntry>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly idleCloseMs: number;
  private readonly identityIdleCloseMs: number;
  /** map keys of per-identity pools, least recently used first */
  private readonly identities = new Set<string>();

  constructor(private readonly options: UpstreamPoolsOptions) {
    this.idleCloseMs = options.idleCloseMs ?? 5 * 60_000;
    this.identityIdleCloseMs = options.identityIdleCloseMs ?? 60_000;
    this.sweeper = setInterval(
      () => this.sweep(),
      Math.min(60_000, this.idleCloseMs, this.identityIdleCloseMs),
    ).unref();
  }

  /**
   * The pool for this destination, client certificate, way (`via`: direct or a proxy) and identity
   * (principal / technical user propagation: a pool of its own). Throws when the TLS material is unusable.
   */
  get(
    destination: Destination,
    credentials?: TlsClientCredentials,
    via: UpstreamVia = DIRECT,
    identity?: string,
  ): UpstreamEntry {
    const key =
      via.kind === 'direct'
        ? this.keyOf(destination, credentials)
        : connectionKey(destination, credentials, viaKey(via));
    const mapKey =
      identity === undefined ? destination.name : `${destination.name}\0${identityDigest(identity)}`;
    const current = this.entries.get(mapKey);
    if (current?.key === key) {
      current.lastUsed = Date.now();
      if (identity !== undefined) {
        this.identities.delete(mapKey);
        this.identities.add(mapKey);
      }
      return current;
    }
    const url = destination.url;
    if (!url) throw new Error(`destination '${destination.name}' has no URL`);
    let tls: UpstreamTls | undefined;
    try {
      if (url.protocol === 'https:') tls = upstreamTls(destination, credentials);
    } catch (error) {
      throw new DestinationTlsError(`its TLS settings are unusable (${(error as Error).message})`);
    }
    const connect =
      (via.kind === 'http-proxy' && url.protocol === 'https:') || via.kind === 'socks5'
        ? tunnelConnector(via.proxy, tls, destination.connectTimeoutMs)
        : { timeout: destination.connectTimeoutMs, ...(via.kind === 'direct' ? (tls ?? {}) : {}) };
    // Absolute-form requests go to the proxy's origin; the request path carries the target.
    const origin =
      via.kind === 'connectivity-proxy'
        ? via.origin
        : via.kind === 'http-proxy' && url.protocol === 'http:'
          ? `http://${hostPort(via.proxy.host, via.proxy.port)}`
          : url.origin;
    const pool = new Pool(origin, {
      connect,
      headersTimeout: destination.readTimeoutMs,
      bodyTimeout: destination.readTimeoutMs,
      ...(this.options.keepAliveTimeoutMs ? { keepAliveTimeout: this.options.keepAliveTimeoutMs } : {}),
    });
    const entry: UpstreamEntry = { pool, key, lastUsed: Date.now(), ...(tls ? { tls } : {}) };
    this.entries.set(mapKey, entry);
    if (current) {
      this.options.log.info(
        { destination: destination.name },
        'destination connection settings changed; new upstream pool',
      );
      this.retire(destination.name, current);
    }
    if (identity !== undefined) {
      this.identities.delete(mapKey);
      this.identities.add(mapKey);
      this.evictIdentities();
    }
    return entry;
  }

  /** Beyond the bound, the least recently used identity pools close (their running requests finish). */
  private evictIdentities(): void {
    const max = this.options.maxIdentityPools ?? 256;
    for (const mapKey of this.identities) {
      if (this.identities.size <= max) break;
      const entry = this.entries.get(mapKey);
      this.identities.delete(mapKey);
      this.entries.delete(mapKey);
      if (entry) this.retire(mapKey.split('\0')[0] ?? mapKey, entry);
    }
  }

  /** connectionKey hashes; destinations and key stores are replaced (never mutated) on reload. */
  private readonly keys = new WeakMap<Destination, { credentials?: TlsClientCredentials; key: string }>();
  private keyOf(destination: Destination, credentials?: TlsClientCredentials): string {
    const known = this.keys.get(destination);
    if (known && known.credentials === credentials) return known.key;
    const key = connectionKey(destination, credentials);
    this.keys.set(destination, { credentials, key });
    return key;
  }

  /** Requests still running on a retired pool finish; then its connections close. */
  private retire(name: string, entry: UpstreamEntry): void {
    entry.pool
      .close()
      .catch((err: unknown) => this.options.log.debug({ err, destination: name }, 'pool close failed'));
  }

  private sweep(): void {
    const now = Date.now();
    for (const [mapKey, entry] of this.entries) {
      const isIdentity = this.identities.has(mapKey);
      const cutoff = now - (isIdentity ? this.identityIdleCloseMs : this.idleCloseMs);
      const { running, pending } = entry.pool.stats;
      if (entry.lastUsed < cutoff && running === 0 && pending === 0) {
        this.entries.delete(mapKey);
        this.identities.delete(mapKey);
        this.retire(mapKey.split('\0')[0] ?? mapKey, entry);
      }
    }
  }

  /** Pools open now (for tests and metrics). */
  get size(): number {
    return this.entries.size;
  }

  /** Waits up to graceMs for running requests, then destroys what is left. */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.sweeper);
    const pools = [...this.entries.values()].map((e) => e.pool);
    this.entries.clear();
    this.identities.clear();
    await Promise.all(
      pools.map(async (pool) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
        const closed = pool.close().then(
          () => 'closed' as const,
          () => 'closed' as const,
        );
        const result = await Promise.race([closed, timeout]);
        clearTimeout(timer);
        if (result === 'timeout') await pool.destroy().catch(() => undefined);
      }),
    );
  }
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

// Keep-alive connections to each destination's target: one undici Pool per destination, replaced when
// anything that decides how connections are made changes (origin, connect timeout, trust settings,
// client certificate), and closed after a while without use.
import { Pool } from 'undici';
import type { TlsClientCredentials } from '../auth/types.js';
import type { Destination } from '../destinations/types.js';
import type { Logger } from '../logger.js';
import { connectionKey, upstreamTls, type UpstreamTls } from './tls-options.js';

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
}

export class UpstreamPools {
  private readonly entries = new Map<string, UpstreamEntry>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly idleCloseMs: number;

  constructor(private readonly options: UpstreamPoolsOptions) {
    this.idleCloseMs = options.idleCloseMs ?? 5 * 60_000;
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, this.idleCloseMs)).unref();
  }

  /** The pool for this destination and client identity. Throws when the TLS material is unusable. */
  get(destination: Destination, credentials?: TlsClientCredentials): UpstreamEntry {
    const key = this.keyOf(destination, credentials);
    const current = this.entries.get(destination.name);
    if (current?.key === key) {
      current.lastUsed = Date.now();
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
    const pool = new Pool(url.origin, {
      connect: { timeout: destination.connectTimeoutMs, ...(tls ?? {}) },
      headersTimeout: destination.readTimeoutMs,
      bodyTimeout: destination.readTimeoutMs,
      ...(this.options.keepAliveTimeoutMs ? { keepAliveTimeout: this.options.keepAliveTimeoutMs } : {}),
    });
    const entry: UpstreamEntry = { pool, key, lastUsed: Date.now(), ...(tls ? { tls } : {}) };
    this.entries.set(destination.name, entry);
    if (current) {
      this.options.log.info(
        { destination: destination.name },
        'destination connection settings changed; new upstream pool',
      );
      this.retire(destination.name, current);
    }
    return entry;
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
    const cutoff = Date.now() - this.idleCloseMs;
    for (const [name, entry] of this.entries) {
      const { running, pending } = entry.pool.stats;
      if (entry.lastUsed < cutoff && running === 0 && pending === 0) {
        this.entries.delete(name);
        this.retire(name, entry);
      }
    }
  }

  /** Waits up to graceMs for running requests, then destroys what is left. */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.sweeper);
    const pools = [...this.entries.values()].map((e) => e.pool);
    this.entries.clear();
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

// What the request and upgrade paths share: options, the pools, and the per-request bookkeeping
// (request id, access log line, metrics).
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AuthResult, Authenticator } from '../auth/types.js';
import type { Destination } from '../destinations/types.js';
import type { Logger } from '../logger.js';
import {
  type FailureContext,
  type FailureKind,
  type ProxyFailure,
  authenticationFailed,
  connectivityTokenFailed,
} from './errors.js';
import type { UpstreamPools } from './pools.js';
import type { HeaderList } from './rewrite.js';
import type { EgressContext, UpstreamVia } from './upstream-route.js';

/** The destination a connection is for, or a lookup that sees reloads (undefined: removed/invalid). */
export type DestinationSource = Destination | (() => Destination | undefined);

export interface HttpMetrics {
  /** Once per request; `status` 499 when the app went away before a response was sent. */
  onRequest(event: { destination: string; status: number; durationMs: number }): void;
  /** Once per request the proxy could not deliver (or whose response broke off). */
  onUpstreamError(event: { destination: string; kind: FailureKind }): void;
}

export interface HandlerContext {
  authenticator: Authenticator;
  log: Logger;
  metrics?: HttpMetrics;
  proxyServer: string;
  pools: UpstreamPools;
  /** the connectivity proxy (OnPremise) and corporate egress proxies (Internet), when configured */
  egress: EgressContext;
  retryBufferBytes: number;
  resolve(socket: object): Destination | undefined;
  closing(): boolean;
}

/** `[name, value]` pairs from `IncomingMessage.rawHeaders` (order and duplicates kept). */
export function headerPairs(raw: string[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

const SANE_REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/** The app's own `x-request-id` when it sent a sane one (as Envoy does), else a new UUID. */
export function requestIdFor(headers: IncomingHttpHeaders): string {
  const given = headers['x-request-id'];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** One request's access-log line. Never holds header values, bodies or query strings. */
export class RequestRecord {
  readonly started = performance.now();
  destination = 'unknown';
  upstream?: string;
  upstreamStatus?: number;
  bytesIn = 0;
  bytesOut = 0;
  retried = false;
  failure?: ProxyFailure;
  /** set when the response broke off after it started, or the app went away */
  error?: string;
  private done = false;

  constructor(
    private readonly ctx: HandlerContext,
    readonly requestId: string,
    readonly method: string,
    readonly kind: 'request' | 'upgrade',
  ) {}

  setUpstream(origin: string, path: string): void {
    this.upstream = origin + (path.split('?')[0] ?? '');
  }

  fail(failure: ProxyFailure): void {
    this.failure ??= failure;
    this.ctx.metrics?.onUpstreamError({ destination: this.destination, kind: failure.kind });
  }

  /** status: what the app got (499: nothing, it went away first) */
  finish(status: number): void {
    if (this.done) return;
    this.done = true;
    const durationMs = Math.round((performance.now() - this.started) * 10) / 10;
    // One literal of fixed shape (pino leaves out undefined fields): cheaper than spreads per request.
    const failure = this.failure;
    const line = {
      requestId: this.requestId,
      destination: this.destination,
      method: this.method,
      upstream: this.upstream || undefined,
      status,
      upstreamStatus: this.upstreamStatus,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      durationMs,
      retried: this.retried || undefined,
      errorOrigin: failure?.origin,
      errorKind: failure?.kind,
      errorMessage: failure?.message,
      error: this.error || undefined,
    };
    const msg = this.kind === 'upgrade' ? 'http upgrade' : 'http request';
    if (this.failure || this.error) this.ctx.log.warn(line, msg);
    else this.ctx.log.info(line, msg);
    this.ctx.metrics?.onRequest({ destination: this.destination, status, durationMs });
  }
}

/** Why a destination cannot serve HTTP, or undefined when it can. */
export function whyUnusable(destination: Destination): string | undefined {
  if (destination.type !== 'HTTP') return `it is of Type ${destination.type}, not HTTP`;
  if (!destination.url) return 'it has no URL';
  return undefined;
}

/**
 * The destination's credentials and, on the connectivity proxy's way, the proxy token; or the failure
 * to answer the app with (token service down, credentials refused).
 */
export async function credentialsFor(
  ctx: HandlerContext,
  destination: Destination,
  via: UpstreamVia,
  failureCtx: FailureContext,
): Promise<{ auth: AuthResult; proxyToken?: string } | { failure: ProxyFailure }> {
  let auth: AuthResult;
  try {
    auth = await ctx.authenticator.authenticate(destination);
  } catch (error) {
    return { failure: authenticationFailed(error, failureCtx) };
  }
  if (via.kind !== 'connectivity-proxy') return { auth };
  try {
    const proxyToken = await ctx.egress.connectivityProxy!.token();
    return proxyToken === undefined ? { auth } : { auth, proxyToken };
  } catch (error) {
    return { failure: connectivityTokenFailed(error, failureCtx) };
  }
}

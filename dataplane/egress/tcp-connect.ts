// Opens the upstream connection of a TCP destination through its route (see tcp-route.ts): SOCKS5 with
// SAP's 0x80 to the connectivity proxy, SOCKS5 or HTTP CONNECT to a corporate proxy. Resolves with the
// connected socket (paused) for forward.ts to pipe; rejects with a TcpEgressError that says why.
import type net from 'node:net';
import { EgressProxyError, openTunnel } from './http-connect.js';
import { connectSocks5, Socks5Error, type Socks5Auth } from './socks5.js';
import type { TcpRoute } from './tcp-route.js';
import type { ConnectivityProxy, EgressProxy } from './types.js';

export class TcpEgressError extends Error {
  /** token (connectivity proxy token service), or the proxy protocol stage that failed */
  readonly stage: string;
  /** SOCKS reply code or HTTP status, when the proxy sent one */
  readonly replyCode: number | undefined;
  /** SAP's name of a connectivity proxy reply code (NETWORK_UNREACHABLE, FORBIDDEN, ...) */
  readonly replyName: string | undefined;
  /** one sentence; never contains a secret */
  readonly meaning: string;
  /** errno-style code of a socket error or timeout (ECONNREFUSED, ETIMEDOUT, CONNECT_TIMEOUT, ...) */
  readonly code: string | undefined;

  constructor(
    stage: string,
    meaning: string,
    extra: { replyCode?: number; replyName?: string; code?: string } = {},
  ) {
    super(meaning);
    this.name = 'TcpEgressError';
    this.stage = stage;
    this.replyCode = extra.replyCode;
    this.replyName = extra.replyName;
    this.meaning = meaning;
    this.code = extra.code;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const TIMEOUTS = new Set(['ETIMEDOUT', 'CONNECT_TIMEOUT']);

/**
 * The `kind` label of detour_upstream_errors_total for a failure (the HTTP path's names): token-service,
 * connect-timeout, connect-refused, unreachable (the proxy, or the target behind it), proxy-authentication,
 * proxy (any other refusal by the proxy), internal.
 */
export function failureKind(error: TcpEgressError): string {
  if (error.stage === 'token') return 'token-service';
  if (error.code && TIMEOUTS.has(error.code)) return 'connect-timeout';
  if (error.stage.endsWith('proxy-connect'))
    return error.code === 'ECONNREFUSED' ? 'connect-refused' : 'unreachable';
  if (
    error.stage === 'socks5 greeting' ||
    error.stage === 'socks5 auth' ||
    error.replyCode === 407 ||
    error.replyName === 'CONNECTION_REFUSED' // SAP: the JWT was not accepted
  )
    return 'proxy-authentication';
  if (error.stage === 'socks5 connect' && [0x03, 0x04, 0x05].includes(error.replyCode ?? -1))
    return 'unreachable';
  if (error.stage === 'http-connect connect' && [502, 503, 504].includes(error.replyCode ?? -1))
    return 'unreachable';
  return error.stage === 'internal' ? 'internal' : 'proxy';
}

export interface TcpConnectRequest {
  route: Exclude<TcpRoute, { kind: 'direct' }>;
  target: { host: string; port: number };
  timeoutMs: number;
  /** tenant for the connectivity proxy's token (multi-tenant setups) */
  tenant?: string;
}

/**
 * Trusted mode (no token) has no documented SOCKS5 form that we could verify: without a location id
 * we use method 0x00; with one, SAP's 0x80 with an empty JWT, since 0x00 has no field for the location.
 */
export function connectivityProxyAuth(token: string | undefined, locationId: string | undefined): Socks5Auth {
  if (token === undefined && !locationId) return { method: 'none' };
  return { method: 'sap-jwt', token: token ?? '', ...(locationId ? { locationId } : {}) };
}

/**
 * The token, within `timeoutMs` (the destination's connect timeout covers it too; a fetch that takes
 * longer goes on in the background and fills the cache for the next connection).
 */
async function connectivityProxyToken(
  proxy: ConnectivityProxy,
  tenant: string | undefined,
  timeoutMs: number,
  rejected?: string,
): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TcpEgressError('token', `no token for the connectivity proxy within ${timeoutMs} ms`, {
            code: 'ETIMEDOUT',
          }),
        ),
      timeoutMs,
    );
  });
  const fetching = proxy.token(tenant, rejected === undefined ? undefined : { rejected });
  fetching.catch(() => {}); // a failure after the deadline is nobody's to handle
  try {
    return await Promise.race([fetching, deadline]);
  } catch (error) {
    if (error instanceof TcpEgressError) throw error;
    throw new TcpEgressError('token', `cannot get a token for the connectivity proxy: ${messageOf(error)}`);
  } finally {
    clearTimeout(timer);
  }
}

/** The connectivity proxy did not accept the JWT: `01 01`/`01 05` after 0x80, or CONNECT answered 0x05. */
export function tokenRefused(error: unknown): boolean {
  if (!(error instanceof Socks5Error)) return false;
  if (error.stage === 'auth') return error.replyCode === 0x01 || error.replyCode === 0x05;
  return error.stage === 'connect' && error.replyCode === 0x05;
}

/**
 * A connected socket to `target` through a corporate proxy: an HTTP CONNECT tunnel, or SOCKS5 with
 * username/password when the proxy URL has credentials. Used by TCP destinations (allowHalfOpen: a
 * FIN is passed on) and by the HTTP path's tunnel connector.
 */
export function openThroughEgressProxy(
  proxy: EgressProxy,
  target: { host: string; port: number },
  timeoutMs: number,
  options: { allowHalfOpen?: boolean } = {},
): Promise<net.Socket> {
  if (proxy.kind === 'http')
    return openTunnel({
      proxy,
      host: target.host,
      port: target.port,
      timeoutMs,
      ...(options.allowHalfOpen ? { allowHalfOpen: true } : {}),
    });
  const auth: Socks5Auth =
    proxy.username !== undefined
      ? { method: 'username-password', username: proxy.username, password: proxy.password ?? '' }
      : { method: 'none' };
  return connectSocks5({ proxy: { host: proxy.host, port: proxy.port }, target, auth, timeoutMs });
}

export async function connectThroughProxy(request: TcpConnectRequest): Promise<net.Socket> {
  const { route, target, timeoutMs } = request;
  try {
    if (route.kind === 'connectivity-proxy') {
      const token = await connectivityProxyToken(route.proxy, request.tenant, timeoutMs);
      const through = (jwt: string | undefined) =>
        connectSocks5({
          proxy: { host: route.proxy.host, port: route.proxy.socks5Port },
          target,
          auth: connectivityProxyAuth(jwt, route.locationId),
          timeoutMs,
        });
      try {
        return await through(token);
      } catch (error) {
        if (token === undefined || !tokenRefused(error)) throw error;
        // Refused (revoked, or expired early): once more with a new token, as the HTTP path does.
        const fresh = await connectivityProxyToken(route.proxy, request.tenant, timeoutMs, token);
        if (fresh === undefined || fresh === token) throw error;
        return await through(fresh);
      }
    }
    return await openThroughEgressProxy(route.proxy, target, timeoutMs, { allowHalfOpen: true });
  } catch (error) {
    if (error instanceof TcpEgressError) throw error;
    if (error instanceof Socks5Error)
      throw new TcpEgressError(`socks5 ${error.stage}`, error.meaning, {
        ...(error.replyCode !== undefined ? { replyCode: error.replyCode } : {}),
        ...(error.replyName ? { replyName: error.replyName } : {}),
        ...(error.code ? { code: error.code } : {}),
      });
    if (error instanceof EgressProxyError)
      throw new TcpEgressError(`http-connect ${error.stage}`, error.meaning, {
        ...(error.status !== undefined ? { replyCode: error.status } : {}),
        ...(error.code ? { code: error.code } : {}),
      });
    throw new TcpEgressError('internal', `unexpected error: ${messageOf(error)}`);
  }
}

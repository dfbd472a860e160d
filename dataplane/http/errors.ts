// What the app gets when the proxy cannot deliver its request: SAP transparent-proxy error semantics.
// Pure: an error (or a missing destination) in, status + headers + JSON body out.
//
// SAP's transparent proxy ("Error Response Headers", SAP-docs/btp-connectivity) answers with
// `x-error-message`, `x-error-origin` (one of "Transparent Proxy", "XSUAA", "Destination Service",
// "XSUAA/Destination Service", "Connectivity Proxy"), `x-internal-error-code` (the status of the
// internal call that failed), `x-request-id` and `x-proxy-server`. A destination that is not found
// is 502 with origin "Destination Service". SAP names no origin for token services it calls itself
// (it gets tokens from the Destination service) or for the target system; detour adds
// "Token Service" and "Upstream" for those.
import { TokenServiceError } from '../auth/types.js';
import type { EgressProxyError } from '../egress/http-connect.js';
import type { Socks5Error } from '../egress/socks5.js';

export const ERROR_ORIGINS = {
  transparentProxy: 'Transparent Proxy',
  destinationService: 'Destination Service',
  tokenService: 'Token Service',
  upstream: 'Upstream',
  /** SAP's value: the connectivity proxy (on-premise destinations) */
  connectivityProxy: 'Connectivity Proxy',
  /** detour's: a corporate HTTP / SOCKS5 proxy for Internet destinations */
  egressProxy: 'Egress Proxy',
} as const;
export type ErrorOrigin = (typeof ERROR_ORIGINS)[keyof typeof ERROR_ORIGINS];

/** For metrics: why a request failed (`kind` of `onUpstreamError`). */
export type FailureKind =
  | 'invalid-destination'
  | 'authentication'
  | 'token-service'
  | 'connect-refused'
  | 'unreachable'
  | 'dns'
  | 'tls'
  | 'connect-timeout'
  | 'read-timeout'
  | 'connection-reset'
  | 'protocol'
  | 'proxy-authentication'
  | 'proxy'
  | 'internal';

export interface ProxyFailure {
  status: number;
  origin: ErrorOrigin;
  kind: FailureKind;
  /** Human-readable, safe to show: names the destination and the target origin, never a secret. */
  message: string;
  /** `x-internal-error-code`: status of the internal call that failed (token service), if known. */
  internalCode?: number;
}

export interface FailureContext {
  destination: string;
  /** `https://host:port`, never a path or query (queries may carry destination secrets) */
  target?: string;
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  /** the request goes through a proxy: connection failures are the proxy's */
  via?: ProxyHop;
}

export interface ProxyHop {
  origin: typeof ERROR_ORIGINS.connectivityProxy | typeof ERROR_ORIGINS.egressProxy;
  /** `host:port` (egress proxies: the URL with the password redacted) */
  endpoint: string;
  /** connections go to the proxy (absolute form) rather than tunnelled to the target */
  connectsToProxy: boolean;
}

function hopName(hop: ProxyHop): string {
  return hop.origin === ERROR_ORIGINS.connectivityProxy
    ? `the connectivity proxy ${hop.endpoint}`
    : `the egress proxy ${hop.endpoint}`;
}

const CONNECT_REFUSED = new Set(['ECONNREFUSED']);
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NODATA', 'EAI_NONAME']);
const RESET = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL_)/;

function codeOf(error: unknown): string | undefined {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An app-safe rendering of an error's message: one line, printable ASCII, bounded. */
export function safeText(text: string, max = 300): string {
  const oneLine = text.replace(/[^\x20-\x7e]+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 3)}...` : oneLine;
}

export function destinationMissing(): ProxyFailure {
  return {
    status: 502,
    origin: ERROR_ORIGINS.destinationService,
    kind: 'invalid-destination',
    message:
      'The destination this connection was opened for no longer exists or is no longer valid. ' +
      'Check the destination configuration (file, environment or Destination service) and reconnect.',
  };
}

/** The destination cannot be used as configured (not HTTP, no URL, unusable trust store, ...). */
export function destinationInvalid(name: string, why: string): ProxyFailure {
  return {
    status: 502,
    origin: ERROR_ORIGINS.destinationService,
    kind: 'invalid-destination',
    message: `Destination '${name}' cannot be used: ${safeText(why)}. Contact the destination administrator.`,
  };
}

/** A request the proxy cannot parse or accept (malformed, headers too large, too slow). */
export function badRequest(status: 400 | 408 | 431, why: string): ProxyFailure {
  return { status, origin: ERROR_ORIGINS.transparentProxy, kind: 'protocol', message: safeText(why) };
}

/** A bug in the proxy (logged with its stack); the app still gets an answer. */
export function internalError(): ProxyFailure {
  return {
    status: 502,
    origin: ERROR_ORIGINS.transparentProxy,
    kind: 'internal',
    message: 'The proxy failed unexpectedly; see its log.',
  };
}

/** `authenticator.authenticate` failed. Auth errors are written without secrets (see auth/types.ts). */
export function authenticationFailed(error: unknown, ctx: FailureContext): ProxyFailure {
  const reason = safeText(error instanceof Error ? error.message : String(error));
  if (error instanceof TokenServiceError || (error as Error | undefined)?.name === 'TokenServiceError') {
    const status = (error as TokenServiceError).status;
    return {
      status: 502,
      origin: ERROR_ORIGINS.tokenService,
      kind: 'token-service',
      message: `Could not get a token for destination '${ctx.destination}': ${reason}`,
      ...(typeof status === 'number' ? { internalCode: status } : {}),
    };
  }
  return {
    status: 502,
    origin: ERROR_ORIGINS.transparentProxy,
    kind: 'authentication',
    message: `Could not prepare the authentication of destination '${ctx.destination}': ${reason}`,
  };
}

/** A user JWT is required (PrincipalPropagation) but the request carried none. */
export function missingUserToken(message: string): ProxyFailure {
  return {
    status: 400,
    origin: ERROR_ORIGINS.transparentProxy,
    kind: 'authentication',
    message: safeText(message),
  };
}

/** The connectivity proxy's own token could not be fetched (and no cached one is valid). */
export function connectivityTokenFailed(error: unknown, ctx: FailureContext): ProxyFailure {
  const reason = safeText(error instanceof Error ? error.message : String(error));
  const status = (error as TokenServiceError | undefined)?.status;
  return {
    status: 502,
    origin: ERROR_ORIGINS.tokenService,
    kind: 'token-service',
    message: `Could not get the connectivity proxy token (connectivity service key) for destination '${ctx.destination}': ${reason}`,
    ...(typeof status === 'number' ? { internalCode: status } : {}),
  };
}

/**
 * The proxy answered for itself instead of forwarding: 407 (its authorization was refused), or for the
 * connectivity proxy 405 / 503 (see ../onprem/proxy-response.ts for how such answers are recognised).
 */
export function proxyRejected(
  status: number,
  ctx: FailureContext,
  hop: ProxyHop,
  detail?: string,
): ProxyFailure {
  const at = `${hopName(hop)} for destination '${ctx.destination}' (${ctx.target ?? 'unknown target'})`;
  const extra = detail ? `: ${safeText(detail, 200)}` : '';
  if (status === 407)
    return {
      status: 502,
      origin: hop.origin,
      kind: 'proxy-authentication',
      internalCode: 407,
      message:
        hop.origin === ERROR_ORIGINS.connectivityProxy
          ? `${at} refused the proxy authorization (407)${extra}. Check connectivityProxy.serviceKey (or trusted mode) in the dataplane config.`
          : `${at} requires other credentials (407)${extra}. Check the user and password in egressProxy.http or HTTP(S)_PROXY.`,
    };
  if (status === 405)
    return {
      status: 502,
      origin: hop.origin,
      kind: 'proxy',
      internalCode: 405,
      message: `${at} refused the request method (405)${extra}.`,
    };
  const unreachable = status === 502 || status === 503 || status === 504;
  return {
    status: unreachable ? 503 : 502,
    origin: hop.origin,
    kind: 'proxy',
    internalCode: status,
    message: unreachable
      ? `${at} could not reach the target (${status})${extra}. For on-premise systems: is a Cloud Connector connected for this location, and is the virtual host mapped?`
      : `${at} refused the request (${status})${extra}.`,
  };
}

/** The request to the target failed before a response started. */
export function upstreamFailed(error: unknown, ctx: FailureContext): ProxyFailure {
  const hop = ctx.via;
  if (hop && (error as Error | undefined)?.name === 'EgressProxyError') {
    const e = error as EgressProxyError;
    if (e.status !== undefined) return proxyRejected(e.status, ctx, hop, e.meaning);
    return proxyConnectFailed(e.code ?? 'ECONNRESET', ctx, hop);
  }
  if (hop && (error as Error | undefined)?.name === 'Socks5Error')
    return socks5Failed(error as Socks5Error, ctx, hop);
  const code = codeOf(error) ?? 'UNKNOWN';
  if (hop?.connectsToProxy && CONNECT_LEVEL.has(code)) return proxyConnectFailed(code, ctx, hop);
  const at = `destination '${ctx.destination}' (${ctx.target ?? 'unknown target'})`;
  const upstream = (status: number, kind: FailureKind, message: string): ProxyFailure => ({
    status,
    origin: ERROR_ORIGINS.upstream,
    kind,
    message,
  });

  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT' || code === 'CONNECT_TIMEOUT')
    return upstream(
      504,
      'connect-timeout',
      `Connecting to ${at} timed out after ${ctx.connectTimeoutMs ?? '?'} ms (URL.connectionTimeoutInSeconds).`,
    );
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'READ_TIMEOUT')
    return upstream(
      504,
      'read-timeout',
      `${at} did not answer within ${ctx.readTimeoutMs ?? '?'} ms (URL.socketReadTimeoutInSeconds).`,
    );
  if (CONNECT_REFUSED.has(code))
    return upstream(503, 'connect-refused', `${at} refused the connection (${code}).`);
  if (UNREACHABLE.has(code)) return upstream(503, 'unreachable', `${at} is unreachable (${code}).`);
  if (DNS.has(code)) return upstream(503, 'dns', `The host of ${at} could not be resolved (${code}).`);
  if (TLS_CODE.test(code) || /ssl|tls|certificate/i.test((error as Error | undefined)?.message ?? ''))
    return upstream(
      503,
      'tls',
      `TLS with ${at} failed (${code}: ${safeText((error as Error).message, 160)}). ` +
        'Check TrustStoreLocation / TrustAll and the client certificate.',
    );
  if (RESET.has(code))
    return upstream(503, 'connection-reset', `${at} closed the connection before answering (${code}).`);
  const parserError = (error as Error | undefined)?.name === 'HTTPParserError';
  if (parserError || code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH')
    return upstream(502, 'protocol', `${at} sent an invalid HTTP response (${code}).`);
  return {
    status: 502,
    origin: ERROR_ORIGINS.transparentProxy,
    kind: 'internal',
    message: `Forwarding to ${at} failed (${code}).`,
  };
}

const CONNECT_LEVEL = new Set([
  ...CONNECT_REFUSED,
  ...UNREACHABLE,
  ...DNS,
  'UND_ERR_CONNECT_TIMEOUT',
  'CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);

/** A SOCKS5 proxy could not be reached, refused the credentials, or could not reach the target. */
function socks5Failed(error: Socks5Error, ctx: FailureContext, hop: ProxyHop): ProxyFailure {
  if (error.stage === 'proxy-connect') return proxyConnectFailed(error.code ?? 'UNKNOWN', ctx, hop);
  const at = `${hopName(hop)} for destination '${ctx.destination}' (${ctx.target ?? 'unknown target'})`;
  const message = safeText(error.message, 300);
  if (error.stage === 'auth' || error.stage === 'greeting')
    return { status: 502, origin: hop.origin, kind: 'proxy-authentication', message: `${at}: ${message}` };
  const unreachable = error.replyCode !== undefined && [0x03, 0x04, 0x05, 0x06].includes(error.replyCode);
  const timeout = error.code === 'ETIMEDOUT' || error.code === 'CONNECT_TIMEOUT';
  return {
    status: timeout ? 504 : unreachable ? 503 : 502,
    origin: hop.origin,
    kind: timeout ? 'connect-timeout' : unreachable ? 'unreachable' : 'proxy',
    message: `${at}: ${message}`,
  };
}

/** The proxy itself could not be reached. */
function proxyConnectFailed(code: string, ctx: FailureContext, hop: ProxyHop): ProxyFailure {
  const at = `${hopName(hop)} (for destination '${ctx.destination}', ${ctx.target ?? 'unknown target'})`;
  const timeout = code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'CONNECT_TIMEOUT' || code === 'ETIMEDOUT';
  const what = timeout
    ? `did not accept or answer the connection within ${ctx.connectTimeoutMs ?? '?'} ms`
    : CONNECT_REFUSED.has(code)
      ? `refused the connection (${code})`
      : DNS.has(code)
        ? `could not be resolved (${code})`
        : RESET.has(code)
          ? `closed the connection (${code})`
          : `is unreachable (${code})`;
  return {
    status: timeout ? 504 : 503,
    origin: hop.origin,
    kind: timeout ? 'connect-timeout' : CONNECT_REFUSED.has(code) ? 'connect-refused' : 'unreachable',
    message: `${at} ${what}.`,
  };
}

/** The target answered, but with something that cannot be passed on to the app. */
export function invalidResponse(ctx: FailureContext, why: string): ProxyFailure {
  return {
    status: 502,
    origin: ERROR_ORIGINS.upstream,
    kind: 'protocol',
    message: `destination '${ctx.destination}' (${ctx.target ?? 'unknown target'}) sent a response that cannot be passed on: ${safeText(why, 160)}`,
  };
}

export interface ErrorResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Status, headers and JSON body of an error response. */
export function errorResponse(failure: ProxyFailure, requestId: string, proxyServer: string): ErrorResponse {
  const message = safeText(failure.message, 1000);
  const body = JSON.stringify({
    error: {
      status: failure.status,
      message,
      origin: failure.origin,
      requestId,
      ...(failure.internalCode !== undefined ? { internalErrorCode: failure.internalCode } : {}),
    },
  });
  return {
    status: failure.status,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'x-error-message': message,
      'x-error-origin': failure.origin,
      ...(failure.internalCode !== undefined
        ? { 'x-internal-error-code': String(failure.internalCode) }
        : {}),
      'x-request-id': requestId,
      'x-proxy-server': proxyServer,
    },
    body,
  };
}

/** The same response as raw HTTP/1.1 bytes, for sockets no HTTP server owns any more (Upgrade, clientError). */
export function rawResponse(r: ErrorResponse, reason: string): string {
  const head = Object.entries({ ...r.headers, connection: 'close' })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `HTTP/1.1 ${r.status} ${reason}\r\n${head}\r\n${r.body}`;
}

// The upstream request for an app's request to an HTTP destination: a pure function of the destination,
// the app's request line and headers, and the authentication headers. No sockets, no clock, no secrets
// logged: everything the forwarding code sends upstream is decided here.
import type { Destination } from '../destinations/types.js';

export type HeaderList = [string, string][];

export interface IncomingRequest {
  method: string;
  /** The request target as the app sent it: origin-form (`/a?b`), absolute-form or `*`. */
  url: string;
  /** In the order received, duplicates kept (from `IncomingMessage.rawHeaders`). */
  headers: HeaderList;
}

export interface RewriteOptions {
  /** From `authenticator.authenticate(destination)`: replace any header of the same name. */
  authHeaders?: HeaderList;
  /** Set as `x-request-id` when the app did not send one. */
  requestId?: string;
  /** An `Upgrade:` request (WebSocket): keep `Upgrade` and send `Connection: Upgrade`. */
  upgrade?: boolean;
}

export interface UpstreamRequest {
  /** `https://host[:port]` (never user info, path or query) */
  origin: string;
  /** Destination path prefix + the app's path, then the app's query, the URL's query, `URL.queries.*`. */
  path: string;
  headers: HeaderList;
}

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) and the ones this proxy handles itself: `Expect` (answered
 * with `100 Continue` by the handler), `Host` (rewritten), `Transfer-Encoding` and `Content-Length`
 * framing (the client library frames the body it streams; `Content-Length` is kept when given).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
]);

/** Response headers never passed back to the app (the app-side server frames its own response). */
const RESPONSE_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

/**
 * `/api` or `/api/` + `/x` → `/api/x`. The app's bare `/` means the destination URL itself (`/api`
 * stays `/api`, `/api/` stays `/api/`); any other path keeps its own trailing slash.
 */
export function joinPath(prefix: string, appPath: string): string {
  const rest = appPath.startsWith('/') ? appPath : `/${appPath}`;
  if (rest === '/') return prefix === '' ? '/' : prefix;
  return prefix.replace(/\/+$/, '') + rest;
}

/** Path and query of the app's request target (origin-form, absolute-form or `*`). */
export function splitTarget(url: string): { path: string; query: string } {
  let target = url;
  if (!target.startsWith('/')) {
    if (target === '*') return { path: '/', query: '' };
    try {
      const parsed = new URL(target);
      target = `${parsed.pathname}${parsed.search}`;
    } catch {
      target = `/${target}`;
    }
  }
  const q = target.indexOf('?');
  return q < 0 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

function encodeQuery(pairs: [string, string][]): string {
  return pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
}

/** Names listed in `Connection:` are hop-by-hop for this request too (RFC 9110 §7.6.1). */
function connectionTokens(headers: HeaderList): Set<string> {
  const tokens = new Set<string>();
  for (const [name, value] of headers)
    if (name.toLowerCase() === 'connection')
      for (const t of value.split(',')) if (t.trim()) tokens.add(t.trim().toLowerCase());
  return tokens;
}

/** `Host` for a URL: host[:port], the port omitted when it is the scheme's default. */
export function hostHeader(url: URL): string {
  const port = url.port && url.port !== DEFAULT_PORT[url.protocol] ? `:${url.port}` : '';
  return `${url.hostname}${port}`;
}

/**
 * Builds the upstream request. SAP's rule for `URL.headers.*` and `URL.queries.*`: both the app's and
 * the destination's values are sent (a name present in both is sent twice). Authentication headers are
 * the exception: they replace any header of the same name the app sent (an app can never override the
 * destination's credentials). `x-forwarded-*` and `Via` are not added (the proxy stays invisible to the
 * target, and the workload's addresses do not leak); those the app sent pass unchanged.
 */
export function rewriteRequest(
  destination: Destination,
  incoming: IncomingRequest,
  options: RewriteOptions = {},
): UpstreamRequest {
  const url = destination.url;
  if (!url) throw new Error(`destination '${destination.name}' has no URL`);
  const { path: appPath, query: appQuery } = splitTarget(incoming.url);

  const queryParts = [appQuery, url.search.replace(/^\?/, ''), encodeQuery(destination.queries)];
  const query = queryParts.filter((q) => q !== '').join('&');
  const path = joinPath(url.pathname, appPath) + (query ? `?${query}` : '');

  const auth = options.authHeaders ?? [];
  const authNames = new Set(auth.map(([n]) => n.toLowerCase()));
  const dropped = connectionTokens(incoming.headers);
  const headers: HeaderList = [['host', hostHeader(url)]];
  let hasRequestId = false;
  for (const [name, value] of incoming.headers) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || dropped.has(lower) || authNames.has(lower)) continue;
    if (lower === 'x-request-id') hasRequestId = true;
    headers.push([name, value]);
  }
  for (const [name, value] of destination.headers)
    if (!authNames.has(name.toLowerCase())) headers.push([name, value]);
  for (const [name, value] of auth) headers.push([name, value]);
  if (!hasRequestId && options.requestId) headers.push(['x-request-id', options.requestId]);
  if (options.upgrade) {
    const upgrade = incoming.headers.find(([n]) => n.toLowerCase() === 'upgrade');
    if (upgrade) headers.push(['connection', 'Upgrade'], ['upgrade', upgrade[1]]);
  }
  return { origin: url.origin, path, headers };
}

/** The upstream's response headers as the app gets them: hop-by-hop ones (and those named in Connection) removed. */
export function rewriteResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const connection = headers['connection'];
  const dropped = connectionTokens(
    (Array.isArray(connection) ? connection : connection ? [connection] : []).map((v) => ['connection', v]),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || RESPONSE_HOP_BY_HOP.has(name) || dropped.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * rewriteResponseHeaders for undici's raw `[name, value, ...]` buffers, as a flat `[name, value, ...]`
 * list for `writeHead` (names keep their case; repeated headers stay separate lines).
 */
export function rewriteRawResponseHeaders(raw: Buffer[]): string[] {
  let dropped: Set<string> | undefined;
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (lower === 'connection') {
      dropped ??= new Set();
      for (const t of raw[i + 1]!.toString('latin1').split(','))
        if (t.trim()) dropped.add(t.trim().toLowerCase());
    }
    if (RESPONSE_HOP_BY_HOP.has(lower)) continue;
    out.push(lower, name, raw[i + 1]!.toString('latin1'));
  }
  const headers: string[] = [];
  for (let i = 0; i < out.length; i += 3) if (!dropped?.has(out[i]!)) headers.push(out[i + 1]!, out[i + 2]!);
  return headers;
}

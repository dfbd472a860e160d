// The HTTP side of the connectivity proxy stand-in, pure parts: which requests the proxy port takes
// (absolute-form http:// only), the Bearer tokens in its headers, and the headers the Cloud Connector
// passes on to the backend.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export const HEADER_LOCATION = 'sap-connectivity-scc-location_id';
export const HEADER_USER = 'sap-connectivity-authentication';
export const HEADER_TECHNICAL_USER = 'sap-connectivity-technical-authentication';
/** What the backend is told (the stand-in's rendering of the Cloud Connector's principal propagation). */
export const HEADER_PRINCIPAL = 'x-onprem-principal';
export const HEADER_PRINCIPAL_TYPE = 'x-onprem-principal-type';
export const HEADER_TENANT = 'x-onprem-tenant';

export type RequestCheck =
  { ok: true; host: string; port: number; path: string } | { ok: false; status: number; message: string };

/** Whether the proxy port takes this request line: absolute-form http:// URLs only. */
export function checkProxyRequest(method: string, target: string): RequestCheck {
  if (method === 'CONNECT')
    return {
      ok: false,
      status: 405,
      message:
        'CONNECT is not supported: the connectivity proxy takes plain http:// requests in absolute form; ' +
        'the Cloud Connector does TLS to the backend',
    };
  if (/^https:\/\//i.test(target))
    return {
      ok: false,
      status: 405,
      message:
        'https:// URLs are not supported: send http://virtualhost:port/path; the Cloud Connector does TLS to the backend',
    };
  if (!/^http:\/\//i.test(target))
    return {
      ok: false,
      status: 400,
      message: `request target ${JSON.stringify(target.slice(0, 100))} is not in absolute form (http://virtualhost:port/path)`,
    };
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return { ok: false, status: 400, message: 'request target is not a valid URL' };
  }
  if (url.username || url.password)
    return { ok: false, status: 400, message: 'request target must not carry user info' };
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return {
    ok: true,
    host,
    port: url.port === '' ? 80 : Number(url.port),
    path: `${url.pathname}${url.search}`,
  };
}

/** The token of `Bearer <token>` (scheme case-insensitive), or undefined. */
export function bearerToken(value: string | string[] | undefined): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^Bearer +([^\s]+)\s*$/i.exec(value);
  return m?.[1];
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * The request headers the backend gets: hop-by-hop headers (also those named in Connection), the
 * proxy's own (Proxy-Authorization, SAP-Connectivity-*) and any incoming X-Onprem-* dropped; Host set to
 * the internal host; the propagated principal added.
 */
export function backendHeaders(
  headers: IncomingHttpHeaders,
  internal: { host: string; port: number },
  principal?: { name: string; type: 'user' | 'technical'; tenant?: string },
): OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    if (name.startsWith('sap-connectivity-') || name.startsWith('x-onprem-')) continue;
    out[name] = value;
  }
  const hostName = internal.host.includes(':') ? `[${internal.host}]` : internal.host;
  out.host = internal.port === 80 ? hostName : `${hostName}:${internal.port}`;
  if (principal) {
    out[HEADER_PRINCIPAL] = principal.name;
    out[HEADER_PRINCIPAL_TYPE] = principal.type;
    if (principal.tenant) out[HEADER_TENANT] = principal.tenant;
  }
  return out;
}

// How a request reaches its destination's target: directly, through the connectivity proxy (OnPremise),
// or through a corporate egress proxy (Internet, per EgressProxies.forTarget and NO_PROXY).
import type { Destination } from '../destinations/types.js';
import { proxyForUrl } from '../egress/egress-proxies.js';
import { describeProxy, proxyAuthorization } from '../egress/proxy-url.js';
import type { EgressContext, EgressProxy } from '../egress/types.js';
import { onPremiseRequest } from '../onprem/request.js';
import { ERROR_ORIGINS, type ProxyHop } from './errors.js';
import type { HeaderList, UpstreamRequest } from './rewrite.js';

export type UpstreamVia =
  | { kind: 'direct' }
  /** the connectivity proxy's HTTP port: absolute-form requests, Proxy-Authorization: Bearer */
  | { kind: 'connectivity-proxy'; origin: string; endpoint: string }
  /** an HTTP proxy: absolute form for http targets, CONNECT + TLS for https targets */
  | { kind: 'http-proxy'; proxy: EgressProxy; endpoint: string }
  | { kind: 'socks5'; proxy: EgressProxy; endpoint: string };

export const DIRECT: UpstreamVia = { kind: 'direct' };

export type { EgressContext } from '../egress/types.js';

/** The way to the destination's URL, or why there is none (a configuration error). */
export function upstreamVia(
  destination: Destination,
  egress: EgressContext,
): UpstreamVia | { error: string } {
  const url = destination.url;
  if (!url) return { error: 'it has no URL' };
  if (destination.proxyType === 'OnPremise') {
    const cp = egress.connectivityProxy;
    if (!cp)
      return {
        error:
          'it is ProxyType OnPremise, but the dataplane has no connectivityProxy configured (detour.yaml)',
      };
    if (url.protocol !== 'http:')
      return {
        error:
          'OnPremise URLs must be http:// (the Cloud Connector originates TLS to the backend as configured there)',
      };
    const host = cp.host.includes(':') ? `[${cp.host}]` : cp.host;
    const endpoint = `${host}:${cp.httpPort}`;
    return { kind: 'connectivity-proxy', origin: `http://${endpoint}`, endpoint };
  }
  const proxy = proxyForUrl(egress.egressProxies, url);
  if (!proxy) return DIRECT;
  return { kind: proxy.kind === 'http' ? 'http-proxy' : 'socks5', proxy, endpoint: describeProxy(proxy) };
}

/** Requests go in absolute form (`http://host:port/path`) to a proxy rather than to the target. */
export function absoluteForm(via: UpstreamVia, url: URL): boolean {
  return via.kind === 'connectivity-proxy' || (via.kind === 'http-proxy' && url.protocol === 'http:');
}

/** A stable text for the connection key: what decides where connections go (no secrets but a hash). */
export function viaKey(via: UpstreamVia): string {
  switch (via.kind) {
    case 'direct':
      return 'direct';
    case 'connectivity-proxy':
      return `cp ${via.origin}`;
    default:
      return `${via.kind} ${via.proxy.host}:${via.proxy.port} ${via.proxy.username ?? ''} ${via.proxy.password ?? ''}`;
  }
}

/** What goes on the wire for one request, once the way is known. */
export interface WireRequest {
  path: string;
  headers: HeaderList;
  /** principal / technical user propagation: requests of different identities never share a connection */
  identity?: string;
}

/**
 * The rewritten request as sent on the way `via`: unchanged for direct connections and tunnels
 * (CONNECT, SOCKS5); absolute form with `Proxy-Authorization: Basic` for http targets behind an HTTP
 * proxy; the connectivity proxy's form (see ../onprem/request.ts) for OnPremise destinations.
 * Throws MissingUserTokenError for PrincipalPropagation without a user JWT.
 */
export function wireRequest(
  destination: Destination,
  via: UpstreamVia,
  upstream: UpstreamRequest,
  appHeaders: HeaderList,
  proxyToken: string | undefined,
): WireRequest {
  if (via.kind === 'connectivity-proxy') {
    const result = onPremiseRequest(destination, upstream, appHeaders, proxyToken);
    if ('missingUserToken' in result) throw new MissingUserTokenError(result.missingUserToken);
    return result;
  }
  if (via.kind === 'http-proxy' && upstream.origin.startsWith('http:')) {
    const auth = proxyAuthorization(via.proxy);
    return {
      path: upstream.origin + upstream.path,
      headers: auth ? [...upstream.headers, ['Proxy-Authorization', auth]] : upstream.headers,
    };
  }
  return { path: upstream.path, headers: upstream.headers };
}

export class MissingUserTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingUserTokenError';
  }
}

/** For error messages: which proxy a request went through. */
export function proxyHop(via: UpstreamVia, url: URL | undefined): ProxyHop | undefined {
  if (via.kind === 'direct') return undefined;
  if (via.kind === 'connectivity-proxy')
    return { origin: ERROR_ORIGINS.connectivityProxy, endpoint: via.endpoint, connectsToProxy: true };
  return {
    origin: ERROR_ORIGINS.egressProxy,
    endpoint: via.endpoint,
    connectsToProxy: via.kind === 'http-proxy' && url?.protocol === 'http:',
  };
}

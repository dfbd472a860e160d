// How a request reaches its destination's target: directly, through the connectivity proxy (OnPremise),
// or through a corporate egress proxy (Internet, per EgressProxies.forTarget and NO_PROXY).
import type { Destination } from '../destinations/types.js';
import type { DataplaneConnectivityProxy } from '../egress/connectivity-proxy.js';
import { describeProxy } from '../egress/proxy-url.js';
import type { EgressProxies, EgressProxy } from '../egress/types.js';

export type UpstreamVia =
  | { kind: 'direct' }
  /** the connectivity proxy's HTTP port: absolute-form requests, Proxy-Authorization: Bearer */
  | { kind: 'connectivity-proxy'; origin: string; endpoint: string }
  /** an HTTP proxy: absolute form for http targets, CONNECT + TLS for https targets */
  | { kind: 'http-proxy'; proxy: EgressProxy; endpoint: string }
  | { kind: 'socks5'; proxy: EgressProxy; endpoint: string };

export const DIRECT: UpstreamVia = { kind: 'direct' };

/** The proxies the dataplane was configured with (both optional). */
export interface EgressContext {
  connectivityProxy?: DataplaneConnectivityProxy;
  egressProxies?: EgressProxies;
}

function defaultPort(url: URL): number {
  return Number(url.port || (url.protocol === 'https:' ? 443 : 80));
}

/** The way to the destination's URL, or why there is none (a configuration error). */
export function upstreamVia(destination: Destination, egress: EgressContext): UpstreamVia | { error: string } {
  const url = destination.url;
  if (!url) return { error: 'it has no URL' };
  if (destination.proxyType === 'OnPremise') {
    const cp = egress.connectivityProxy;
    if (!cp)
      return {
        error: 'it is ProxyType OnPremise, but the dataplane has no connectivityProxy configured (detour.yaml)',
      };
    if (url.protocol !== 'http:')
      return {
        error:
          'OnPremise URLs must be http:// (the Cloud Connector originates TLS to the backend as configured there)',
      };
    const host = cp.host.includes(':') ? `[${cp.host}]` : cp.host;
    return { kind: 'connectivity-proxy', origin: `http://${host}:${cp.httpPort}`, endpoint: cp.httpEndpoint };
  }
  const scheme = url.protocol === 'https:' ? 'https' : 'http';
  const proxy = egress.egressProxies?.forTarget(url.hostname.replace(/^\[|\]$/g, ''), defaultPort(url), scheme);
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

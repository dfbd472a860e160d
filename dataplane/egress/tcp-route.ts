// Pure: which way a TCP destination's connection leaves — straight to its Address, through the
// connectivity proxy's SOCKS5 port (ProxyType OnPremise), or through a corporate proxy (ProxyType
// Internet with a proxy configured for the address).
import type { Destination } from '../destinations/types.js';
import { formatEndpoint } from '../endpoint.js';
import type { ConnectivityProxy, EgressContext, EgressProxy } from './types.js';

export type TcpRoute =
  | { kind: 'direct' }
  | { kind: 'connectivity-proxy'; proxy: ConnectivityProxy; locationId?: string }
  | { kind: 'egress-proxy'; proxy: EgressProxy };

/** connectivityProxy absent: OnPremise is unusable; egressProxies absent: Internet is always direct */
export type TcpRouteContext = EgressContext;

/** The route, or a reason the destination cannot be used at all. */
export function chooseTcpRoute(
  destination: Destination,
  context: TcpRouteContext,
): { route: TcpRoute } | { unusable: string } {
  const address = destination.address;
  if (destination.type !== 'TCP' || !address) return { unusable: 'not a TCP destination with an Address' };
  if (destination.proxyType === 'OnPremise') {
    if (!context.connectivityProxy)
      return {
        unusable:
          'ProxyType OnPremise needs a connectivity proxy, and none is configured (connectivityProxy in detour.yaml)',
      };
    return {
      route: {
        kind: 'connectivity-proxy',
        proxy: context.connectivityProxy,
        ...(destination.locationId ? { locationId: destination.locationId } : {}),
      },
    };
  }
  const proxy = context.egressProxies?.forTarget(address.host, address.port, 'tcp');
  return { route: proxy ? { kind: 'egress-proxy', proxy } : { kind: 'direct' } };
}

/** For log lines: how the connection leaves; never a credential. */
export function describeTcpRoute(route: TcpRoute): string {
  if (route.kind === 'direct') return 'direct';
  if (route.kind === 'connectivity-proxy') {
    const at = formatEndpoint(route.proxy.host, route.proxy.socks5Port);
    return `connectivity proxy ${at} (SOCKS5${route.locationId ? `, location ${route.locationId}` : ''})`;
  }
  const at = formatEndpoint(route.proxy.host, route.proxy.port);
  const kind = route.proxy.kind === 'http' ? 'HTTP CONNECT' : 'SOCKS5';
  return `${kind} proxy ${at}${route.proxy.username !== undefined ? ' (authenticated)' : ''}`;
}

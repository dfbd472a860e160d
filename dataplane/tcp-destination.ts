// A connection to a TCP destination's VIP: piped to the destination's Address (tcp://host:port) by
// forward.ts — directly, through the connectivity proxy (ProxyType OnPremise) or through a corporate
// proxy (ProxyType Internet with an egress proxy for the address) — with log lines that name the
// destination, its address and the way out.
import type net from 'node:net';
import type { Destination } from './destinations/types.js';
import { connectThroughProxy, failureKind, TcpEgressError } from './egress/tcp-connect.js';
import { chooseTcpRoute, describeTcpRoute, type TcpRouteContext } from './egress/tcp-route.js';
import { formatEndpoint } from './endpoint.js';
import { forward } from './forward.js';
import type { Logger } from './logger.js';

export interface TcpDestinationOptions extends TcpRouteContext {
  logger: Logger;
  connectTimeoutMs: number;
  /** tenant for the connectivity proxy's token */
  tenant?: string;
  /** a connection through a proxy failed (`kind` as in detour_upstream_errors_total) */
  onUpstreamError?: (event: { destination: string; kind: string }) => void;
}

/**
 * Connects to `destination.address` (through its proxy, if any) and copies bytes both ways (half-close
 * passed on). A connection that cannot be made resets the app's socket with one warn line naming the
 * destination, the address, the way out and what went wrong (`reason`: an errno code such as
 * ECONNREFUSED for direct connections, the proxy's answer in words otherwise). The socket should come
 * from a server with allowHalfOpen and pauseOnConnect, as the dataplane's listeners are.
 */
export function pipeTcpDestination(
  socket: net.Socket,
  destination: Destination,
  options: TcpDestinationOptions,
): void {
  const choice = chooseTcpRoute(destination, options);
  if ('unusable' in choice) {
    options.logger.warn(
      { destination: destination.name, type: destination.type, reason: choice.unusable },
      'tcp destination unusable; closing',
    );
    socket.destroy();
    return;
  }
  const address = destination.address!;
  const target = { host: address.host, port: address.port };
  const route = choice.route;
  const log = options.logger.child({
    destination: destination.name,
    address: formatEndpoint(address.host, address.port),
    ...(route.kind === 'direct' ? {} : { via: describeTcpRoute(route) }),
  });
  if (route.kind === 'direct') {
    forward(
      socket,
      { address: target.host, port: target.port },
      { connectTimeoutMs: options.connectTimeoutMs },
      log,
    );
    return;
  }
  connectThroughProxy({
    route,
    target,
    timeoutMs: options.connectTimeoutMs,
    ...(options.tenant ? { tenant: options.tenant } : {}),
  })
    .then(
      (upstream) => {
        if (socket.destroyed) {
          log.info(
            { reason: 'the app closed its connection while the proxy connected' },
            'connection closed',
          );
          upstream.destroy();
          return;
        }
        forward(
          socket,
          { address: target.host, port: target.port },
          { connectTimeoutMs: options.connectTimeoutMs, upstream },
          log,
        );
      },
      (error: unknown) => {
        const failure =
          error instanceof TcpEgressError ? error : new TcpEgressError('internal', String(error));
        const kind = failureKind(failure);
        options.onUpstreamError?.({ destination: destination.name, kind });
        log.warn(
          {
            kind,
            stage: failure.stage,
            ...(failure.replyCode !== undefined ? { replyCode: replyCodeText(failure) } : {}),
            ...(failure.replyName ? { replyName: failure.replyName } : {}),
            reason: failure.meaning,
            timeoutMs: options.connectTimeoutMs,
          },
          'upstream connect through proxy failed; resetting',
        );
        // A reset is the closest the application gets to the refusal it would see without a proxy.
        if (!socket.destroyed) socket.resetAndDestroy();
      },
    )
    // never an unhandled rejection (it would end the process): whatever slipped through closes the app's side
    .catch((error: unknown) => {
      log.error({ err: error }, 'tcp destination: internal error; closing');
      socket.destroy();
    });
}

/** SOCKS codes as 0x03, HTTP statuses as numbers. */
function replyCodeText(error: TcpEgressError): string | number {
  return error.stage.startsWith('socks5')
    ? `0x${error.replyCode!.toString(16).padStart(2, '0')}`
    : error.replyCode!;
}

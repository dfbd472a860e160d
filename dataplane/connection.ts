// What happens to one accepted connection: find where it was going, then forward, refuse or drop it.
import type net from 'node:net';
import { formatEndpoint } from './endpoint.js';
import { forward } from './forward.js';
import type { Logger } from './logger.js';
import { type OriginalDestination, originalDestination } from './original-destination.js';
import type { Route } from './router.js';

export type Direction = 'outbound' | 'inbound';

export interface ConnectionContext {
  log: Logger;
  passthrough: boolean;
  connectTimeoutMs: number;
  lookup?: (socket: net.Socket) => OriginalDestination;
  /** destinations: handles the connection and returns its route, or undefined when it is no destination */
  route?: (socket: net.Socket, address: string, log: Logger) => Route;
  /** counts connections by route (destination, passthrough, refused, not-redirected, unknown-vip) */
  count?: (direction: Direction, route: string) => void;
}

function lookupSafely(ctx: ConnectionContext, client: net.Socket): OriginalDestination {
  try {
    return (ctx.lookup ?? originalDestination)(client);
  } catch (error) {
    return { redirected: false, reason: (error as Error).message };
  }
}

export function handleConnection(
  ctx: ConnectionContext,
  direction: Direction,
  client: net.Socket,
  id: number,
): void {
  const source = formatEndpoint(client.remoteAddress, client.remotePort);
  const log = ctx.log.child({ id, direction, source });
  // Attached first: a socket error must never reach the process as an uncaught exception.
  client.on('error', (err) => log.debug({ err }, 'client socket error'));

  const dst = lookupSafely(ctx, client);
  if (!dst.redirected) {
    log.warn(
      { reason: dst.reason, listener: formatEndpoint(client.localAddress, client.localPort) },
      'connection not redirected; closing',
    );
    ctx.count?.(direction, 'not-redirected');
    client.destroy();
    return;
  }
  const originalDestination = formatEndpoint(dst.address, dst.port);
  const connLog = log.child({ originalDestination });
  if (direction === 'outbound' && ctx.route) {
    const route = ctx.route(client, dst.address, connLog);
    if (route) {
      ctx.count?.(direction, route.kind);
      return;
    }
  }
  if (!ctx.passthrough) {
    ctx.count?.(direction, 'refused');
    connLog.warn({ reason: 'passthrough disabled and not a destination' }, 'connection refused');
    client.destroy();
    return;
  }
  ctx.count?.(direction, 'passthrough');
  connLog.info(`${direction} connection`);
  forward(client, dst, { connectTimeoutMs: ctx.connectTimeoutMs }, connLog);
}

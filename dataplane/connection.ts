// What happens to one accepted connection: find where it was going, then forward, refuse or drop it.
import type net from 'node:net';
import { formatEndpoint } from './endpoint.js';
import { forward } from './forward.js';
import type { Logger } from './logger.js';
import { type OriginalDestination, originalDestination } from './original-destination.js';

export type Direction = 'outbound' | 'inbound';

export interface ConnectionContext {
  log: Logger;
  passthrough: boolean;
  connectTimeoutMs: number;
  lookup?: (socket: net.Socket) => OriginalDestination;
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
    client.destroy();
    return;
  }
  const originalDestination = formatEndpoint(dst.address, dst.port);
  if (!ctx.passthrough) {
    log.warn(
      { originalDestination, reason: 'passthrough disabled and not a destination' },
      'connection refused',
    );
    client.destroy();
    return;
  }
  const connLog = log.child({ originalDestination });
  connLog.info(`${direction} connection`);
  forward(client, dst, { connectTimeoutMs: ctx.connectTimeoutMs }, connLog);
}

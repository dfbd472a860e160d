// A connection to a TCP destination's VIP: piped to the destination's Address (tcp://host:port) by
// forward.ts, with log lines that name the destination and its address.
import type net from 'node:net';
import type { Destination } from './destinations/types.js';
import { formatEndpoint } from './endpoint.js';
import { forward } from './forward.js';
import type { Logger } from './logger.js';

export interface TcpDestinationOptions {
  logger: Logger;
  connectTimeoutMs: number;
}

/**
 * Connects to `destination.address` and copies bytes both ways (half-close passed on). A connection
 * that cannot be made resets the app's socket; the log line says why (`destination`, `address`,
 * `reason` = error code such as ECONNREFUSED, ENOTFOUND or ETIMEDOUT). The socket should come from a
 * server with allowHalfOpen and pauseOnConnect, as the dataplane's listeners are.
 */
export function pipeTcpDestination(
  socket: net.Socket,
  destination: Destination,
  options: TcpDestinationOptions,
): void {
  const address = destination.address;
  if (destination.type !== 'TCP' || !address) {
    options.logger.warn(
      {
        destination: destination.name,
        type: destination.type,
        reason: 'not a TCP destination with an Address',
      },
      'tcp destination unusable; closing',
    );
    socket.destroy();
    return;
  }
  if (destination.proxyType !== 'Internet') {
    options.logger.warn(
      { destination: destination.name, reason: `ProxyType ${destination.proxyType} is not supported yet` },
      'tcp destination unusable; closing',
    );
    socket.destroy();
    return;
  }
  const log = options.logger.child({
    destination: destination.name,
    address: formatEndpoint(address.host, address.port),
  });
  forward(
    socket,
    { address: address.host, port: address.port },
    { connectTimeoutMs: options.connectTimeoutMs },
    log,
  );
}

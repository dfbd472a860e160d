// Which way a redirected connection goes: a destination's VIP → that destination (HTTP handler or
// TCP pipe); an address in the VIP ranges that belongs to no destination → closed with a reason;
// anything else → undefined (the caller passes it through or refuses it).
import type net from 'node:net';
import type { Destination } from './destinations/types.js';
import type { Logger } from './logger.js';

export interface VipLookup {
  /** the destination name a VIP was allocated to */
  nameFor(address: string): string | undefined;
  /** true for any address inside the configured VIP ranges */
  inRange(address: string): boolean;
}

export interface DestinationLookup {
  get(name: string): Destination | undefined;
}

export interface RouteHandlers {
  http(socket: net.Socket, destination: () => Destination | undefined): void;
  tcp(socket: net.Socket, destination: Destination, log: Logger): void;
}

export type Route =
  | { kind: 'destination'; name: string; type: Destination['type'] }
  | { kind: 'unknown-vip'; reason: string }
  | undefined;

/** Pure: where a connection to `address` belongs. */
export function decideRoute(address: string, vips: VipLookup, destinations: DestinationLookup): Route {
  if (!vips.inRange(address)) return undefined;
  const name = vips.nameFor(address);
  if (name === undefined) return { kind: 'unknown-vip', reason: `${address} is a VIP of no destination` };
  const destination = destinations.get(name);
  if (!destination)
    return { kind: 'unknown-vip', reason: `destination "${name}" (VIP ${address}) no longer exists` };
  return { kind: 'destination', name: destination.name, type: destination.type };
}

export function createRouter(vips: VipLookup, destinations: DestinationLookup, handlers: RouteHandlers) {
  /** Handles the connection and returns the route, or returns undefined (not a destination). */
  return (socket: net.Socket, address: string, log: Logger): Route => {
    const route = decideRoute(address, vips, destinations);
    if (!route) return undefined;
    if (route.kind === 'unknown-vip') {
      log.warn({ reason: route.reason }, 'connection to an unknown VIP; closing');
      socket.destroy();
      return route;
    }
    const child = log.child({ destination: route.name });
    if (route.type === 'TCP') {
      handlers.tcp(socket, destinations.get(route.name)!, child);
    } else {
      // The provider is read per request: a reload that changes or removes the destination applies
      // to the next request on a kept-alive connection.
      handlers.http(socket, () => destinations.get(route.name));
    }
    return route;
  };
}

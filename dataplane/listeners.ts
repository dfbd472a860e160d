// The dataplane's TCP listeners: which addresses (pure), and opening them.
import net from 'node:net';
import type { DataplaneConfig } from './config.js';
import { formatEndpoint } from './endpoint.js';
import type { Direction } from './connection.js';

export interface ListenerSpec {
  direction: Direction;
  host: string;
  port: number;
  /** IPv6 listeners are skipped (with a log line) when the host has no IPv6. */
  ipv6: boolean;
}

/** Outbound on loopback only; inbound on all addresses. v4 and v6 listeners side by side (ipv6Only). */
export function listenerSpecs(config: DataplaneConfig): ListenerSpec[] {
  const { outbound, inbound } = config.listeners;
  const specs: ListenerSpec[] = [
    { direction: 'outbound', host: '127.0.0.1', port: outbound.port, ipv6: false },
    { direction: 'outbound', host: '::1', port: outbound.port, ipv6: true },
  ];
  if (inbound.enabled) {
    specs.push(
      { direction: 'inbound', host: '0.0.0.0', port: inbound.port, ipv6: false },
      { direction: 'inbound', host: '::', port: inbound.port, ipv6: true },
    );
  }
  return specs;
}

const NO_IPV6 = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EPROTONOSUPPORT']);

export function isMissingIpv6(spec: ListenerSpec, error: unknown): boolean {
  return spec.ipv6 && NO_IPV6.has((error as NodeJS.ErrnoException)?.code ?? '');
}

export function listenerName(spec: ListenerSpec): string {
  return `${spec.direction} ${formatEndpoint(spec.host, spec.port)}`;
}

export function openListener(
  spec: ListenerSpec,
  onConnection: (socket: net.Socket) => void,
): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, onConnection);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: spec.host, port: spec.port, ipv6Only: spec.ipv6, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

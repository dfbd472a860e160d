// Reads a redirected connection's original destination through the native addon (build/original_dst.node)
// and decides whether the connection was really redirected.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { type Endpoint, normalizeAddress, sameEndpoint } from './endpoint.js';

export interface RawOriginalDestination {
  address: string;
  port: number;
  family: 4 | 6;
}

export type OriginalDestination =
  { redirected: true; address: string; port: number; family: 4 | 6 } | { redirected: false; reason: string };

interface Addon {
  getOriginalDestination(fd: number): RawOriginalDestination | null;
}

let addon: Addon | undefined;

/** Finds build/<file> above this module: works from the TS sources and from dist/dataplane/. */
export function findAddon(startDir: string, file = 'original_dst.node'): string | undefined {
  for (let dir = startDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'build', file);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

export function loadAddon(): Addon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  const path = findAddon(here);
  if (!path) throw new Error('native addon not built: run `npm run build:native`');
  addon = createRequire(import.meta.url)(path) as Addon;
  return addon;
}

/**
 * Pure decision: conntrack answers SO_ORIGINAL_DST for every tracked connection, NATed or not. A direct
 * connection to the listener reports the listener itself; a connection whose conntrack entry was created
 * by our own reply (inbound direction untracked) reports the peer. Neither was redirected.
 */
export function classifyOriginalDestination(
  raw: RawOriginalDestination | null,
  local: Endpoint,
  remote: Endpoint,
): OriginalDestination {
  if (!raw)
    return { redirected: false, reason: 'no original destination (connection not NATed or untracked)' };
  const dst = { address: normalizeAddress(raw.address), port: raw.port };
  if (sameEndpoint(dst, local)) {
    return { redirected: false, reason: 'original destination is the listener itself (direct connection)' };
  }
  if (sameEndpoint(dst, remote)) {
    return { redirected: false, reason: 'original destination is the peer (conntrack entry from our reply)' };
  }
  return { redirected: true, ...dst, family: raw.family };
}

/**
 * Node exposes no public fd for a net.Socket; on Unix its TCPWrap handle has an `fd` getter, which is the
 * only way to reach getsockopt() without moving the whole socket into native code.
 */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Throws when the kernel answers with an unexpected errno (the message names it). */
export function originalDestination(socket: Socket): OriginalDestination {
  const fd = socketFd(socket);
  if (fd === undefined)
    return { redirected: false, reason: 'socket has no file descriptor (already closed?)' };
  const raw = loadAddon().getOriginalDestination(fd);
  return classifyOriginalDestination(
    raw,
    { address: socket.localAddress ?? '', port: socket.localPort ?? 0 },
    { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 },
  );
}

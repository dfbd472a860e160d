// placeholder until the dataplane branch lands
import type net from 'node:net';
export function originalDestination(
  _socket: net.Socket,
): { redirected: true; address: string; port: number; family: 4 | 6 } | { redirected: false; reason: string } {
  throw new Error('native addon not built: run `npm run build:native`');
}

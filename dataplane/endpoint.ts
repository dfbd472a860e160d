// Address helpers shared by the dataplane: one spelling for every endpoint we log or compare.
import { isIPv6 } from 'node:net';

export interface Endpoint {
  address: string;
  port: number;
}

const V4_MAPPED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** `::ffff:192.0.2.1` → `192.0.2.1`; a scope id (`fe80::1%eth0`) is dropped; anything else unchanged. */
export function normalizeAddress(address: string): string {
  const unscoped = address.split('%')[0] ?? address;
  return V4_MAPPED.exec(unscoped)?.[1] ?? unscoped.toLowerCase();
}

export function familyOf(address: string): 4 | 6 {
  return isIPv6(normalizeAddress(address)) ? 6 : 4;
}

/** `192.0.2.1:80`, `[2001:db8::1]:80`. */
export function formatEndpoint(address: string | undefined, port: number | undefined): string {
  const host = normalizeAddress(address ?? '?');
  return `${isIPv6(host) ? `[${host}]` : host}:${port ?? '?'}`;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && normalizeAddress(a.address) === normalizeAddress(b.address);
}

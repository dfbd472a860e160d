// Parsers for the value kinds of the transparent-proxy config. Pure; each throws a plain Error whose
// message says what is wrong with the value (the caller adds where it came from).
import { isIP } from 'node:net';
import { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from '../../dns/ip.js';

export interface PortRange {
  from: number;
  to: number;
}

export type Protocol = 'tcp' | 'udp' | 'all';

export interface Cidr {
  family: 4 | 6;
  /** address/prefix exactly as iptables-save prints it for the network (host bits cleared). */
  cidr: string;
}

export interface UidPortExclusion {
  protocol: Protocol;
  /** empty: all ports */
  ports: PortRange[];
  uids: { from: number; to: number }[];
}

const INTEGER = /^\d+$/;

export function parsePort(value: unknown): number {
  const text = String(value).trim();
  const n = INTEGER.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new Error(`"${text}" is not a port: expected an integer 1-65535`);
  }
  return n;
}

export function parseNonNegativeInt(value: unknown, what = 'value'): number {
  const text = String(value).trim();
  if (!INTEGER.test(text)) throw new Error(`"${text}" is not a valid ${what}: expected a whole number ≥ 0`);
  return Number(text);
}

/** Accepts an array, or a comma-separated string; empty string → empty list. */
export function splitList(value: unknown, separator = ','): string[] {
  if (Array.isArray(value)) return value.flatMap((v) => splitList(v, separator));
  if (value === undefined || value === null) return [];
  return String(value)
    .split(separator)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function parsePortRange(text: string): PortRange {
  const m = /^(\d+)(?:[-:](\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a port or port range: expected e.g. 8080 or 8000-8100`);
  const from = parsePort(m[1]);
  const to = m[2] === undefined ? from : parsePort(m[2]);
  if (to < from)
    throw new Error(`"${text}" is an empty port range: the first port must not exceed the second`);
  return { from, to };
}

export function parsePortList(value: unknown): PortRange[] {
  return splitList(value).map(parsePortRange);
}

export function parseBoolean(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(text)) return true;
  if (['false', '0', 'no', 'off'].includes(text)) return false;
  throw new Error(`"${String(value)}" is not a boolean: expected true or false`);
}

export function parseCidr(text: string): Cidr {
  const [address = '', prefixText, extra] = text.trim().split('/');
  const family = isIP(address);
  const value =
    family === 4 ? BigInt(parseIPv4(address) ?? -1) : family === 6 ? parseIPv6(address) : undefined;
  if (extra !== undefined || value === undefined || value < 0n) {
    throw new Error(`"${text}" is not an IPv4 or IPv6 address or CIDR (e.g. 10.0.0.0/8, fd00::/8)`);
  }
  const max = family === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d+$/.test(prefixText)) {
    throw new Error(`"${text}" has an invalid prefix length: expected 0-${max}`);
  }
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) throw new Error(`"${text}" has an invalid prefix length: expected 0-${max}`);
  // Host bits are cleared: iptables-save prints the network, and verification compares with it.
  const bits = BigInt(max - prefix);
  const network = (value >> bits) << bits;
  const networkText = family === 4 ? formatIPv4(Number(network)) : formatIPv6(network);
  return { family: family === 4 ? 4 : 6, cidr: `${networkText}/${prefix}` };
}

export function parseCidrList(value: unknown): Cidr[] {
  return splitList(value).map(parseCidr);
}

function parseUidRange(text: string): { from: number; to: number } {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a UID or UID range (e.g. 1000 or 1000-1005)`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (from > 2 ** 32 - 2 || to > 2 ** 32 - 2) throw new Error(`"${text}" is out of the UID range`);
  if (to < from) throw new Error(`"${text}" is an empty UID range: the first UID must not exceed the second`);
  return { from, to };
}

const PROTOCOLS: Record<string, Protocol> = { tcp: 'tcp', udp: 'udp', '*': 'all', all: 'all' };

/**
 * Kuma's `--exclude-outbound-ports-for-uids` value: `[protocol:][ports:]uids`, e.g. `1000`,
 * `tcp:1000-1005`, `22,80:1000`, `udp:53:1000,1001`. Protocol is tcp, udp or *; ports and uids are
 * comma-separated values or ranges (`*` for ports means all).
 */
export function parseUidPortExclusion(text: string): UidPortExclusion {
  const parts = text.trim().split(':');
  const bad = () =>
    new Error(
      `"${text}" is not a valid [protocol:][ports:]uids value (e.g. 1000, tcp:22:1000-1005, udp:53:1000,1001)`,
    );
  if (parts.length < 1 || parts.length > 3 || parts.some((p) => p.trim() === '')) throw bad();
  let protocol: Protocol = 'all';
  let portsText = '*';
  if (parts.length === 3) {
    const p = PROTOCOLS[parts[0]!.trim().toLowerCase()];
    if (!p) throw new Error(`"${text}": protocol "${parts[0]}" must be tcp, udp or *`);
    protocol = p;
    portsText = parts[1]!;
  } else if (parts.length === 2) {
    const p = PROTOCOLS[parts[0]!.trim().toLowerCase()];
    if (p) protocol = p;
    else portsText = parts[0]!;
  }
  const uidsText = parts[parts.length - 1]!;
  const ports = portsText.trim() === '*' ? [] : splitList(portsText).map(parsePortRange);
  const uids = splitList(uidsText).map(parseUidRange);
  if (uids.length === 0) throw bad();
  return { protocol, ports, uids };
}

export function parseUidPortExclusions(value: unknown): UidPortExclusion[] {
  // Each value contains commas, so several values are separated by ';' (or given as a list).
  return splitList(value, ';').map(parseUidPortExclusion);
}

/** Durations like 2s, 500ms, 1m, or a bare number of seconds. Returns milliseconds. */
export function parseDuration(value: unknown): number {
  const text = String(value).trim();
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  if (!m) throw new Error(`"${text}" is not a duration: expected e.g. 2s, 500ms or 1m`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(unit === 'ms' ? n : unit === 'm' ? n * 60000 : n * 1000);
}

/** A user name (letters, digits, ._-) or a numeric UID; resolved to a UID later. */
export function parseUser(value: unknown): string {
  const text = String(value).trim();
  if (!/^(\d+|[a-z_][a-z0-9_.-]*\$?)$/i.test(text)) {
    throw new Error(`"${text}" is not a user name or UID`);
  }
  if (/^\d+$/.test(text) && Number(text) > 2 ** 32 - 2) throw new Error(`"${text}" is out of the UID range`);
  return text;
}

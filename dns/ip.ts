// IP address and CIDR arithmetic on numbers (IPv4) and bigints (IPv6). Pure.
import { isIPv4, isIPv6 } from 'node:net';

/** 32-bit IPv4 address as a number, or undefined when `text` is not a dotted quad. */
export function parseIPv4(text: string): number | undefined {
  if (!isIPv4(text)) return undefined;
  const parts = text.split('.').map(Number);
  return (((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!) >>> 0;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** 128-bit IPv6 address as a bigint (also `::ffff:1.2.3.4` forms), or undefined. No zone ids. */
export function parseIPv6(text: string): bigint | undefined {
  if (!isIPv6(text) || text.includes('%')) return undefined;
  let hex = text;
  const lastColon = text.lastIndexOf(':');
  const v4 = parseIPv4(text.slice(lastColon + 1));
  if (v4 !== undefined)
    hex = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const double = hex.indexOf('::');
  let all: number[];
  if (double < 0) all = groups(hex);
  else {
    const left = groups(hex.slice(0, double));
    const right = groups(hex.slice(double + 2));
    all = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  }
  if (all.length !== 8 || all.some((g) => !(g >= 0 && g <= 0xffff))) return undefined;
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** RFC 5952 text form: lower case, no leading zeros, the first longest run (≥ 2) of zero groups as "::". */
export function formatIPv6(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export interface Cidr {
  family: 4 | 6;
  /** The network address (host bits zero). */
  base: bigint;
  prefix: number;
  /** 32 or 128. */
  bits: number;
  /** Canonical text, e.g. "240.240.0.0/16". */
  text: string;
}

/** Parses "a.b.c.d/p" or "x::/p"; throws an Error saying what is wrong with `text` (named by `what`). */
export function parseCidr(text: string, what: string): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0)
    throw new Error(`${what}: "${text}" is not a CIDR (expected address/prefix, e.g. 240.240.0.0/16)`);
  const addr = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const v4 = parseIPv4(addr);
  const v6 = v4 === undefined ? parseIPv6(addr) : undefined;
  if (v4 === undefined && v6 === undefined)
    throw new Error(`${what}: "${addr}" in "${text}" is not an IPv4 or IPv6 address`);
  const family = v4 !== undefined ? 4 : 6;
  const bits = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits)
    throw new Error(`${what}: prefix length "${prefixText}" in "${text}" must be an integer 0-${bits}`);
  const prefix = Number(prefixText);
  const value = v4 !== undefined ? BigInt(v4) : v6!;
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & hostMask) !== 0n) {
    const base = value & ~hostMask;
    const fixed = `${family === 4 ? formatIPv4(Number(base)) : formatIPv6(base)}/${prefix}`;
    throw new Error(`${what}: "${text}" has host bits set (did you mean ${fixed}?)`);
  }
  return {
    family,
    base: value,
    prefix,
    bits,
    text: `${family === 4 ? formatIPv4(Number(value)) : formatIPv6(value)}/${prefix}`,
  };
}

// VIP allocation: every destination name gets one IPv4 and one IPv6 address from configurable ranges.
// Pure apart from its own state (no sockets, no clock, no randomness).
//
// Stability: a name's "home" slot is SHA-256(lower-cased name, without a trailing dot) modulo the
// number of usable addresses, so the same name gets the same VIP in every process, whatever other
// names exist. Only names whose home slots collide can differ: the loser of a collision takes the
// next free slot (linear probing, wrapping around). `sync(names)` allocates in sorted order, so for
// the same set of names the result is the same across restarts whatever order they come in; while a
// process runs, a VIP once handed out never moves (a new colliding name probes past it).
//
// Usable IPv4 addresses: not the range's network or broadcast address, and no address ending in .0
// or .255 (some software treats those as network/broadcast addresses whatever the prefix). A /16
// thus holds 256 × 254 = 65024 VIPs. Usable IPv6 addresses: every address except the range's first
// (the subnet-router anycast address).
import { createHash } from 'node:crypto';
import { formatIPv4, formatIPv6, parseCidr, parseIPv4, parseIPv6, type Cidr } from './ip.js';

export const DEFAULT_VIP_IPV4_CIDR = '240.240.0.0/16';
/** Inside 2001:2::/48 (RFC 5180, benchmarking): never routed on the Internet. */
export const DEFAULT_VIP_IPV6_CIDR = '2001:2:0:240::/64';

export interface VipRanges {
  /** Default 240.240.0.0/16. Prefix at most /30. */
  ipv4Cidr?: string;
  /** Default 2001:2:0:240::/64. Prefix at most /127. */
  ipv6Cidr?: string;
}

export interface Vip {
  ipv4: string;
  ipv6: string;
}

export interface VipAllocator {
  /** The VIPs of `name` (case-insensitive, trailing dot ignored); allocates them on first use. */
  vipFor(name: string): Vip;
  /** The (normalised) name holding `address` (IPv4 or IPv6 text), or undefined. */
  nameFor(address: string): string | undefined;
  /**
   * Makes exactly `names` allocated: releases the others, allocates the new ones in sorted order.
   * Names already allocated keep their VIPs.
   */
  sync(names: Iterable<string>): void;
  /** Every allocation, sorted by name (for /config and logs). */
  entries(): Array<{ name: string } & Vip>;
  readonly ipv4Cidr: string;
  readonly ipv6Cidr: string;
}

export class VipRangeError extends Error {
  override name = 'VipRangeError';
}

/** Lower case (ASCII only, as DNS compares names), without one trailing dot. */
export function normalizeVipName(name: string): string {
  const n = (name.endsWith('.') ? name.slice(0, -1) : name).replace(/[A-Z]+/g, (s) => s.toLowerCase());
  if (n === '') throw new VipRangeError('VIP allocation: empty name');
  return n;
}

interface Family {
  cidr: Cidr;
  /** Number of usable addresses. */
  size: bigint;
  slotToAddress(slot: bigint): string;
  /** Slot of an address in this range, or undefined. */
  addressToSlot(address: string): bigint | undefined;
  used: Map<bigint, string>;
}

function ipv4Family(text: string): Family {
  const cidr = parseCidr(text, 'VIP IPv4 range');
  if (cidr.family !== 4) throw new VipRangeError(`VIP IPv4 range: "${text}" is not an IPv4 CIDR`);
  if (cidr.prefix > 30)
    throw new VipRangeError(`VIP IPv4 range: "${text}" is too small (at most /30, e.g. 240.240.0.0/16)`);
  const base = Number(cidr.base);
  // Up to /24: whole /24 blocks with 254 usable addresses each (.1-.254); beyond: one partial block
  // without its network and broadcast address (which covers any .0 or .255 it contains).
  const wholeBlocks = cidr.prefix <= 24;
  const total = 2 ** (32 - cidr.prefix);
  const size = wholeBlocks ? (total / 256) * 254 : total - 2;
  return {
    cidr,
    size: BigInt(size),
    slotToAddress(slot) {
      const s = Number(slot);
      const offset = wholeBlocks ? Math.floor(s / 254) * 256 + 1 + (s % 254) : 1 + s;
      return formatIPv4((base + offset) >>> 0);
    },
    addressToSlot(address) {
      const n = parseIPv4(address);
      if (n === undefined) return undefined;
      const offset = n - base;
      if (offset < 0 || offset >= total) return undefined;
      if (wholeBlocks) {
        const last = offset % 256;
        return last === 0 || last === 255 ? undefined : BigInt(Math.floor(offset / 256) * 254 + last - 1);
      }
      return offset === 0 || offset === total - 1 ? undefined : BigInt(offset - 1);
    },
    used: new Map(),
  };
}

function ipv6Family(text: string): Family {
  const cidr = parseCidr(text, 'VIP IPv6 range');
  if (cidr.family !== 6) throw new VipRangeError(`VIP IPv6 range: "${text}" is not an IPv6 CIDR`);
  if (cidr.prefix > 127)
    throw new VipRangeError(`VIP IPv6 range: "${text}" is too small (at most /127, e.g. 2001:2:0:240::/64)`);
  const total = 1n << BigInt(128 - cidr.prefix);
  return {
    cidr,
    size: total - 1n,
    slotToAddress: (slot) => formatIPv6(cidr.base + 1n + slot),
    addressToSlot(address) {
      const n = parseIPv6(address);
      if (n === undefined) return undefined;
      const offset = n - cidr.base;
      return offset >= 1n && offset < total ? offset - 1n : undefined;
    },
    used: new Map(),
  };
}

function rangeError(e: unknown): never {
  if (e instanceof VipRangeError) throw e;
  throw new VipRangeError((e as Error).message);
}

export function createVipAllocator(ranges: VipRanges = {}): VipAllocator {
  let v4: Family;
  let v6: Family;
  try {
    v4 = ipv4Family(ranges.ipv4Cidr ?? DEFAULT_VIP_IPV4_CIDR);
    v6 = ipv6Family(ranges.ipv6Cidr ?? DEFAULT_VIP_IPV6_CIDR);
  } catch (e) {
    rangeError(e);
  }
  // The addresses' text is made once per name: vipFor runs on every DNS answer.
  const byName = new Map<string, { v4: bigint; v6: bigint; vip: Vip }>();

  const home = (name: string): bigint => BigInt(`0x${createHash('sha256').update(name).digest('hex')}`);

  const claim = (family: Family, name: string, digest: bigint): bigint => {
    const start = digest % family.size;
    // Bounded: at most `size` probes, and in practice a handful (the range is far from full).
    for (let i = 0n; i < family.size; i++) {
      const slot = (start + i) % family.size;
      if (!family.used.has(slot)) {
        family.used.set(slot, name);
        return slot;
      }
    }
    throw new VipRangeError(
      `VIP range ${family.cidr.text} is full (${family.size} addresses, all taken) while allocating "${name}"; configure a larger range`,
    );
  };

  const allocate = (name: string): { v4: bigint; v6: bigint; vip: Vip } => {
    const existing = byName.get(name);
    if (existing) return existing;
    const digest = home(name);
    const s4 = claim(v4, name, digest);
    let s6: bigint;
    try {
      s6 = claim(v6, name, digest);
    } catch (e) {
      v4.used.delete(s4);
      throw e;
    }
    const slots = { v4: s4, v6: s6, vip: { ipv4: v4.slotToAddress(s4), ipv6: v6.slotToAddress(s6) } };
    byName.set(name, slots);
    return slots;
  };

  const release = (name: string): void => {
    const slots = byName.get(name);
    if (!slots) return;
    v4.used.delete(slots.v4);
    v6.used.delete(slots.v6);
    byName.delete(name);
  };

  return {
    ipv4Cidr: v4.cidr.text,
    ipv6Cidr: v6.cidr.text,
    vipFor: (name) => ({ ...allocate(normalizeVipName(name)).vip }),
    nameFor(address) {
      // An IPv4 VIP as a v4-mapped IPv6 address (what a dual-stack socket reports) is still that VIP.
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
      if (mapped) address = mapped[1]!;
      for (const family of [v4, v6]) {
        const slot = family.addressToSlot(address);
        if (slot !== undefined) return family.used.get(slot);
      }
      return undefined;
    },
    sync(names) {
      const wanted = new Set<string>();
      for (const n of names) wanted.add(normalizeVipName(n));
      for (const n of [...byName.keys()]) if (!wanted.has(n)) release(n);
      for (const n of [...wanted].sort()) allocate(n);
    },
    entries: () =>
      [...byName.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([name, slots]) => ({ name, ...slots.vip })),
  };
}

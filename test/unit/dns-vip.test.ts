import { describe, expect, test } from '@jest/globals';
import { formatIPv6, parseCidr, parseIPv4, parseIPv6 } from '../../dns/ip.js';
import { VipRangeError, createVipAllocator } from '../../dns/vip.js';

describe('ip helpers', () => {
  test('IPv6 text round-trips in RFC 5952 form', () => {
    const cases: Array<[string, string]> = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['::', '::'],
      ['::1', '::1'],
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:1:1:1:1:0:1', '2001:db8:1:1:1:1:0:1'],
      ['::ffff:192.0.2.1', '::ffff:c000:201'],
      ['fe80::', 'fe80::'],
    ];
    for (const [input, canonical] of cases) expect(formatIPv6(parseIPv6(input)!)).toBe(canonical);
    expect(parseIPv6('2001:db8::1%eth0')).toBeUndefined();
    expect(parseIPv6('1.2.3.4')).toBeUndefined();
    expect(parseIPv4('240.240.0.1')).toBe(0xf0f00001);
    expect(parseIPv4('240.240.0')).toBeUndefined();
  });

  test('CIDR errors say what is wrong', () => {
    expect(() => parseCidr('240.240.0.0', 'r')).toThrow(/not a CIDR/);
    expect(() => parseCidr('240.240.0.1/16', 'r')).toThrow(
      /host bits set \(did you mean 240\.240\.0\.0\/16\?\)/,
    );
    expect(() => parseCidr('240.240.0.0/33', 'r')).toThrow(/prefix length "33".*0-32/);
    expect(() => parseCidr('nope/8', 'r')).toThrow(/"nope" in "nope\/8" is not an IPv4 or IPv6 address/);
    expect(parseCidr('2001:0002:0:0240::/64', 'r').text).toBe('2001:2:0:240::/64');
  });
});

describe('VIP allocator', () => {
  test('same name, same VIPs: across allocators, case and trailing dot ignored', () => {
    const a = createVipAllocator();
    const b = createVipAllocator();
    const vip = a.vipFor('orders');
    expect(b.vipFor('ORDERS.')).toEqual(vip);
    expect(a.vipFor('Orders')).toEqual(vip);
    expect(vip.ipv4).toMatch(/^240\.240\.\d+\.\d+$/);
    expect(vip.ipv6.startsWith('2001:2:0:240:')).toBe(true);
  });

  test('a VIP does not depend on which other names exist (absent collisions)', () => {
    const alone = createVipAllocator().vipFor('orders');
    const crowded = createVipAllocator();
    crowded.sync(Array.from({ length: 50 }, (_, i) => `service-${i}`));
    crowded.sync([...Array.from({ length: 50 }, (_, i) => `service-${i}`), 'orders']);
    expect(crowded.vipFor('orders')).toEqual(alone);
  });

  test('distinct names get distinct VIPs, never .0 or .255, inside the ranges', () => {
    const a = createVipAllocator();
    const names = Array.from({ length: 2000 }, (_, i) => `dest-${i}`);
    a.sync(names);
    const v4 = new Set<string>();
    const v6 = new Set<string>();
    for (const n of names) {
      const vip = a.vipFor(n);
      v4.add(vip.ipv4);
      v6.add(vip.ipv6);
      const last = Number(vip.ipv4.split('.')[3]);
      expect(last).toBeGreaterThanOrEqual(1);
      expect(last).toBeLessThanOrEqual(254);
      expect(vip.ipv4.startsWith('240.240.')).toBe(true);
    }
    expect(v4.size).toBe(names.length);
    expect(v6.size).toBe(names.length);
  });

  test('reverse lookup for IPv4, IPv6 and v4-mapped addresses', () => {
    const a = createVipAllocator();
    const vip = a.vipFor('Orders');
    expect(a.nameFor(vip.ipv4)).toBe('orders');
    expect(a.nameFor(vip.ipv6)).toBe('orders');
    expect(a.nameFor(`::ffff:${vip.ipv4}`)).toBe('orders');
    // The same IPv6 address written out in full, upper case.
    const n = parseIPv6(vip.ipv6)!;
    const full = Array.from({ length: 8 }, (_, i) =>
      ((n >> BigInt((7 - i) * 16)) & 0xffffn).toString(16).padStart(4, '0'),
    ).join(':');
    expect(a.nameFor(full.toUpperCase())).toBe('orders');
    expect(a.nameFor('240.240.0.0')).toBeUndefined();
    expect(a.nameFor('203.0.113.1')).toBeUndefined();
    expect(a.nameFor('not an address')).toBeUndefined();
  });

  test('colliding names: the first in sorted order keeps the home slot, the other takes the next', () => {
    // A /24 has 254 usable slots; find two names whose home slots collide.
    const homeOf = (n: string): string => createVipAllocator({ ipv4Cidr: '10.1.2.0/24' }).vipFor(n).ipv4;
    const seen = new Map<string, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; i < 2000 && !pair; i++) {
      const name = `n${i}`;
      const home = homeOf(name);
      const other = seen.get(home);
      if (other) pair = [other, name].sort() as [string, string];
      else seen.set(home, name);
    }
    expect(pair).toBeDefined();
    const [first, second] = pair!;
    const home = homeOf(first);
    const next = home.replace(/\d+$/, (d) => String(Number(d) === 254 ? 1 : Number(d) + 1));
    for (const order of [
      [first, second],
      [second, first],
    ]) {
      const a = createVipAllocator({ ipv4Cidr: '10.1.2.0/24' });
      a.sync(order);
      expect(a.vipFor(first).ipv4).toBe(home);
      expect(a.vipFor(second).ipv4).toBe(next);
    }
    // At runtime a VIP, once given, never moves: here `second` came first and keeps the home slot.
    const running = createVipAllocator({ ipv4Cidr: '10.1.2.0/24' });
    expect(running.vipFor(second).ipv4).toBe(home);
    running.sync([second, first]);
    expect(running.vipFor(second).ipv4).toBe(home);
    expect(running.vipFor(first).ipv4).toBe(next);
  });

  test('a tiny range fills up with a clear error, and released slots are reused', () => {
    const a = createVipAllocator({ ipv4Cidr: '10.9.9.0/30', ipv6Cidr: '2001:db8::/126' });
    a.sync(['one', 'two']);
    const got = new Set([a.vipFor('one').ipv4, a.vipFor('two').ipv4]);
    expect(got).toEqual(new Set(['10.9.9.1', '10.9.9.2']));
    expect(() => a.vipFor('three')).toThrow(VipRangeError);
    expect(() => a.vipFor('three')).toThrow(
      /VIP range 10\.9\.9\.0\/30 is full \(2 addresses, all taken\).*"three"/,
    );
    a.sync(['one', 'three']);
    expect(a.nameFor(a.vipFor('three').ipv4)).toBe('three');
    expect(a.entries().map((e) => e.name)).toEqual(['one', 'three']);
    expect(a.nameFor(a.vipFor('one').ipv6)).toBe('one');
  });

  test('a failed allocation leaves no half-allocated name behind', () => {
    // IPv6 /127 has one usable address, IPv4 /30 two: the second name fails on IPv6.
    const a = createVipAllocator({ ipv4Cidr: '10.9.9.0/30', ipv6Cidr: '2001:db8::/127' });
    a.vipFor('one');
    expect(() => a.vipFor('two')).toThrow(/VIP range 2001:db8::\/127 is full/);
    expect(a.entries().map((e) => e.name)).toEqual(['one']);
    expect(a.nameFor('10.9.9.1') ?? a.nameFor('10.9.9.2')).toBe('one');
  });

  test('configurable ranges are validated with clear errors', () => {
    const a = createVipAllocator({ ipv4Cidr: '198.18.0.0/15', ipv6Cidr: '2001:db8:ff::/48' });
    expect(a.ipv4Cidr).toBe('198.18.0.0/15');
    expect(a.vipFor('x').ipv4).toMatch(/^198\.1[89]\./);
    expect(a.vipFor('x').ipv6.startsWith('2001:db8:ff:')).toBe(true);
    expect(() => createVipAllocator({ ipv4Cidr: '2001:db8::/64' })).toThrow(
      /VIP IPv4 range: "2001:db8::\/64" is not an IPv4 CIDR/,
    );
    expect(() => createVipAllocator({ ipv6Cidr: '240.240.0.0/16' })).toThrow(
      /VIP IPv6 range: .* is not an IPv6 CIDR/,
    );
    expect(() => createVipAllocator({ ipv4Cidr: '240.240.0.0/31' })).toThrow(/too small \(at most \/30/);
    expect(() => createVipAllocator({ ipv6Cidr: '2001:db8::1/128' })).toThrow(/too small \(at most \/127/);
    expect(() => createVipAllocator({ ipv4Cidr: '240.240.0.1/16' })).toThrow(VipRangeError);
    expect(() => createVipAllocator({ ipv4Cidr: '240.240.0.1/16' })).toThrow(
      /did you mean 240\.240\.0\.0\/16/,
    );
    expect(() => createVipAllocator().vipFor('.')).toThrow(/empty name/);
  });

  test('/25 ranges skip the network and broadcast address only', () => {
    const a = createVipAllocator({ ipv4Cidr: '10.0.0.128/25' });
    const names = Array.from({ length: 126 }, (_, i) => `h${i}`);
    a.sync(names);
    const last = names.map((n) => Number(a.vipFor(n).ipv4.split('.')[3])).sort((x, y) => x - y);
    expect(last[0]).toBe(129);
    expect(last.at(-1)).toBe(254);
    expect(() => a.vipFor('one-too-many')).toThrow(/is full/);
  });
});

import { describe, expect, test, afterAll } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../init/config/load.js';
import { envName, FIELDS } from '../../init/config/fields.js';
import { parseCidr, parseUidPortExclusion } from '../../init/config/values.js';

const dir = mkdtempSync(join(tmpdir(), 'detour-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function yamlFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('transparent-proxy config precedence: defaults < files < env < flags', () => {
  test('defaults', () => {
    const c = loadConfig({});
    expect(c.redirect.outbound.port).toBe(15001);
    expect(c.redirect.inbound).toMatchObject({ enabled: true, port: 15006 });
    expect(c.redirect.dns).toMatchObject({ enabled: false, captureAll: false, port: 15053 });
    expect(c.dataplaneUser).toBe('5678');
    expect(c.ipFamilyMode).toBe('dualstack');
    expect(c.backend).toBe('auto');
  });

  test('later files win over earlier ones; env over files; flags over env', () => {
    const a = yamlFile(
      'a.yaml',
      'redirect:\n  outbound:\n    port: 16001\n    excludePorts: [22]\n  inbound:\n    port: 16006\n',
    );
    const b = yamlFile('b.yaml', 'redirect:\n  outbound:\n    port: 17001\n');
    const env = {
      [envName('redirect.inbound.port')]: '18006',
      [envName('redirect.outbound.excludeIPs')]: '10.0.0.0/8,fd00::/8',
      [envName('dataplaneUser')]: '1234',
    };
    const c = loadConfig({ files: [a, b], env, flags: { dataplaneUser: '4321' } });
    expect(c.redirect.outbound.port).toBe(17001);
    expect(c.redirect.outbound.excludePorts).toEqual([{ from: 22, to: 22 }]);
    expect(c.redirect.inbound.port).toBe(18006);
    expect(c.redirect.outbound.excludeIPs.map((x) => x.cidr)).toEqual(['10.0.0.0/8', 'fd00::/8']);
    expect(c.dataplaneUser).toBe('4321');
  });

  test('every field has an env var named after its path', () => {
    expect(envName('redirect.outbound.excludePortsForUIDs')).toBe(
      'DETOUR_TRANSPARENT_PROXY_REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_UIDS',
    );
    expect(envName('redirect.dns.skipConntrackZoneSplit')).toBe(
      'DETOUR_TRANSPARENT_PROXY_REDIRECT_DNS_SKIP_CONNTRACK_ZONE_SPLIT',
    );
    const names = FIELDS.map((f) => envName(f.path));
    expect(new Set(names).size).toBe(names.length);
  });
});

describe('bad input names the source and the field', () => {
  test.each([
    [{ 'redirect.outbound.port': '70000' }, /^--redirect-outbound-port: "70000" is not a port/],
    [
      { 'redirect.outbound.excludeIPs': '10.0.0.300/8' },
      /^--exclude-outbound-ips: "10.0.0.300\/8" is not an IPv4 or IPv6/,
    ],
    [{ 'redirect.outbound.excludeIPs': '10.0.0.0/33' }, /invalid prefix length/],
    [{ 'redirect.outbound.excludePortsForUIDs': 'icmp:22:1000' }, /protocol "icmp" must be tcp, udp or \*/],
    [{ 'redirect.outbound.excludePortsForUIDs': 'tcp:22:abc' }, /not a UID or UID range/],
    [{ 'redirect.outbound.excludePorts': '100-50' }, /empty port range/],
    [
      { ipFamilyMode: 'ipv6' },
      /^--ip-family-mode: "ipv6" is not a valid IP family mode: use dualstack \| ipv4/,
    ],
    [{ backend: 'pf' }, /^--backend: "pf" is not a valid backend/],
    [{ 'redirect.dns.enabled': 'maybe' }, /^--redirect-dns: "maybe" is not a boolean/],
    [
      { 'redirect.dns.enabled': true, 'redirect.dns.captureAll': true },
      /--redirect-dns and --redirect-all-dns-traffic are mutually exclusive/,
    ],
    [{ 'redirect.inbound.port': '15001' }, /redirect.outbound.port and redirect.inbound.port are both 15001/],
  ])('flags %j', (flags, message) => {
    expect(() => loadConfig({ flags })).toThrow(message);
    try {
      loadConfig({ flags });
    } catch (error) {
      expect((error as { exitCode: number }).exitCode).toBe(2);
    }
  });

  test('env var errors name the variable', () => {
    expect(() => loadConfig({ env: { DETOUR_TRANSPARENT_PROXY_REDIRECT_OUTBOUND_PORT: 'x' } })).toThrow(
      /^DETOUR_TRANSPARENT_PROXY_REDIRECT_OUTBOUND_PORT: "x" is not a port/,
    );
  });

  test('file errors name the file and the field path', () => {
    const bad = yamlFile('bad.yaml', 'redirect:\n  outbound:\n    port: 0\n');
    expect(() => loadConfig({ files: [bad] })).toThrow(`${bad}: redirect.outbound.port: "0" is not a port`);
    const unknown = yamlFile('unknown.yaml', 'redirect:\n  outbound:\n    prot: 1\n');
    expect(() => loadConfig({ files: [unknown] })).toThrow(
      /unknown field "redirect.outbound.prot"; known fields here: redirect.outbound.port/,
    );
    const broken = yamlFile('broken.yaml', 'redirect: [\n');
    expect(() => loadConfig({ files: [broken] })).toThrow(/broken.yaml: invalid YAML/);
    expect(() => loadConfig({ files: [join(dir, 'missing.yaml')] })).toThrow(
      /missing.yaml: cannot read config file: ENOENT/,
    );
  });
});

describe('value parsers', () => {
  test('CIDRs are normalised the way iptables-save prints them', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ family: 4, cidr: '10.0.0.0/8' });
    expect(parseCidr('192.0.2.7')).toEqual({ family: 4, cidr: '192.0.2.7/32' });
    expect(parseCidr('2001:DB8:0:0::1/32')).toEqual({ family: 6, cidr: '2001:db8::/32' });
    expect(parseCidr('fd00::1')).toEqual({ family: 6, cidr: 'fd00::1/128' });
    expect(() => parseCidr('fe80::1%eth0')).toThrow(/is not an IPv4 or IPv6 address or CIDR/);
  });

  test('[protocol:][ports:]uids', () => {
    expect(parseUidPortExclusion('1000')).toEqual({
      protocol: 'all',
      ports: [],
      uids: [{ from: 1000, to: 1000 }],
    });
    expect(parseUidPortExclusion('tcp:1000-1005')).toEqual({
      protocol: 'tcp',
      ports: [],
      uids: [{ from: 1000, to: 1005 }],
    });
    expect(parseUidPortExclusion('22,80-90:7')).toEqual({
      protocol: 'all',
      ports: [
        { from: 22, to: 22 },
        { from: 80, to: 90 },
      ],
      uids: [{ from: 7, to: 7 }],
    });
    expect(parseUidPortExclusion('udp:*:1,2').uids).toHaveLength(2);
  });
});

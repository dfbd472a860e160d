// Golden files of the generated rules for every backend. Refresh with `npm run golden`
// (UPDATE_GOLDEN=1) and review the diff.
import { describe, expect, test } from '@jest/globals';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../init/config/load.js';
import { buildRules, type HostFacts } from '../../init/rules/build.js';
import { desiredTables, reconcileText } from '../../init/rules/iptables.js';
import { renderTable } from '../../init/rules/nftables.js';

const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'golden');

const CASES: { name: string; flags: Record<string, unknown>; facts?: Partial<HostFacts> }[] = [
  { name: 'defaults', flags: {} },
  { name: 'dns-resolv-conf', flags: { 'redirect.dns.enabled': true } },
  { name: 'dns-all', flags: { 'redirect.dns.captureAll': true } },
  {
    name: 'dns-no-conntrack-split',
    flags: { 'redirect.dns.captureAll': true, 'redirect.dns.skipConntrackZoneSplit': true },
  },
  {
    name: 'exclusions',
    flags: {
      'redirect.outbound.excludePorts': '22,8000-8100',
      'redirect.outbound.excludeIPs': '10.0.0.0/8,192.168.1.7,fd00::/8',
      'redirect.outbound.excludePortsForUIDs': 'tcp:22:1000-1005;udp:53:1001,1002;2000',
      'redirect.inbound.excludePorts': '9901,15000-15010',
      'redirect.inbound.excludeIPs': '203.0.113.0/24,2001:db8:7::/48',
    },
  },
  { name: 'include-ports', flags: { 'redirect.outbound.includePorts': '80,443,8080-8090' } },
  {
    name: 'ipv4-only',
    flags: { ipFamilyMode: 'ipv4', 'redirect.dns.enabled': true },
    facts: { ipv6: false },
  },
  { name: 'inbound-off', flags: { 'redirect.inbound.enabled': false } },
  {
    name: 'many-flags',
    flags: {
      dataplaneUser: '1337',
      'redirect.outbound.port': 16001,
      'redirect.inbound.port': 16006,
      'redirect.dns.enabled': true,
      'redirect.dns.port': 16053,
      'redirect.outbound.excludePorts': '22',
      'redirect.outbound.excludeIPs': '10.0.0.0/8,fd00::/8',
      'redirect.outbound.excludePortsForUIDs': 'tcp:22:1000',
      dropInvalidPackets: true,
      'log.enabled': true,
      'log.level': 'debug',
    },
    facts: { dataplaneUid: 1337 },
  },
];

const FACTS: HostFacts = {
  ipv6: true,
  dataplaneUid: 5678,
  dnsServers: ['198.51.100.53', '2001:db8:2::53'],
  loopbackV6AddedByDetour: true,
};

function render(flags: Record<string, unknown>, facts: Partial<HostFacts> = {}): string {
  const config = loadConfig({ flags });
  const f = { ...FACTS, ...facts };
  const rules = buildRules(config, f);
  const sections = [
    `# iptables-restore --noflush (IPv4)\n${reconcileText(new Map(), desiredTables(rules, 4))}`,
    ...(f.ipv6
      ? [`# ip6tables-restore --noflush (IPv6)\n${reconcileText(new Map(), desiredTables(rules, 6))}`]
      : []),
    `# nft -f (native nftables)\n${renderTable(rules, f.ipv6)}`,
  ];
  return sections.join('\n');
}

describe('generated rules match the golden files', () => {
  for (const c of CASES) {
    test(c.name, () => {
      const file = join(GOLDEN_DIR, `${c.name}.rules`);
      const actual = render(c.flags, c.facts);
      if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) {
        if (process.env.CI === 'true' && !existsSync(file)) throw new Error(`missing golden file ${file}`);
        mkdirSync(GOLDEN_DIR, { recursive: true });
        writeFileSync(file, actual);
      }
      expect(actual).toBe(readFileSync(file, 'utf8'));
    });
  }

  test('every rule has a detour/ comment iptables and nft accept unchanged', () => {
    for (const c of CASES) {
      const rules = buildRules(loadConfig({ flags: c.flags }), { ...FACTS, ...c.facts });
      for (const rule of rules) {
        expect(rule.comment).toMatch(/^detour\/[a-z-]+: /);
        expect(rule.comment).not.toMatch(/["'\\]/);
        expect(rule.comment.length).toBeLessThanOrEqual(255);
      }
    }
  });

  test('the dataplane UID returns before any redirect in DETOUR_OUTBOUND', () => {
    const rules = buildRules(loadConfig({ flags: { 'redirect.dns.captureAll': true } }), FACTS);
    const outbound = rules.filter((r) => r.chain === 'DETOUR_OUTBOUND');
    expect(outbound[0]!.match.uidOwner).toEqual({ from: 5678, to: 5678 });
    expect(outbound[0]!.target.kind).toBe('return');
  });
});

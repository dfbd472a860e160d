// config + facts about the host → the ordered list of rules. A pure function: the golden files in
// test/golden/ are its output rendered by each backend.
import type { TransparentProxyConfig } from '../config/schema.js';
import type { Cidr, PortRange } from '../config/values.js';
import {
  ADDED_LOOPBACK_MARK,
  CHAINS,
  INBOUND_PASSTHROUGH_V4,
  INBOUND_PASSTHROUGH_V6,
  type Family,
  type Rule,
} from './model.js';

export interface HostFacts {
  /** IPv6 rules are built (ipFamilyMode dualstack and the host has working IPv6) */
  ipv6: boolean;
  dataplaneUid: number;
  /** nameservers of resolv.conf (for --redirect-dns) */
  dnsServers: string[];
  /** install adds ::6/128 to lo for the IPv6 inbound passthrough (or an earlier install did) */
  loopbackV6AddedByDetour: boolean;
}

const portsText = (ports: PortRange[]) =>
  ports.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`)).join(',');

const familyOf = (address: string): Family => (address.includes(':') ? 6 : 4);

function dnsRules(config: TransparentProxyConfig, facts: HostFacts): Rule[] {
  const dns = config.redirect.dns;
  if (!dns.enabled && !dns.captureAll) return [];
  const uid = facts.dataplaneUid;
  const servers = dns.captureAll
    ? [undefined]
    : facts.dnsServers.filter((s) => familyOf(s) === 4 || facts.ipv6);
  const rules: Rule[] = [];
  for (const server of servers) {
    const to = server ? `to nameserver ${server}` : 'to any server';
    const family = server ? familyOf(server) : undefined;
    for (const protocol of ['udp', 'tcp'] as const) {
      rules.push({
        table: 'nat',
        chain: CHAINS.outbound,
        family,
        match: { destination: server, protocol, destinationPort: 53 },
        target: { kind: 'redirect', port: dns.port },
        comment: `detour/outbound: DNS over ${protocol.toUpperCase()} ${to} goes to the dataplane DNS port ${dns.port}`,
      });
    }
  }
  if (dns.skipConntrackZoneSplit) return rules;
  // Separate conntrack zones for the app's queries (zone 2) and the dataplane's own upstream
  // queries (zone 1), so a reply is never matched to the other flow's NAT entry.
  for (const server of servers) {
    const family = server ? familyOf(server) : undefined;
    const at = server ? ` to ${server}` : '';
    rules.push(
      {
        table: 'raw',
        chain: 'OUTPUT',
        family,
        match: {
          destination: server,
          protocol: 'udp',
          destinationPort: 53,
          uidOwner: { from: uid, to: uid },
        },
        target: { kind: 'ct-zone', zone: 1 },
        comment: `detour/dns-conntrack: upstream DNS queries of the dataplane${at} use zone 1`,
      },
      {
        table: 'raw',
        chain: 'OUTPUT',
        family,
        match: { destination: server, protocol: 'udp', destinationPort: 53, notUidOwner: uid },
        target: { kind: 'ct-zone', zone: 2 },
        comment: `detour/dns-conntrack: DNS queries of the app${at} use zone 2`,
      },
      {
        table: 'raw',
        chain: 'PREROUTING',
        family,
        match: { source: server, protocol: 'udp', sourcePort: 53 },
        target: { kind: 'ct-zone', zone: 1 },
        comment: `detour/dns-conntrack: DNS answers${server ? ` from ${server}` : ''} use zone 1`,
      },
    );
  }
  rules.push({
    table: 'raw',
    chain: 'OUTPUT',
    match: { protocol: 'udp', sourcePort: dns.port, uidOwner: { from: uid, to: uid } },
    target: { kind: 'ct-zone', zone: 2 },
    comment: `detour/dns-conntrack: replies of the dataplane DNS server to the app use zone 2`,
  });
  return rules;
}

function logRule(config: TransparentProxyConfig, chain: Rule['chain'], prefix: string): Rule[] {
  if (!config.log.enabled) return [];
  return [
    {
      table: 'nat',
      chain,
      match: { protocol: 'tcp' },
      target: { kind: 'log', prefix, level: config.log.level },
      comment: `detour/log: log TCP connections entering ${chain}`,
    },
  ];
}

function exclusionByAddress(
  cidrs: Cidr[],
  ipv6: boolean,
  side: 'source' | 'destination',
  chain: Rule['chain'],
) {
  return cidrs
    .filter((c) => c.family === 4 || ipv6)
    .map((c): Rule => ({
      table: 'nat',
      chain,
      family: c.family,
      match: side === 'source' ? { source: c.cidr } : { destination: c.cidr },
      target: { kind: 'return' },
      comment: `detour/${chain === CHAINS.inbound ? 'inbound' : 'outbound'}: excluded ${side} ${c.cidr} is not redirected`,
    }));
}

function inboundRules(config: TransparentProxyConfig, facts: HostFacts): Rule[] {
  const inbound = config.redirect.inbound;
  if (!inbound.enabled) return [];
  const rules: Rule[] = [
    {
      table: 'nat',
      chain: 'PREROUTING',
      match: { protocol: 'tcp' },
      target: { kind: 'jump', chain: CHAINS.inbound },
      comment: 'detour/hook: inbound TCP enters DETOUR_INBOUND',
    },
  ];
  if (inbound.excludePorts.length > 0) {
    rules.push({
      table: 'nat',
      chain: CHAINS.inbound,
      match: { protocol: 'tcp', destinationPorts: inbound.excludePorts },
      target: { kind: 'return' },
      comment: `detour/inbound: excluded inbound ports ${portsText(inbound.excludePorts)} are not redirected`,
    });
  }
  rules.push(...exclusionByAddress(inbound.excludeIPs, facts.ipv6, 'source', CHAINS.inbound));
  rules.push(
    ...logRule(config, CHAINS.inbound, 'detour-inbound: '),
    {
      table: 'nat',
      chain: CHAINS.inbound,
      match: { protocol: 'tcp' },
      target: { kind: 'jump', chain: CHAINS.inboundRedirect },
      comment: 'detour/inbound: all other inbound TCP is redirected',
    },
    {
      table: 'nat',
      chain: CHAINS.inboundRedirect,
      match: { protocol: 'tcp' },
      target: { kind: 'redirect', port: inbound.port },
      comment: `detour/inbound-redirect: to the dataplane inbound port ${inbound.port}`,
    },
  );
  return rules;
}

function uidExclusions(config: TransparentProxyConfig): Rule[] {
  const rules: Rule[] = [];
  for (const exclusion of config.redirect.outbound.excludePortsForUIDs) {
    const protocols = exclusion.protocol === 'all' ? (['tcp', 'udp'] as const) : [exclusion.protocol];
    for (const uids of exclusion.uids) {
      const uidText = uids.from === uids.to ? `${uids.from}` : `${uids.from}-${uids.to}`;
      for (const protocol of protocols) {
        const ports = exclusion.ports.length > 0 ? ` to ports ${portsText(exclusion.ports)}` : '';
        rules.push({
          table: 'nat',
          chain: CHAINS.outbound,
          match: {
            protocol,
            destinationPorts: exclusion.ports.length > 0 ? exclusion.ports : undefined,
            uidOwner: uids,
          },
          target: { kind: 'return' },
          comment: `detour/outbound: ${protocol.toUpperCase()}${ports} of excluded UID ${uidText} is not redirected`,
        });
      }
    }
  }
  return rules;
}

function outboundRules(config: TransparentProxyConfig, facts: HostFacts): Rule[] {
  const outbound = config.redirect.outbound;
  const dnsCaptured = config.redirect.dns.enabled || config.redirect.dns.captureAll;
  const uid = facts.dataplaneUid;
  const rules: Rule[] = [
    {
      table: 'nat',
      chain: 'OUTPUT',
      match: { protocol: 'tcp' },
      target: { kind: 'jump', chain: CHAINS.outbound },
      comment: 'detour/hook: outbound TCP enters DETOUR_OUTBOUND',
    },
  ];
  if (dnsCaptured) {
    rules.push({
      table: 'nat',
      chain: 'OUTPUT',
      match: { protocol: 'udp', destinationPort: 53 },
      target: { kind: 'jump', chain: CHAINS.outbound },
      comment: 'detour/hook: outbound DNS over UDP enters DETOUR_OUTBOUND',
    });
  }
  rules.push({
    table: 'nat',
    chain: CHAINS.outbound,
    match: { uidOwner: { from: uid, to: uid } },
    target: { kind: 'return' },
    comment: `detour/outbound: traffic of the dataplane (UID ${uid}) is never redirected (loop breaker)`,
  });
  rules.push(...uidExclusions(config));
  rules.push(...dnsRules(config, facts).filter((r) => r.table === 'nat'));
  if (dnsCaptured) {
    rules.push({
      table: 'nat',
      chain: CHAINS.outbound,
      match: { protocol: 'udp' },
      target: { kind: 'return' },
      comment: 'detour/outbound: other UDP is not redirected',
    });
  }
  rules.push({
    table: 'nat',
    chain: CHAINS.outbound,
    family: 4,
    match: { source: `${INBOUND_PASSTHROUGH_V4}/32`, outInterface: 'lo' },
    target: { kind: 'return' },
    comment: `detour/outbound: inbound passthrough from ${INBOUND_PASSTHROUGH_V4} is not redirected`,
  });
  if (facts.ipv6) {
    const added = facts.loopbackV6AddedByDetour ? ` (${ADDED_LOOPBACK_MARK})` : '';
    rules.push({
      table: 'nat',
      chain: CHAINS.outbound,
      family: 6,
      match: { source: `${INBOUND_PASSTHROUGH_V6}/128`, outInterface: 'lo' },
      target: { kind: 'return' },
      comment: `detour/outbound: inbound passthrough from ${INBOUND_PASSTHROUGH_V6} is not redirected${added}`,
    });
  }
  rules.push({
    table: 'nat',
    chain: CHAINS.outbound,
    match: { outInterface: 'lo' },
    target: { kind: 'return' },
    comment: 'detour/outbound: traffic to local addresses (via lo) is not redirected',
  });
  rules.push(...exclusionByAddress(outbound.excludeIPs, facts.ipv6, 'destination', CHAINS.outbound));
  if (outbound.excludePorts.length > 0) {
    rules.push({
      table: 'nat',
      chain: CHAINS.outbound,
      match: { protocol: 'tcp', destinationPorts: outbound.excludePorts },
      target: { kind: 'return' },
      comment: `detour/outbound: excluded outbound ports ${portsText(outbound.excludePorts)} are not redirected`,
    });
  }
  rules.push(...logRule(config, CHAINS.outbound, 'detour-outbound: '));
  if (outbound.includePorts.length > 0) {
    rules.push({
      table: 'nat',
      chain: CHAINS.outbound,
      match: { protocol: 'tcp', destinationPorts: outbound.includePorts },
      target: { kind: 'jump', chain: CHAINS.outboundRedirect },
      comment: `detour/outbound: only included ports ${portsText(outbound.includePorts)} are redirected`,
    });
  } else {
    rules.push({
      table: 'nat',
      chain: CHAINS.outbound,
      match: { protocol: 'tcp' },
      target: { kind: 'jump', chain: CHAINS.outboundRedirect },
      comment: 'detour/outbound: all other outbound TCP is redirected',
    });
  }
  rules.push({
    table: 'nat',
    chain: CHAINS.outboundRedirect,
    match: { protocol: 'tcp' },
    target: { kind: 'redirect', port: outbound.port },
    comment: `detour/outbound-redirect: to the dataplane outbound port ${outbound.port}`,
  });
  return rules;
}

export function buildRules(config: TransparentProxyConfig, facts: HostFacts): Rule[] {
  const rules: Rule[] = [...inboundRules(config, facts), ...outboundRules(config, facts)];
  rules.push(...dnsRules(config, facts).filter((r) => r.table === 'raw'));
  if (config.dropInvalidPackets) {
    rules.push({
      table: 'mangle',
      chain: 'PREROUTING',
      match: { ctStateInvalid: true },
      target: { kind: 'drop' },
      comment: 'detour/invalid: packets conntrack marks INVALID are dropped',
    });
  }
  return rules;
}

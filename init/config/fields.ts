// The transparent-proxy config schema: every field once, with its YAML path, its flag, its
// environment variable (DETOUR_TRANSPARENT_PROXY_ + the path in upper snake case), its default and
// its parser. Flags, env vars, YAML files and the docs are all generated from this table.
import {
  parseBoolean,
  parseCidrList,
  parseDuration,
  parseNonNegativeInt,
  parsePort,
  parsePortList,
  parseUidPortExclusions,
  parseUser,
} from './values.js';

export type FieldKind =
  | 'port'
  | 'ports'
  | 'cidrs'
  | 'uidPorts'
  | 'boolean'
  | 'user'
  | 'int'
  | 'duration'
  | 'path'
  | 'ipFamily'
  | 'backend'
  | 'logLevel';

export interface Field {
  /** dotted path in the YAML config */
  path: string;
  kind: FieldKind;
  default: unknown;
  /** long flag without leading dashes; `aliases` are accepted too (Kuma's names) */
  flag?: string;
  aliases?: string[];
  description: string;
}

export const BACKENDS = ['auto', 'iptables-legacy', 'iptables-nft', 'nftables'] as const;
export const IP_FAMILY_MODES = ['dualstack', 'ipv4'] as const;
export const LOG_LEVELS = ['emerg', 'alert', 'crit', 'error', 'warning', 'notice', 'info', 'debug'] as const;

function oneOf<T extends string>(allowed: readonly T[], what: string) {
  return (value: unknown): T => {
    const text = String(value).trim() as T;
    if (!allowed.includes(text))
      throw new Error(`"${text}" is not a valid ${what}: use ${allowed.join(' | ')}`);
    return text;
  };
}

export const PARSERS: Record<FieldKind, (value: unknown) => unknown> = {
  port: parsePort,
  ports: parsePortList,
  cidrs: parseCidrList,
  uidPorts: parseUidPortExclusions,
  boolean: parseBoolean,
  user: parseUser,
  int: (v) => parseNonNegativeInt(v, 'number'),
  duration: parseDuration,
  path: (v) => {
    const text = String(v).trim();
    if (!text) throw new Error('must not be empty');
    return text;
  },
  ipFamily: oneOf(IP_FAMILY_MODES, 'IP family mode'),
  backend: oneOf(BACKENDS, 'backend'),
  logLevel: oneOf(LOG_LEVELS, 'log level'),
};

export const FIELDS: Field[] = [
  {
    path: 'dataplaneUser',
    kind: 'user',
    default: '5678',
    flag: 'dataplane-user',
    aliases: ['kuma-dp-user', 'kuma-dp-uid', 'dataplane-uid'],
    description: 'user name or UID the dataplane runs as; its traffic is never redirected (the loop breaker)',
  },
  {
    path: 'ipFamilyMode',
    kind: 'ipFamily',
    default: 'dualstack',
    flag: 'ip-family-mode',
    description: 'dualstack (IPv6 rules too, where the host has IPv6) or ipv4',
  },
  {
    path: 'backend',
    kind: 'backend',
    default: 'auto',
    flag: 'backend',
    description:
      'auto (the iptables flavour that already has rules, else iptables-nft) | iptables-legacy | iptables-nft | nftables',
  },
  {
    path: 'redirect.outbound.port',
    kind: 'port',
    default: 15001,
    flag: 'redirect-outbound-port',
    description: 'port the dataplane listens on for redirected outbound TCP',
  },
  {
    path: 'redirect.outbound.excludePorts',
    kind: 'ports',
    default: [],
    flag: 'exclude-outbound-ports',
    description: 'outbound TCP destination ports never redirected (e.g. 22,8000-8100)',
  },
  {
    path: 'redirect.outbound.includePorts',
    kind: 'ports',
    default: [],
    flag: 'include-outbound-ports',
    description: 'when set, only outbound TCP to these ports is redirected',
  },
  {
    path: 'redirect.outbound.excludeIPs',
    kind: 'cidrs',
    default: [],
    flag: 'exclude-outbound-ips',
    description: 'destination addresses/CIDRs (IPv4 and IPv6) never redirected',
  },
  {
    path: 'redirect.outbound.excludePortsForUIDs',
    kind: 'uidPorts',
    default: [],
    flag: 'exclude-outbound-ports-for-uids',
    description: 'traffic of these UIDs is not redirected: [protocol:][ports:]uids, e.g. tcp:22:1000-1005',
  },
  {
    path: 'redirect.inbound.enabled',
    kind: 'boolean',
    default: true,
    flag: 'redirect-inbound',
    description: 'redirect inbound TCP to the inbound port',
  },
  {
    path: 'redirect.inbound.port',
    kind: 'port',
    default: 15006,
    flag: 'redirect-inbound-port',
    description: 'port the dataplane listens on for redirected inbound TCP',
  },
  {
    path: 'redirect.inbound.excludePorts',
    kind: 'ports',
    default: [],
    flag: 'exclude-inbound-ports',
    description: 'inbound TCP destination ports never redirected',
  },
  {
    path: 'redirect.inbound.excludeIPs',
    kind: 'cidrs',
    default: [],
    flag: 'exclude-inbound-ips',
    description: 'source addresses/CIDRs whose inbound traffic is never redirected',
  },
  {
    path: 'redirect.dns.enabled',
    kind: 'boolean',
    default: false,
    flag: 'redirect-dns',
    description: 'redirect DNS (UDP and TCP port 53) to the nameservers of resolv.conf to the DNS port',
  },
  {
    path: 'redirect.dns.captureAll',
    kind: 'boolean',
    default: false,
    flag: 'redirect-all-dns-traffic',
    description: 'redirect all DNS traffic (port 53, any server) to the DNS port',
  },
  {
    path: 'redirect.dns.port',
    kind: 'port',
    default: 15053,
    flag: 'redirect-dns-port',
    description: 'port the dataplane DNS server listens on',
  },
  {
    path: 'redirect.dns.skipConntrackZoneSplit',
    kind: 'boolean',
    default: false,
    flag: 'skip-dns-conntrack-zone-split',
    description: 'do not split DNS conntrack zones (only for kernels without the CT target)',
  },
  {
    path: 'redirect.dns.resolvConfPath',
    kind: 'path',
    default: '/etc/resolv.conf',
    flag: 'resolv-conf-path',
    description: 'resolv.conf whose nameservers --redirect-dns captures',
  },
  {
    path: 'dropInvalidPackets',
    kind: 'boolean',
    default: false,
    flag: 'drop-invalid-packets',
    description: 'drop packets conntrack marks INVALID (mangle PREROUTING)',
  },
  {
    path: 'log.enabled',
    kind: 'boolean',
    default: false,
    flag: 'iptables-logs',
    description: 'add LOG rules before each redirect (kernel log, prefix detour-…)',
  },
  {
    path: 'log.level',
    kind: 'logLevel',
    default: 'warning',
    flag: 'iptables-log-level',
    description: 'syslog level of the LOG rules',
  },
  {
    path: 'wait',
    kind: 'int',
    default: 5,
    flag: 'wait',
    description: 'seconds to wait for the xtables lock (0: fail at once)',
  },
  {
    path: 'retry.maxRetries',
    kind: 'int',
    default: 4,
    flag: 'max-retries',
    description: 'how often a failed apply is retried',
  },
  {
    path: 'retry.sleepBetweenRetries',
    kind: 'duration',
    default: 2000,
    flag: 'sleep-between-retries',
    description: 'pause between retries (e.g. 2s, 500ms)',
  },
  {
    path: 'dryRun',
    kind: 'boolean',
    default: false,
    flag: 'dry-run',
    description: 'print exactly what would be applied, change nothing',
  },
  { path: 'verbose', kind: 'boolean', default: false, flag: 'verbose', description: 'print what is done' },
  {
    path: 'validate',
    kind: 'boolean',
    default: false,
    flag: 'validate',
    description: 'after install, prove that a connection really lands on the outbound port',
  },
];

/** DETOUR_TRANSPARENT_PROXY_REDIRECT_OUTBOUND_EXCLUDE_PORTS_FOR_UIDS, etc. */
export function envName(path: string): string {
  const snake = path
    .split('.')
    .map((part) =>
      part
        .replace(/IPs/g, 'Ips')
        .replace(/UIDs/g, 'Uids')
        .replace(/([a-z0-9])([A-Z])/g, '$1_$2'),
    )
    .join('_')
    .toUpperCase();
  return `DETOUR_TRANSPARENT_PROXY_${snake}`;
}

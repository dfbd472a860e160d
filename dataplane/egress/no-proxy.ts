// NO_PROXY: which targets bypass the corporate proxy. Pure. Entries (comma or whitespace separated
// in the environment variable, a list in the config):
//   *                     every target
//   example.com           example.com and every subdomain (host names ignore case, a trailing dot too)
//   .example.com          the same (curl's rule; `*.example.com` too)
//   example.com:8443      only that port (any entry may carry a port)
//   192.0.2.7, ::1        that address (`[::1]:443` with a port)
//   10.0.0.0/8, fd00::/8  addresses in the range (host bits are ignored, as curl does)
// Host names are not resolved: a name never matches an address entry and an address never a name.
import { parseIPv4, parseIPv6 } from '../../dns/ip.js';

type Rule =
  | { kind: 'all' }
  | { kind: 'domain'; domain: string; port?: number }
  | { kind: 'range'; family: 4 | 6; base: bigint; prefix: number; port?: number };

export interface NoProxy {
  /** true: connect to host:port directly */
  matches(host: string, port: number): boolean;
  /** the entries as given (for /config) */
  readonly entries: readonly string[];
}

export interface NoProxyParse {
  noProxy: NoProxy;
  /** entries that were not understood (skipped): `"<entry>": why` */
  problems: string[];
}

function address(text: string): { family: 4 | 6; value: bigint } | undefined {
  const v4 = parseIPv4(text);
  if (v4 !== undefined) return { family: 4, value: BigInt(v4) };
  const v6 = parseIPv6(text);
  if (v6 === undefined) return undefined;
  // ::ffff:a.b.c.d is the IPv4 address for matching purposes
  if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffffffffn };
  return { family: 6, value: v6 };
}

function normalizeHost(host: string): string {
  return host
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
    .toLowerCase();
}

function parsePort(text: string): number | undefined {
  const n = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  return n >= 1 && n <= 65535 ? n : undefined;
}

function parseEntry(entry: string): Rule | string {
  if (entry === '*') return { kind: 'all' };
  let hostPart = entry;
  let port: number | undefined;
  // [v6]:port, [v6], host:port; a bare IPv6 address (several colons) has no port
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracket) {
    hostPart = bracket[1]!;
    if (bracket[2] !== undefined) {
      port = parsePort(bracket[2]);
      if (port === undefined) return 'port must be 1-65535';
    }
  } else if ((entry.match(/:/g) ?? []).length === 1) {
    const [h, p] = entry.split(':') as [string, string];
    hostPart = h;
    port = parsePort(p);
    if (port === undefined) return 'port must be 1-65535';
  }
  const withPort = port === undefined ? {} : { port };
  const slash = hostPart.indexOf('/');
  if (slash >= 0) {
    const base = address(hostPart.slice(0, slash));
    const prefixText = hostPart.slice(slash + 1);
    if (!base) return 'not an IPv4 or IPv6 range';
    const bits = base.family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return `prefix must be 0-${bits}`;
    const prefix = Number(prefixText);
    const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
    return { kind: 'range', family: base.family, base: base.value & mask, prefix, ...withPort };
  }
  const ip = address(hostPart);
  if (ip)
    return {
      kind: 'range',
      family: ip.family,
      base: ip.value,
      prefix: ip.family === 4 ? 32 : 128,
      ...withPort,
    };
  const domain = normalizeHost(hostPart.replace(/^\*?\./, ''));
  if (domain === '' || !/^[a-z0-9_.-]+$/.test(domain)) return 'not a host name, address or range';
  return { kind: 'domain', domain, ...withPort };
}

function ruleMatches(rule: Rule, host: string, ip: ReturnType<typeof address>, port: number): boolean {
  if (rule.kind === 'all') return true;
  if (rule.port !== undefined && rule.port !== port) return false;
  if (rule.kind === 'domain') return !ip && (host === rule.domain || host.endsWith(`.${rule.domain}`));
  if (!ip || ip.family !== rule.family) return false;
  const bits = rule.family === 4 ? 32 : 128;
  return ip.value >> BigInt(bits - rule.prefix) === rule.base >> BigInt(bits - rule.prefix);
}

/** Splits the environment variable's text: commas and/or whitespace. */
export function splitNoProxy(text: string): string[] {
  return text
    .split(/[,\s]+/)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function parseNoProxy(entries: readonly string[]): NoProxyParse {
  const rules: Rule[] = [];
  const problems: string[] = [];
  const kept: string[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === '') continue;
    const rule = parseEntry(entry);
    if (typeof rule === 'string') problems.push(`"${entry}": ${rule}`);
    else {
      rules.push(rule);
      kept.push(entry);
    }
  }
  return {
    noProxy: {
      entries: kept,
      matches(host, port) {
        if (rules.length === 0) return false;
        const h = normalizeHost(host);
        const ip = address(h);
        return rules.some((rule) => ruleMatches(rule, h, ip, port));
      },
    },
    problems,
  };
}

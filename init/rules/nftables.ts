// Rules → one native nftables table (`table inet detour`), applied as a single `nft -f`
// transaction that replaces the whole table; and the fingerprint of an installed table, read from
// `nft -j list table inet detour`, for verification.
import { createHash } from 'node:crypto';
import type { PortRange } from '../config/values.js';
import { isOwnChain, type Match, type Rule, type Target } from './model.js';

export const NFT_TABLE = 'detour';

const BASE_CHAINS: Record<string, { name: string; spec: string }> = {
  'nat|PREROUTING': {
    name: 'nat_prerouting',
    spec: 'type nat hook prerouting priority dstnat; policy accept;',
  },
  'nat|OUTPUT': { name: 'nat_output', spec: 'type nat hook output priority -100; policy accept;' },
  'raw|PREROUTING': {
    name: 'raw_prerouting',
    spec: 'type filter hook prerouting priority raw; policy accept;',
  },
  'raw|OUTPUT': { name: 'raw_output', spec: 'type filter hook output priority raw; policy accept;' },
  'mangle|PREROUTING': {
    name: 'mangle_prerouting',
    spec: 'type filter hook prerouting priority mangle; policy accept;',
  },
};

const NFT_LOG_LEVELS: Record<string, string> = { error: 'err', warning: 'warn' };

export function nftChainName(rule: Pick<Rule, 'table' | 'chain'>): string {
  return isOwnChain(rule.chain) ? rule.chain : BASE_CHAINS[`${rule.table}|${rule.chain}`]!.name;
}

const portSet = (list: PortRange[]) => {
  const items = list.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`));
  return items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`;
};

const ipKeyword = (address: string) => (address.includes(':') ? 'ip6' : 'ip');

function matchText(match: Match, ipv4Only: boolean): string[] {
  const parts: string[] = [];
  if (ipv4Only && !match.source && !match.destination) parts.push('meta nfproto ipv4');
  if (match.source) parts.push(`${ipKeyword(match.source)} saddr ${match.source}`);
  if (match.destination) parts.push(`${ipKeyword(match.destination)} daddr ${match.destination}`);
  if (match.outInterface) parts.push(`oifname "${match.outInterface}"`);
  const hasPorts =
    match.sourcePort !== undefined ||
    match.destinationPort !== undefined ||
    match.destinationPorts !== undefined;
  if (match.protocol && !hasPorts) parts.push(`meta l4proto ${match.protocol}`);
  if (match.protocol && match.sourcePort !== undefined)
    parts.push(`${match.protocol} sport ${match.sourcePort}`);
  if (match.protocol && match.destinationPort !== undefined) {
    parts.push(`${match.protocol} dport ${match.destinationPort}`);
  }
  if (match.protocol && match.destinationPorts)
    parts.push(`${match.protocol} dport ${portSet(match.destinationPorts)}`);
  if (match.uidOwner) {
    const { from, to } = match.uidOwner;
    parts.push(`meta skuid ${from === to ? from : `${from}-${to}`}`);
  }
  if (match.notUidOwner !== undefined) parts.push(`meta skuid != ${match.notUidOwner}`);
  if (match.ctStateInvalid) parts.push('ct state invalid');
  return parts;
}

function targetText(target: Target): string {
  switch (target.kind) {
    case 'jump':
      return `jump ${target.chain}`;
    case 'return':
      return 'return';
    case 'drop':
      return 'drop';
    case 'redirect':
      return `redirect to :${target.port}`;
    case 'ct-zone':
      return `ct zone set ${target.zone}`;
    case 'log':
      return `log prefix "${target.prefix}" level ${NFT_LOG_LEVELS[target.level] ?? target.level}`;
  }
}

/** The table's rules; `ipv6: false` restricts rules without an address to IPv4 (ipFamilyMode ipv4). */
export function renderTable(rules: Rule[], ipv6: boolean): string {
  const chains = new Map<string, string[]>();
  const selected = rules.filter((r) => ipv6 || r.family !== 6);
  for (const rule of selected) {
    const line = [...matchText(rule.match, !ipv6), targetText(rule.target), `comment "${rule.comment}"`].join(
      ' ',
    );
    const name = nftChainName(rule);
    chains.set(name, [...(chains.get(name) ?? []), line]);
    if (rule.target.kind === 'jump' && !chains.has(rule.target.chain)) chains.set(rule.target.chain, []);
  }
  const specs = new Map(Object.values(BASE_CHAINS).map((b) => [b.name, b.spec]));
  const body = [...chains.entries()].map(([name, lines]) => {
    const spec = specs.get(name);
    return [
      `\tchain ${name} {`,
      ...(spec ? [`\t\t${spec}`] : []),
      ...lines.map((l) => `\t\t${l}`),
      '\t}',
    ].join('\n');
  });
  const content = body.join('\n');
  // The table comment carries a digest of its content: re-running install with the same config sees
  // it and changes nothing.
  return `table inet ${NFT_TABLE} {\n\tcomment "${contentMark(content)}"\n${content}\n}\n`;
}

export function contentMark(content: string): string {
  return `managed by detour; content ${createHash('sha256').update(content).digest('hex').slice(0, 16)}`;
}

export function tableMark(script: string): string | undefined {
  return /comment "(managed by detour; content [0-9a-f]+)"/.exec(script)?.[1];
}

/** One transaction: create-if-missing, delete, recreate — so re-running install converges. */
export function replaceTableScript(rules: Rule[], ipv6: boolean): string {
  return `table inet ${NFT_TABLE}\ndelete table inet ${NFT_TABLE}\n${renderTable(rules, ipv6)}`;
}

export function desiredFingerprint(rules: Rule[], ipv6: boolean): string[] {
  return rules.filter((r) => ipv6 || r.family !== 6).map((r) => `${nftChainName(r)}|${r.comment}`);
}

interface NftJsonRule {
  rule?: { table: string; family: string; chain: string; comment?: string };
}

/** `chain|comment` of every rule in `nft -j list table inet detour`, in chain order. */
export function installedFingerprint(json: string, desiredOrder: string[]): string[] {
  const items = (JSON.parse(json) as { nftables: NftJsonRule[] }).nftables;
  const lines = items
    .map((item) => item.rule)
    .filter((r): r is NonNullable<NftJsonRule['rule']> => !!r && r.table === NFT_TABLE && r.family === 'inet')
    .map((r) => `${r.chain}|${r.comment ?? ''}`);
  return orderByChain(lines, desiredOrder);
}

/** Rules keep their order within a chain; chains are put in the order they first appear in `order`. */
export function orderByChain(lines: string[], order: string[]): string[] {
  const chainOf = (l: string) => l.split('|')[0]!;
  const rank = (l: string) => {
    const i = order.findIndex((o) => chainOf(o) === chainOf(l));
    return i < 0 ? order.length : i;
  };
  return [...lines].sort((a, b) => rank(a) - rank(b));
}

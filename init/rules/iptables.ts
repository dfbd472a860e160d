// Rules → iptables-restore text, and the pure half of reconciling: read what `iptables-save` shows
// of detour, and write the one restore transaction per table that turns it into the desired state.
// Rule text is written the way iptables-save prints it back.
import type { PortRange } from '../config/values.js';
import { isOwnChain, type Family, type Match, type Rule, type Table, type Target } from './model.js';

const LOG_LEVEL_NUMBERS: Record<string, number> = {
  emerg: 0,
  alert: 1,
  crit: 2,
  error: 3,
  warning: 4,
  notice: 5,
  info: 6,
  debug: 7,
};

const TABLE_ORDER: Table[] = ['raw', 'mangle', 'nat'];

const ports = (list: PortRange[]) =>
  list.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}:${p.to}`)).join(',');

function matchText(match: Match): string[] {
  const parts: string[] = [];
  if (match.source) parts.push('-s', withPrefix(match.source));
  if (match.destination) parts.push('-d', withPrefix(match.destination));
  if (match.outInterface) parts.push('-o', match.outInterface);
  if (match.protocol) parts.push('-p', match.protocol);
  if (match.protocol && (match.sourcePort !== undefined || match.destinationPort !== undefined)) {
    parts.push('-m', match.protocol);
    if (match.sourcePort !== undefined) parts.push('--sport', `${match.sourcePort}`);
    if (match.destinationPort !== undefined) parts.push('--dport', `${match.destinationPort}`);
  }
  if (match.destinationPorts) parts.push('-m', 'multiport', '--dports', ports(match.destinationPorts));
  if (match.uidOwner) {
    const { from, to } = match.uidOwner;
    parts.push('-m', 'owner', '--uid-owner', from === to ? `${from}` : `${from}-${to}`);
  }
  if (match.notUidOwner !== undefined) parts.push('-m', 'owner', '!', '--uid-owner', `${match.notUidOwner}`);
  if (match.ctStateInvalid) parts.push('-m', 'conntrack', '--ctstate', 'INVALID');
  return parts;
}

function withPrefix(address: string): string {
  if (address.includes('/')) return address;
  return `${address}/${address.includes(':') ? 128 : 32}`;
}

function targetText(target: Target): string[] {
  switch (target.kind) {
    case 'jump':
      return ['-j', target.chain];
    case 'return':
      return ['-j', 'RETURN'];
    case 'drop':
      return ['-j', 'DROP'];
    case 'redirect':
      return ['-j', 'REDIRECT', '--to-ports', `${target.port}`];
    case 'ct-zone':
      return ['-j', 'CT', '--zone', `${target.zone}`];
    case 'log': {
      const level = LOG_LEVEL_NUMBERS[target.level] ?? 4;
      return [
        '-j',
        'LOG',
        '--log-prefix',
        `"${target.prefix}"`,
        ...(level === 4 ? [] : ['--log-level', `${level}`]),
      ];
    }
  }
}

export function ruleLine(rule: Rule): string {
  return [
    '-A',
    rule.chain,
    ...matchText(rule.match),
    '-m',
    'comment',
    '--comment',
    `"${rule.comment}"`,
    ...targetText(rule.target),
  ].join(' ');
}

export function rulesForFamily(rules: Rule[], family: Family): Rule[] {
  return rules.filter((r) => r.family === undefined || r.family === family);
}

/** Desired state of one table: own chains (in order of first use) and every rule line in order. */
export interface TableState {
  ownChains: string[];
  /** `-A` lines of detour's rules in built-in chains (the hooks) */
  hookLines: string[];
  /** `-A` lines in detour's own chains */
  chainLines: string[];
}

export function desiredTables(rules: Rule[], family: Family): Map<Table, TableState> {
  const tables = new Map<Table, TableState>();
  for (const rule of rulesForFamily(rules, family)) {
    const state = tables.get(rule.table) ?? { ownChains: [], hookLines: [], chainLines: [] };
    tables.set(rule.table, state);
    const chains = [rule.chain, rule.target.kind === 'jump' ? rule.target.chain : undefined];
    for (const chain of chains) {
      if (chain && isOwnChain(chain) && !state.ownChains.includes(chain)) state.ownChains.push(chain);
    }
    (isOwnChain(rule.chain) ? state.chainLines : state.hookLines).push(ruleLine(rule));
  }
  return tables;
}

/** What iptables-save shows of detour, per table. */
export function parseSave(text: string): Map<string, TableState> {
  const tables = new Map<string, TableState>();
  let current: TableState | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      current = { ownChains: [], hookLines: [], chainLines: [] };
      tables.set(line.slice(1), current);
    } else if (!current) {
      continue;
    } else if (line.startsWith(':')) {
      const chain = line.slice(1).split(' ')[0]!;
      if (isOwnChain(chain)) current.ownChains.push(chain);
    } else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1]!;
      if (isOwnChain(chain)) current.chainLines.push(line);
      else if (/--comment "?detour\//.test(line)) current.hookLines.push(line);
    }
  }
  return tables;
}

export function tableHasDetourState(state: TableState): boolean {
  return state.ownChains.length > 0 || state.hookLines.length > 0;
}

export function hasDetourState(tables: Map<string, TableState>): boolean {
  return [...tables.values()].some(tableHasDetourState);
}

/**
 * One restore transaction per table that turns `current` into `desired` (an empty desired map
 * removes everything detour added). Applied with `iptables-restore --noflush`, which leaves every
 * other chain and rule alone; declaring an own chain flushes it.
 */
export function reconcileText(current: Map<string, TableState>, desired: Map<Table, TableState>): string {
  const names = new Set<string>([
    ...desired.keys(),
    ...[...current.entries()].filter(([, state]) => tableHasDetourState(state)).map(([t]) => t),
  ]);
  const ordered = [...names].sort(
    (a, b) => TABLE_ORDER.indexOf(a as Table) - TABLE_ORDER.indexOf(b as Table),
  );
  const out: string[] = [];
  for (const table of ordered) {
    const have = current.get(table) ?? { ownChains: [], hookLines: [], chainLines: [] };
    const want = desired.get(table as Table) ?? { ownChains: [], hookLines: [], chainLines: [] };
    out.push(`*${table}`);
    for (const chain of want.ownChains) out.push(`:${chain} - [0:0]`);
    for (const line of have.hookLines) out.push(line.replace(/^-A /, '-D '));
    const obsolete = have.ownChains.filter((c) => !want.ownChains.includes(c));
    for (const chain of obsolete) out.push(`-F ${chain}`);
    for (const chain of obsolete) out.push(`-X ${chain}`);
    out.push(...want.chainLines, ...want.hookLines, 'COMMIT');
  }
  return out.length ? out.join('\n') + '\n' : '';
}

const byChain = (lines: string[]) => {
  const chainOf = (l: string) => l.split(' ')[1]!;
  return [...lines].sort((a, b) => (chainOf(a) < chainOf(b) ? -1 : chainOf(a) > chainOf(b) ? 1 : 0));
};

/** The installed table already is the desired one, rule for rule (so install changes nothing). */
export function sameState(a: TableState | undefined, b: TableState | undefined): boolean {
  const x = a ?? { ownChains: [], hookLines: [], chainLines: [] };
  const y = b ?? { ownChains: [], hookLines: [], chainLines: [] };
  const eq = (p: string[], q: string[]) => p.length === q.length && p.every((v, i) => v === q[i]);
  return (
    eq([...x.ownChains].sort(), [...y.ownChains].sort()) &&
    eq(byChain(x.hookLines), byChain(y.hookLines)) &&
    eq(byChain(x.chainLines), byChain(y.chainLines))
  );
}

/** `chain|comment` of every detour rule, in order: what verification compares. */
export function fingerprint(tables: Map<string, TableState>): string[] {
  const lines: string[] = [];
  for (const table of TABLE_ORDER) {
    const state = tables.get(table);
    if (!state) continue;
    for (const line of [...state.chainLines, ...state.hookLines]) {
      const comment = /--comment "([^"]*)"/.exec(line)?.[1] ?? /--comment (\S+)/.exec(line)?.[1] ?? '';
      lines.push(`${table}|${line.split(' ')[1]}|${comment}`);
    }
  }
  const chainOf = (l: string) => l.split('|').slice(0, 2).join('|');
  return lines.sort((a, b) => (chainOf(a) < chainOf(b) ? -1 : chainOf(a) > chainOf(b) ? 1 : 0));
}

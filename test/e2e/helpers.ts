// Shared pieces of the end-to-end tests: the CLI path, rule snapshots, foreign rules, dnsmasq.
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Background, Lab } from '../lab/lab.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DETOUR_BIN = join(REPO, 'bin', 'detour.js');
/** The dataplane's UID in every lab (the rules' loop breaker). */
export const DATAPLANE_UID = 5678;

/** Removes what legitimately varies between two dumps: comments with timestamps and counters. */
export function normalizeDump(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n')
    .trim();
}

/** Every view of the app namespace's rules: both iptables flavours, both families, and nft. */
export async function rulesSnapshot(lab: Lab): Promise<string> {
  const parts: string[] = [];
  for (const tool of [
    'iptables-legacy-save',
    'ip6tables-legacy-save',
    'iptables-nft-save',
    'ip6tables-nft-save',
  ]) {
    const r = await lab.run('app', [tool], { reject: false });
    parts.push(`## ${tool}\n${normalizeDump(r.stdout)}`);
  }
  const nft = await lab.run('app', ['nft', '--stateless', 'list', 'ruleset'], { reject: false });
  parts.push(`## nft list ruleset\n${nft.stdout.trim()}`);
  return parts.join('\n');
}

/** Rules and chains that belong to someone else, in every table detour touches, for each flavour. */
export async function addForeignRules(lab: Lab, backend: string): Promise<void> {
  const flavours = backend === 'iptables-legacy' ? ['legacy'] : ['nft'];
  for (const flavour of flavours) {
    for (const family of ['', '6']) {
      const text = [
        '*nat',
        ':FOREIGN_NAT - [0:0]',
        '-A OUTPUT -p tcp --dport 5555 -j FOREIGN_NAT',
        '-A PREROUTING -p tcp --dport 5556 -j ACCEPT',
        '-A FOREIGN_NAT -j RETURN',
        'COMMIT',
        '*raw',
        '-A OUTPUT -p udp --dport 5557 -j ACCEPT',
        '-A PREROUTING -p udp --sport 5557 -j ACCEPT',
        'COMMIT',
        '*mangle',
        '-A PREROUTING -p tcp --dport 5558 -j ACCEPT',
        'COMMIT',
        '*filter',
        ':FOREIGN_FILTER - [0:0]',
        '-A INPUT -j FOREIGN_FILTER',
        'COMMIT',
        '',
      ].join('\n');
      await lab.run('app', [`ip${family}tables-${flavour}-restore`, '--noflush'], { input: text });
    }
  }
  if (backend === 'nftables') {
    await lab.run('app', ['nft', '-f', '-'], {
      input:
        'table inet foreign {\n\tchain out {\n\t\ttype nat hook output priority 0; policy accept;\n\t\ttcp dport 5559 return\n\t}\n}\n',
    });
  }
}

export async function startDnsmasq(
  lab: Lab,
  ns: 'app' | 'net',
  opts: { listen: string[]; port: number; answer: string; uid?: number },
): Promise<void> {
  const bg = lab.spawn(
    ns,
    [
      'dnsmasq',
      '--keep-in-foreground',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      ...(opts.uid === undefined ? ['--user=root'] : []),
      '--pid-file',
      `--port=${opts.port}`,
      ...opts.listen.map((a) => `--listen-address=${a}`),
      `--address=/example.test/${opts.answer}`,
      // answers with a TTL, so that caches keep them
      '--local-ttl=60',
      '--log-facility=-',
    ],
    { uid: opts.uid },
  );
  // dnsmasq is up when it answers.
  for (let i = 0; i < 50; i++) {
    const r = await lab.run(
      ns,
      [
        'dig',
        '+short',
        '+time=1',
        '+tries=1',
        `@${opts.listen[0]}`,
        '-p',
        `${opts.port}`,
        'probe.example.test',
      ],
      {
        reject: false,
      },
    );
    if (r.stdout.trim() === opts.answer) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`dnsmasq in ${ns} on port ${opts.port} did not come up: ${bg.output()}`);
}

/**
 * iptables cannot unload a table once something used it in a namespace, so a table with no rules,
 * no chains of its own and ACCEPT policies is dropped from a snapshot: it is the same as no table.
 */
export function dropEmptyTables(snapshot: string): string {
  const iptablesBlock = /^\*(\w+)\n((?::[A-Z]+ ACCEPT \[0:0\]\n)*)COMMIT\n?/gm;
  const nftBlock =
    /^table ip6? \w+ \{\n(?:\tchain [A-Z]+ \{\n\t\ttype [^\n]*policy accept;\n\t\}\n\n?)*\}\n?/gm;
  return snapshot
    .replace(iptablesBlock, '')
    .replace(nftBlock, '')
    .replace(/\n{2,}/g, '\n')
    .trim();
}

/**
 * `detour dataplane --user 5678 <args>` in the lab's `app` namespace (as the dataplane UID, whose own
 * traffic the rules let through); resolves once it logged "ready".
 */
export async function spawnDataplane(lab: Lab, args: string[]): Promise<Background> {
  const dataplane = lab.spawn('app', [
    'node',
    DETOUR_BIN,
    'dataplane',
    '--user',
    `${DATAPLANE_UID}`,
    ...args,
  ]);
  await dataplane.waitFor(/"msg":"ready"/, 20000);
  return dataplane;
}

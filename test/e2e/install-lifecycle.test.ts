// The lifecycle around install: auto-detection, reconciling a changed config, switching backends,
// IPv4-only mode, --verbose and --dry-run, retries, and a failure half way that must leave nothing.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLab, cleanupStaleLabs, type Lab } from '../lab/lab.js';
import { DETOUR_BIN, dropEmptyTables, rulesSnapshot } from './helpers.js';

let lab: Lab;
let pristine: string;

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab();
  pristine = await rulesSnapshot(lab);
}, 60000);

afterAll(async () => {
  await lab?.destroy();
}, 60000);

afterEach(async () => {
  // Each test starts from no detour rules at all.
  await detour(['uninstall', 'transparent-proxy']);
});

const detour = (args: string[], env?: Record<string, string>) =>
  lab.run('app', ['node', DETOUR_BIN, ...args], { reject: false, timeoutMs: 60000, env });

const save = async (tool: string) => (await lab.run('app', [tool], { reject: false })).stdout;

/** A PATH whose first directory holds fake versions of some tools (shell scripts). */
function fakeTools(name: string, scripts: Record<string, string>): string {
  const dir = join(lab.dir, name);
  mkdirSync(dir, { recursive: true });
  for (const [tool, body] of Object.entries(scripts)) {
    writeFileSync(join(dir, tool), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, tool), 0o755);
  }
  return `${dir}:${process.env.PATH}`;
}

describe('install lifecycle', () => {
  test('auto picks iptables-legacy when only legacy has rules, iptables-nft otherwise', async () => {
    await lab.run('app', [
      'iptables-legacy',
      '-t',
      'filter',
      '-A',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '5999',
      '-j',
      'ACCEPT',
    ]);
    const legacy = await detour(['install', 'transparent-proxy']);
    expect(legacy.stderr).toContain('backend iptables-legacy');
    expect(await save('iptables-legacy-save')).toContain('DETOUR_OUTBOUND');
    expect(await save('iptables-nft-save')).not.toContain('DETOUR_OUTBOUND');
    // Re-running auto stays where detour's rules are, even once nft has rules of its own.
    await lab.run('app', [
      'iptables-nft',
      '-t',
      'filter',
      '-A',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '5998',
      '-j',
      'ACCEPT',
    ]);
    expect((await detour(['install', 'transparent-proxy'])).stderr).toContain('nothing changed');
    await detour(['uninstall', 'transparent-proxy']);
    await lab.run('app', [
      'iptables-legacy',
      '-t',
      'filter',
      '-D',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '5999',
      '-j',
      'ACCEPT',
    ]);
    await lab.run('app', [
      'iptables-nft',
      '-t',
      'filter',
      '-D',
      'INPUT',
      '-p',
      'tcp',
      '--dport',
      '5998',
      '-j',
      'ACCEPT',
    ]);
    expect((await detour(['install', 'transparent-proxy'])).stderr).toContain('backend iptables-nft');
  });

  test('a changed config reconciles to exactly what a fresh install of it gives', async () => {
    const second = [
      '--redirect-inbound=false',
      '--exclude-outbound-ports=2222',
      '--redirect-all-dns-traffic',
    ];
    await detour(['install', 'transparent-proxy', '--backend=iptables-nft', '--iptables-logs']);
    expect(await save('iptables-nft-save')).toContain('detour/log');
    const reconciled = await detour(['install', 'transparent-proxy', '--backend=iptables-nft', ...second]);
    expect(reconciled.exitCode).toBe(0);
    const afterReconcile = await rulesSnapshot(lab);
    expect(afterReconcile).not.toContain('DETOUR_INBOUND');
    expect(afterReconcile).not.toContain('detour/log');
    expect(afterReconcile).toContain('--dports 2222');
    await detour(['uninstall', 'transparent-proxy']);
    await detour(['install', 'transparent-proxy', '--backend=iptables-nft', ...second]);
    expect(await rulesSnapshot(lab)).toBe(afterReconcile);
  });

  test('switching backends removes the rules of the previous one', async () => {
    await detour(['install', 'transparent-proxy', '--backend=iptables-legacy']);
    const switched = await detour(['install', 'transparent-proxy', '--backend=nftables']);
    expect(switched.exitCode).toBe(0);
    expect(await save('iptables-legacy-save')).not.toContain('detour/');
    expect(await save('ip6tables-legacy-save')).not.toContain('detour/');
    expect((await lab.run('app', ['nft', 'list', 'table', 'inet', 'detour'])).stdout).toContain(
      'redirect to :15001',
    );
    await detour(['uninstall', 'transparent-proxy']);
    expect(dropEmptyTables(await rulesSnapshot(lab))).toBe(dropEmptyTables(pristine));
  });

  test('IPv4-only mode installs no IPv6 rules and adds no loopback address', async () => {
    const result = await detour([
      'install',
      'transparent-proxy',
      '--backend=iptables-nft',
      '--ip-family-mode=ipv4',
    ]);
    expect(result.exitCode).toBe(0);
    expect(await save('iptables-nft-save')).toContain('DETOUR_OUTBOUND');
    expect(await save('ip6tables-nft-save')).not.toContain('detour/');
    expect((await lab.run('app', ['ip', '-6', 'addr', 'show', 'dev', 'lo'])).stdout).not.toContain('::6/128');
    // IPv6 traffic is not redirected: nothing listens on 15001, yet an IPv6 connection works.
    await lab.startHttpServer({ port: 8090, body: 'v6-direct' });
    const curl = await lab.run(
      'app',
      ['curl', '-sS', '--max-time', '5', `http://[${lab.addr.serverV6}]:8090/`],
      {
        uid: 1000,
        reject: false,
      },
    );
    expect(curl.stdout).toContain('v6-direct');
  });

  test('dual-stack adds ::6 to lo and uninstall removes it; an address that was there stays', async () => {
    await detour(['install', 'transparent-proxy', '--backend=iptables-nft']);
    expect((await lab.run('app', ['ip', '-6', 'addr', 'show', 'dev', 'lo'])).stdout).toContain('::6/128');
    await detour(['uninstall', 'transparent-proxy']);
    expect((await lab.run('app', ['ip', '-6', 'addr', 'show', 'dev', 'lo'])).stdout).not.toContain('::6/128');
    await lab.run('app', ['ip', '-6', 'addr', 'add', '::6/128', 'dev', 'lo']);
    await detour(['install', 'transparent-proxy', '--backend=iptables-nft']);
    await detour(['uninstall', 'transparent-proxy']);
    expect((await lab.run('app', ['ip', '-6', 'addr', 'show', 'dev', 'lo'])).stdout).toContain('::6/128');
    await lab.run('app', ['ip', '-6', 'addr', 'del', '::6/128', 'dev', 'lo']);
  });

  test('--dry-run prints exactly what install then applies, and changes nothing', async () => {
    const dry = await detour(['install', 'transparent-proxy', '--backend=iptables-nft', '--dry-run']);
    expect(dry.exitCode).toBe(0);
    expect(dropEmptyTables(await rulesSnapshot(lab))).toBe(dropEmptyTables(pristine));
    expect(dry.stdout).toContain('# iptables-nft: ');
    const natSection = /\*nat\n([\s\S]*?)COMMIT/.exec(dry.stdout)![1]!;
    await detour(['install', 'transparent-proxy', '--backend=iptables-nft']);
    const saved = await save('iptables-nft-save');
    for (const line of natSection.split('\n').filter((l) => l.startsWith('-A ')))
      expect(saved).toContain(line);
  });

  test('install --validate proves the rules right after applying them', async () => {
    const result = await detour(['install', 'transparent-proxy', '--backend=iptables-legacy', '--validate']);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toMatch(
      /validation passed: IPv4: a connection to 192\.0\.2\.254:\d+ landed on port 15001/,
    );
    expect(result.stderr).toMatch(
      /validation passed: IPv6: a connection to \[2001:db8::fe\]:\d+ landed on port 15001/,
    );
  });

  test('--verbose shows the commands run', async () => {
    const result = await detour(['install', 'transparent-proxy', '--backend=nftables', '--verbose']);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('$ nft -f -');
    expect(result.stderr).toContain('table inet detour');
  });

  test('a failure half way rolls back what was applied and says what failed', async () => {
    // ip6tables-nft-restore fails: the IPv4 tables were already applied and must be rolled back.
    const PATH = fakeTools('failing-ip6', {
      'ip6tables-nft-restore': 'cat >/dev/null; echo "ip6tables-nft-restore: line 3 failed" >&2; exit 1',
    });
    const result = await detour(
      ['install', 'transparent-proxy', '--backend=iptables-nft', '--max-retries=0'],
      { PATH },
    );
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toMatch(
      /detour: iptables-nft IPv6 table nat: .*ip6tables-nft-restore failed: ip6tables-nft-restore: line 3 failed — everything applied before it was rolled back; nothing changed/,
    );
    expect(dropEmptyTables(await rulesSnapshot(lab))).toBe(dropEmptyTables(pristine));
  });

  test('a transient failure is retried', async () => {
    const counter = join(lab.dir, 'attempts');
    const PATH = fakeTools('flaky-restore', {
      'iptables-nft-restore': `n=$(cat ${counter} 2>/dev/null || echo 0); echo $((n+1)) > ${counter}; if [ "$n" = 0 ]; then cat >/dev/null; echo "Another app is currently holding the xtables lock" >&2; exit 4; fi; exec /usr/sbin/iptables-nft-restore "$@"`,
    });
    const result = await detour(
      [
        'install',
        'transparent-proxy',
        '--backend=iptables-nft',
        '--max-retries=2',
        '--sleep-between-retries=100ms',
      ],
      { PATH },
    );
    expect(result.stderr).toContain('retrying');
    expect(result.exitCode).toBe(0);
    expect(await save('iptables-nft-save')).toContain('DETOUR_OUTBOUND');
  });
});

// Bad input to install/uninstall: one line on stderr naming the problem, exit code 2, and no rule
// changed in any backend.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createLab, cleanupStaleLabs, type Lab } from '../lab/lab.js';
import { DETOUR_BIN, addForeignRules, rulesSnapshot } from './helpers.js';

let lab: Lab;
let before: string;

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab();
  await addForeignRules(lab, 'iptables-nft');
  before = await rulesSnapshot(lab);
}, 60000);

afterAll(async () => {
  await lab?.destroy();
}, 60000);

const detour = (args: string[], opts: { uid?: number; env?: Record<string, string> } = {}) =>
  lab.run('app', ['node', DETOUR_BIN, ...args], { reject: false, timeoutMs: 30000, ...opts });

describe('install transparent-proxy rejects bad input with exit 2 and changes nothing', () => {
  test.each([
    [['--no-such-flag'], /unknown option '--no-such-flag'/],
    [['--redirect-outbound-port', '99999'], /^detour: --redirect-outbound-port: "99999" is not a port/],
    [
      ['--exclude-outbound-ips', '10.0.0.0/40'],
      /^detour: --exclude-outbound-ips: "10.0.0.0\/40" has an invalid prefix length/,
    ],
    [
      ['--exclude-outbound-ips', 'not-an-ip'],
      /^detour: --exclude-outbound-ips: "not-an-ip" is not an IPv4 or IPv6 address/,
    ],
    [
      ['--exclude-outbound-ports-for-uids', 'tcp:22:alice'],
      /^detour: --exclude-outbound-ports-for-uids: .*not a UID/,
    ],
    [
      ['--redirect-dns', '--redirect-all-dns-traffic'],
      /^detour: --redirect-dns and --redirect-all-dns-traffic are mutually exclusive/,
    ],
    [
      ['--dataplane-user', 'no-such-user-here'],
      /^detour: --dataplane-user: no such user "no-such-user-here"/,
    ],
    [['--ip-family-mode', 'ipv6'], /^detour: --ip-family-mode: "ipv6" is not a valid IP family mode/],
    [['--backend', 'pf'], /^detour: --backend: "pf" is not a valid backend/],
    [
      ['--config', '/nonexistent/detour.yaml'],
      /^detour: \/nonexistent\/detour.yaml: cannot read config file: ENOENT/,
    ],
  ])('%j', async (args, message) => {
    const result = await detour(['install', 'transparent-proxy', ...args]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr.trim()).toMatch(message);
    expect(await rulesSnapshot(lab)).toBe(before);
  });

  test('an invalid env var is named', async () => {
    const result = await detour(['install', 'transparent-proxy'], {
      env: { DETOUR_TRANSPARENT_PROXY_REDIRECT_INBOUND_PORT: 'eighty' },
    });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toBe(
      'detour: DETOUR_TRANSPARENT_PROXY_REDIRECT_INBOUND_PORT: "eighty" is not a port: expected an integer 1-65535',
    );
  });

  test('not root, without --dry-run', async () => {
    const result = await detour(['install', 'transparent-proxy'], { uid: 65534 });
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toBe(
      'detour: install needs root (CAP_NET_ADMIN) to change rules; use --dry-run to print them instead',
    );
    expect(await rulesSnapshot(lab)).toBe(before);
  });

  test('not root, with --dry-run, prints the rules', async () => {
    const result = await detour(['install', 'transparent-proxy', '--dry-run', '--backend', 'nftables'], {
      uid: 65534,
    });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('table inet detour {');
    expect(result.stdout).toContain('redirect to :15001');
  });

  test('a missing iptables binary', async () => {
    const bin = join(lab.dir, 'bin-without-iptables');
    mkdirSync(bin, { recursive: true });
    for (const tool of ['node', 'getent', 'ip', 'sh']) {
      const real = (await lab.run('app', ['sh', '-c', `command -v ${tool}`])).stdout.trim();
      symlinkSync(real, join(bin, tool));
    }
    for (const backend of ['iptables-legacy', 'iptables-nft', 'nftables']) {
      const result = await detour(['install', 'transparent-proxy', '--backend', backend], {
        env: { PATH: bin },
      });
      expect(result.exitCode).toBe(2);
      expect(result.stderr.trim()).toMatch(
        new RegExp(`^detour: --backend ${backend}: .*not found or not working: install the`),
      );
    }
    const auto = await detour(['install', 'transparent-proxy'], { env: { PATH: bin } });
    expect(auto.exitCode).toBe(2);
    expect(auto.stderr.trim()).toMatch(/^detour: no firewall tool found/);
    expect(await rulesSnapshot(lab)).toBe(before);
  });

  test('--redirect-dns with a resolv.conf without nameservers', async () => {
    const file = join(lab.dir, 'empty-resolv.conf');
    await lab.run('app', ['sh', '-c', `echo 'search example.test' > ${file}`]);
    const result = await detour([
      'install',
      'transparent-proxy',
      '--redirect-dns',
      '--resolv-conf-path',
      file,
    ]);
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toMatch(/lists no nameserver to capture/);
    expect(await rulesSnapshot(lab)).toBe(before);
  });

  test('uninstall when nothing is installed changes nothing', async () => {
    const result = await detour(['uninstall', 'transparent-proxy']);
    expect(result.exitCode).toBe(0);
    expect(result.stderr).toContain('nothing changed');
    expect(await rulesSnapshot(lab)).toBe(before);
  });
});

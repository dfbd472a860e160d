// End to end, per backend, in a lab namespace: install → real traffic from app UIDs through the
// dataplane (or around it, where excluded) → DNS capture → validate → install twice is a no-op →
// uninstall restores the exact prior ruleset with foreign rules present.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createLab, cleanupStaleLabs, type Background, type Lab } from '../lab/lab.js';
import { DETOUR_BIN, rulesSnapshot, addForeignRules, startDnsmasq, spawnDataplane } from './helpers.js';

const APP_UID = 1000;
const EXCLUDED_UID = 2000;
const DATAPLANE_UID = 5678;

const BACKENDS = ['iptables-legacy', 'iptables-nft', 'nftables'] as const;

describe.each(BACKENDS)('transparent proxy with backend %s', (backend) => {
  let lab: Lab;
  let dataplane: Background | undefined;
  let before: string;
  const installArgs = [
    'install',
    'transparent-proxy',
    `--backend=${backend}`,
    '--redirect-dns',
    '--exclude-outbound-ips=198.51.100.11',
    '--exclude-outbound-ports=8081',
    `--exclude-outbound-ports-for-uids=tcp:8080:${EXCLUDED_UID}`,
  ];
  const detour = (args: string[], uid?: number) =>
    lab.run('app', ['node', DETOUR_BIN, ...args], { reject: false, uid, timeoutMs: 30000 });
  const curl = (url: string, uid = APP_UID, extra: string[] = []) =>
    lab.run('app', ['curl', '-sS', '--max-time', '5', ...extra, url], { reject: false, uid });
  const dataplaneLines = (needle: string) =>
    (dataplane?.output() ?? '')
      .split('\n')
      .filter((l) => l.includes('"msg":"outbound connection"') && l.includes(needle));

  beforeAll(async () => {
    cleanupStaleLabs();
    lab = await createLab();
    await lab.writeResolvConf([`nameserver ${lab.addr.dnsV4}`, `nameserver ${lab.addr.dnsV6}`]);
    for (const port of [80, 8080, 8081]) await lab.startHttpServer({ port, body: `server-${port}` });
    // The upstream DNS in `net` and a stand-in for the dataplane DNS on 15053 in `app` give
    // different answers, so a test can tell which one answered.
    await startDnsmasq(lab, 'net', {
      listen: [lab.addr.dnsV4, lab.addr.dnsV6],
      port: 53,
      answer: '203.0.113.1',
    });
    // As the dataplane UID, like the real DNS server: the conntrack zone rules key on it.
    await startDnsmasq(lab, 'app', {
      listen: ['127.0.0.1', '::1'],
      port: 15053,
      answer: '203.0.113.2',
      uid: DATAPLANE_UID,
    });
    await addForeignRules(lab, backend);
    before = await rulesSnapshot(lab);
  }, 120000);

  afterAll(async () => {
    await dataplane?.stop();
    await lab?.destroy();
  }, 60000);

  test('install applies, and running it again changes nothing', async () => {
    const first = await detour(installArgs);
    expect(first.stderr).toContain(`transparent proxy installed (backend ${backend}`);
    expect(first.exitCode).toBe(0);
    const installed = await rulesSnapshot(lab);
    const second = await detour(installArgs);
    expect(second.exitCode).toBe(0);
    expect(second.stderr).toContain('nothing changed');
    expect(await rulesSnapshot(lab)).toBe(installed);
  });

  test('validate proves redirection before the dataplane runs', async () => {
    const result = await detour(['validate', 'transparent-proxy']);
    expect(result.stderr).toMatch(
      /validation passed: IPv4: a connection to 192\.0\.2\.254:\d+ landed on port 15001/,
    );
    expect(result.exitCode).toBe(0);
  });

  test('app traffic goes through the dataplane with its original destination', async () => {
    dataplane = await spawnDataplane(lab, ['--dns-port', '16053']);
    const response = await curl(`http://${lab.addr.serverV4}/`);
    expect(response.stdout).toContain(`server-80 from ${lab.addr.serverV4}:80 to ${lab.addr.appV4}`);
    await expectLogged(() => dataplaneLines(`"originalDestination":"${lab.addr.serverV4}:80"`).length > 0);
  });

  test('IPv6 goes through the dataplane too', async () => {
    const response = await curl(`http://[${lab.addr.serverV6}]/`);
    expect(response.stdout).toContain('server-80 from');
    await expectLogged(() => dataplaneLines(`"originalDestination":"[${lab.addr.serverV6}]:80"`).length > 0);
  });

  test('the dataplane UID, excluded IPs, ports and UIDs bypass the dataplane', async () => {
    const seen = (dst: string) => dataplaneLines(`"originalDestination":"${dst}"`).length;
    const own = seen(`${lab.addr.serverV4}:80`);
    expect((await curl(`http://${lab.addr.serverV4}/`, DATAPLANE_UID)).stdout).toContain('server-80');
    expect((await curl(`http://${lab.addr.server2V4}/`)).stdout).toContain('server-80');
    expect((await curl(`http://${lab.addr.serverV4}:8081/`)).stdout).toContain('server-8081');
    expect((await curl(`http://${lab.addr.serverV4}:8080/`, EXCLUDED_UID)).stdout).toContain('server-8080');
    // A non-excluded UID to the same port does go through, which also flushes the log.
    expect((await curl(`http://${lab.addr.serverV4}:8080/`)).stdout).toContain('server-8080');
    await expectLogged(() => seen(`${lab.addr.serverV4}:8080`) === 1);
    expect(seen(`${lab.addr.serverV4}:80`)).toBe(own);
    expect(seen(`${lab.addr.server2V4}:80`)).toBe(0);
    expect(seen(`${lab.addr.serverV4}:8081`)).toBe(0);
  });

  test('DNS to the resolv.conf nameserver is answered by whatever listens on 15053', async () => {
    const dig = (args: string[], uid = APP_UID) =>
      lab.run('app', ['dig', '+short', '+time=2', '+tries=1', ...args, 'anything.example.test'], {
        uid,
        reject: false,
      });
    expect((await dig([`@${lab.addr.dnsV4}`])).stdout.trim()).toBe('203.0.113.2');
    expect((await dig([`@${lab.addr.dnsV4}`, '+tcp'])).stdout.trim()).toBe('203.0.113.2');
    expect((await dig([`@${lab.addr.dnsV6}`])).stdout.trim()).toBe('203.0.113.2');
    // The dataplane's own queries reach the real upstream.
    expect((await dig([`@${lab.addr.dnsV4}`], DATAPLANE_UID)).stdout.trim()).toBe('203.0.113.1');
  });

  test('uninstall restores exactly the prior ruleset, foreign rules included', async () => {
    await dataplane?.stop();
    dataplane = undefined;
    const result = await detour(['uninstall', 'transparent-proxy']);
    expect(result.exitCode).toBe(0);
    expect(await rulesSnapshot(lab)).toBe(before);
    const addresses = await lab.run('app', ['ip', '-6', 'addr', 'show', 'dev', 'lo']);
    expect(addresses.stdout).not.toContain('::6/128');
    // With the rules gone, traffic is direct and validation says so.
    const validate = await detour(['validate', 'transparent-proxy', '--ip-family-mode=ipv4']);
    expect(validate.exitCode).toBe(1);
    expect(validate.stderr).toMatch(/^detour: validation failed: .*192\.0\.2\.254/);
  });
});

async function expectLogged(check: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !check(); i++) await new Promise((r) => setTimeout(r, 100));
  expect(check()).toBe(true);
}

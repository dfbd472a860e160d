// TCP destinations through real corporate proxies, end to end: the app (curl as an unprivileged UID)
// resolves a TCP destination's name through the embedded DNS, connects to its VIP, the rules send
// the connection to the dataplane, and the dataplane leaves through the proxy detour.yaml names —
// Dante (SOCKS5, username/password or none) or squid (HTTP CONNECT with Basic) in `net` — to nginx.
// nginx's answer names the address the connection came from: the proxy's, or the app's when direct.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDante } from '../lab/dante.js';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { startSquid } from '../lab/squid.js';
import { DETOUR_BIN, spawnDataplane } from './helpers.js';

const APP_UID = 1000;
const SOCKS_PASSWORD = 'dante-PASS-417';
const HTTP_PASSWORD = 'squid-PASS-938';
const WRONG_PASSWORD = 'wrong-PASS-000';

let lab: Lab;
let dir: string;
let dataplane: Background | undefined;
let server: string; // nginx and the targets: 198.51.100.10
let proxyAddress: string; // dante and squid listen and connect out on 198.51.100.11 (nginx too)

interface Line {
  msg: string;
  [key: string]: unknown;
}

const FAILED = 'upstream connect through proxy failed; resetting';

function destinationsYaml(): string {
  return `- Name: legacy
  Type: TCP
  Address: tcp://${server}:80
  URL.connectionTimeoutInSeconds: 5
- Name: legacy-by-name
  Type: TCP
  Address: tcp://legacy.corp:80
- Name: closed
  Type: TCP
  Address: tcp://${server}:9
- Name: nearby
  Type: TCP
  Address: tcp://${proxyAddress}:80
`;
}

/** (Re)starts the dataplane with this egressProxy section; NO_PROXY: the proxies' own address. */
async function startDataplane(egressProxy: Record<string, string>): Promise<void> {
  await dataplane?.stop();
  const config = join(dir, 'detour.yaml');
  const section = Object.entries(egressProxy)
    .map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  writeFileSync(
    config,
    `destinations:\n  files: [${join(dir, 'destinations.yaml')}]\negressProxy:\n${section}\n  noProxy: ["${proxyAddress}"]\n  fromEnvironment: false\n`,
  );
  chmodSync(config, 0o644);
  dataplane = await spawnDataplane(lab, ['--config', config]);
}

const lines = (): Line[] =>
  (dataplane?.output() ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);

async function waitForLine(match: (l: Line) => boolean, what: string): Promise<Line> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const line = lines().find(match);
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no ${what} line in:\n${dataplane?.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const curl = (name: string) =>
  lab.run('app', ['curl', '-sS', '--max-time', '15', `http://${name}/`], { uid: APP_UID, reject: false });

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab({ ipv6: false });
  server = lab.addr.serverV4;
  proxyAddress = lab.addr.server2V4;
  chmodSync(lab.dir, 0o755); // the dataplane runs as UID 5678 and reads its files from here
  dir = join(lab.dir, 'detour');
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(join(dir, 'destinations.yaml'), destinationsYaml());
  chmodSync(join(dir, 'destinations.yaml'), 0o644);
  await lab.writeResolvConf([`nameserver ${lab.addr.dnsV4}`]);
  await lab.startHttpServer({ port: 80, body: 'tcp-target' });
  await startDante(lab, { port: 1080, users: [{ username: 'svc-socks', password: SOCKS_PASSWORD }] });
  await startDante(lab, { port: 1081 });
  await startSquid(lab, {
    port: 3128,
    username: 'svc-http',
    password: HTTP_PASSWORD,
    hosts: { 'legacy.corp': server },
  });
  await lab.run('app', ['node', DETOUR_BIN, 'install', 'transparent-proxy', '--redirect-dns']);
}, 120000);

afterEach(async () => {
  // no secret in anything the dataplane logged
  for (const secret of [SOCKS_PASSWORD, HTTP_PASSWORD, WRONG_PASSWORD])
    expect(dataplane?.output() ?? '').not.toContain(secret);
});

afterAll(async () => {
  await dataplane?.stop();
  await lab?.destroy();
}, 60000);

describe('TCP destinations through Dante (SOCKS5)', () => {
  test('username/password: arrives from the proxy; NO_PROXY target direct; refused target 0x05', async () => {
    await startDataplane({ socks5: `socks5://svc-socks:${SOCKS_PASSWORD}@${proxyAddress}:1080` });
    expect((await curl('legacy')).stdout.trim()).toBe(`tcp-target from ${server}:80 to ${proxyAddress}`);
    expect(
      await waitForLine((l) => l.msg === 'connection closed' && l.destination === 'legacy', 'close'),
    ).toMatchObject({
      address: `${server}:80`,
      via: `SOCKS5 proxy ${proxyAddress}:1080 (authenticated)`,
      upstreamConnected: true,
      ...(process.env.DETOUR_SPLICE === '0' ? {} : { spliced: true }),
    });
    // in NO_PROXY: straight from the app
    expect((await curl('nearby')).stdout.trim()).toBe(
      `tcp-target from ${proxyAddress}:80 to ${lab.addr.appV4}`,
    );

    const refused = await curl('closed');
    expect(refused.stderr).toMatch(/Connection reset by peer/);
    expect(await waitForLine((l) => l.msg === FAILED && l.destination === 'closed', 'failure')).toMatchObject(
      {
        address: `${server}:9`,
        stage: 'socks5 connect',
        replyCode: '0x05',
        reason: 'connection refused by the target',
      },
    );
  });

  test('wrong password: the app connection is reset; one line says the proxy rejected the credentials', async () => {
    await startDataplane({ socks5: `socks5://svc-socks:${WRONG_PASSWORD}@${proxyAddress}:1080` });
    const r = await curl('legacy');
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Connection reset by peer/);
    const line = await waitForLine((l) => l.msg === FAILED, 'failure');
    expect(line).toMatchObject({
      level: 40,
      destination: 'legacy',
      via: `SOCKS5 proxy ${proxyAddress}:1080 (authenticated)`,
      stage: 'socks5 auth',
      reason: 'the proxy rejected the username or password',
    });
    expect(lines().filter((l) => l.msg === FAILED)).toHaveLength(1);
  });

  test('no authentication (method 0x00)', async () => {
    await startDataplane({ socks5: `socks5://${proxyAddress}:1081` });
    expect((await curl('legacy')).stdout.trim()).toBe(`tcp-target from ${server}:80 to ${proxyAddress}`);
  });
});

describe('TCP destinations through squid (HTTP CONNECT)', () => {
  test('Basic credentials; the target by name (squid resolves it); refused target 503', async () => {
    await startDataplane({ http: `http://svc-http:${HTTP_PASSWORD}@${proxyAddress}:3128` });
    expect((await curl('legacy-by-name')).stdout.trim()).toBe(
      `tcp-target from ${server}:80 to ${proxyAddress}`,
    );
    const refused = await curl('closed');
    expect(refused.stderr).toMatch(/Connection reset by peer/);
    const line = await waitForLine((l) => l.msg === FAILED && l.destination === 'closed', 'failure');
    expect(line).toMatchObject({ stage: 'http-connect connect', replyCode: 503 });
    expect(line.reason).toMatch(/^the proxy could not connect to 198\.51\.100\.10:9 \(503/);
  });

  test('wrong password: reset, a 407 line', async () => {
    await startDataplane({ http: `http://svc-http:${WRONG_PASSWORD}@${proxyAddress}:3128` });
    expect((await curl('legacy')).stderr).toMatch(/Connection reset by peer/);
    expect(await waitForLine((l) => l.msg === FAILED, 'failure')).toMatchObject({
      destination: 'legacy',
      via: `HTTP CONNECT proxy ${proxyAddress}:3128 (authenticated)`,
      stage: 'http-connect connect',
      replyCode: 407,
      reason: 'the proxy rejected the username or password (407 Proxy Authentication Required)',
    });
  });
});

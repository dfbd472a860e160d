// TCP destinations through real corporate proxies in the lab: Dante (SOCKS5, username/password and
// no authentication) and squid (HTTP CONNECT with Basic authentication) in `net`, nginx behind them.
// The app (curl as an unprivileged UID in `app`) connects to the TCP-destination path
// (tcp-destination-harness.mjs: the built pipeTcpDestination with the proxy given to it); the answer
// names the address nginx saw the connection come from, which is the proxy's.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { startDante } from '../lab/dante.js';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { startSquid } from '../lab/squid.js';
import { REPO } from './helpers.js';

const APP_UID = 1000;
const PROXY_PASSWORD = 'dante-PASS-417';
const SQUID_PASSWORD = 'squid-PASS-938';
const WRONG_PASSWORD = 'wrong-PASS-000';

let lab: Lab;
let nextPort = 7001;
const harnesses: Background[] = [];

interface Line {
  msg: string;
  [key: string]: unknown;
}

/** Starts the TCP-destination path in `app` for one destination and proxy; returns its port and log. */
async function startPath(destination: Record<string, string>, proxy: Record<string, unknown>) {
  const port = nextPort++;
  const bg = lab.spawn('app', [
    'node',
    join(REPO, 'test', 'e2e', 'tcp-destination-harness.mjs'),
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      destination: {
        Type: 'TCP',
        ProxyType: 'Internet',
        'URL.connectionTimeoutInSeconds': '5',
        ...destination,
      },
      ...proxy,
    }),
  ]);
  harnesses.push(bg);
  await bg.waitFor(/harness ready/, 15000);
  const lines = () =>
    bg
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Line);
  return { port, lines, output: () => bg.output() };
}

const curl = (port: number) =>
  lab.run('app', ['curl', '-sS', '--max-time', '10', `http://127.0.0.1:${port}/`], {
    uid: APP_UID,
    reject: false,
  });

async function waitForLine(lines: () => Line[], msg: string): Promise<Line> {
  const deadline = Date.now() + 10000;
  for (;;) {
    const line = lines().find((l) => l.msg === msg);
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no "${msg}" line`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab({ ipv6: false });
  await lab.startHttpServer({ port: 80, body: 'tcp-target' });
  // Proxies listen on server2V4 (198.51.100.11) and connect out from it.
  await startDante(lab, { port: 1080, users: [{ username: 'svc-socks', password: PROXY_PASSWORD }] });
  await startDante(lab, { port: 1081 });
  await startSquid(lab, {
    port: 3128,
    username: 'svc-http',
    password: SQUID_PASSWORD,
    hosts: { 'legacy.corp': lab.addr.serverV4 },
  });
}, 120000);

afterAll(async () => {
  for (const h of harnesses) await h.stop();
  await lab?.destroy();
}, 60000);

const proxyAddress = () => lab.addr.server2V4;

describe('TCP destination through Dante (SOCKS5)', () => {
  test('username/password: the connection arrives from the proxy', async () => {
    const path = await startPath(
      { Name: 'legacy-socks', Address: `tcp://${lab.addr.serverV4}:80` },
      {
        egressProxy: {
          kind: 'socks5',
          host: proxyAddress(),
          port: 1080,
          username: 'svc-socks',
          password: PROXY_PASSWORD,
        },
      },
    );
    const r = await curl(path.port);
    expect(r.stdout.trim()).toBe(`tcp-target from ${lab.addr.serverV4}:80 to ${proxyAddress()}`);
    const closed = await waitForLine(path.lines, 'connection closed');
    expect(closed).toMatchObject({
      destination: 'legacy-socks',
      via: `SOCKS5 proxy ${proxyAddress()}:1080 (authenticated)`,
      upstreamConnected: true,
    });
    expect(path.output()).not.toContain(PROXY_PASSWORD);
  });

  test('no authentication (method 0x00)', async () => {
    const path = await startPath(
      { Name: 'legacy-open', Address: `tcp://${lab.addr.serverV4}:80` },
      { egressProxy: { kind: 'socks5', host: proxyAddress(), port: 1081 } },
    );
    expect((await curl(path.port)).stdout.trim()).toBe(
      `tcp-target from ${lab.addr.serverV4}:80 to ${proxyAddress()}`,
    );
  });

  test('wrong password: the app connection is reset, one clear line, no password in it', async () => {
    const path = await startPath(
      { Name: 'legacy-socks-bad', Address: `tcp://${lab.addr.serverV4}:80` },
      {
        egressProxy: {
          kind: 'socks5',
          host: proxyAddress(),
          port: 1080,
          username: 'svc-socks',
          password: WRONG_PASSWORD,
        },
      },
    );
    const r = await curl(path.port);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/Connection reset by peer/);
    const line = await waitForLine(path.lines, 'upstream connect through proxy failed; resetting');
    expect(line).toMatchObject({
      destination: 'legacy-socks-bad',
      stage: 'socks5 auth',
      reason: 'the proxy rejected the username or password',
    });
    expect(path.output()).not.toContain(WRONG_PASSWORD);
  });

  test('the target refuses: Dante answers 0x05 and the line says so', async () => {
    const path = await startPath(
      { Name: 'closed-port', Address: `tcp://${lab.addr.serverV4}:9` },
      { egressProxy: { kind: 'socks5', host: proxyAddress(), port: 1081 } },
    );
    expect((await curl(path.port)).stderr).toMatch(/Connection reset by peer/);
    expect(await waitForLine(path.lines, 'upstream connect through proxy failed; resetting')).toMatchObject({
      stage: 'socks5 connect',
      replyCode: '0x05',
      reason: 'connection refused by the target',
    });
  });
});

describe('TCP destination through squid (HTTP CONNECT)', () => {
  test('Basic credentials, target by name (squid resolves it): arrives from the proxy', async () => {
    const path = await startPath(
      { Name: 'legacy-http', Address: 'tcp://legacy.corp:80' },
      {
        egressProxy: {
          kind: 'http',
          host: proxyAddress(),
          port: 3128,
          username: 'svc-http',
          password: SQUID_PASSWORD,
        },
      },
    );
    const r = await curl(path.port);
    expect(r.stdout.trim()).toBe(`tcp-target from ${lab.addr.serverV4}:80 to ${proxyAddress()}`);
    expect(path.output()).not.toContain(SQUID_PASSWORD);
  });

  test('wrong password: reset, a 407 line without the password', async () => {
    const path = await startPath(
      { Name: 'legacy-http-bad', Address: 'tcp://legacy.corp:80' },
      {
        egressProxy: {
          kind: 'http',
          host: proxyAddress(),
          port: 3128,
          username: 'svc-http',
          password: WRONG_PASSWORD,
        },
      },
    );
    const r = await curl(path.port);
    expect(r.stderr).toMatch(/Connection reset by peer/);
    expect(await waitForLine(path.lines, 'upstream connect through proxy failed; resetting')).toMatchObject({
      destination: 'legacy-http-bad',
      via: `HTTP CONNECT proxy ${proxyAddress()}:3128 (authenticated)`,
      stage: 'http-connect connect',
      replyCode: 407,
      reason: 'the proxy rejected the username or password (407 Proxy Authentication Required)',
    });
    expect(path.output()).not.toContain(WRONG_PASSWORD);
  });

  test('the target refuses: squid answers 503 and the line says so', async () => {
    const path = await startPath(
      { Name: 'legacy-http-closed', Address: `tcp://${lab.addr.serverV4}:9` },
      {
        egressProxy: {
          kind: 'http',
          host: proxyAddress(),
          port: 3128,
          username: 'svc-http',
          password: SQUID_PASSWORD,
        },
      },
    );
    expect((await curl(path.port)).stderr).toMatch(/Connection reset by peer/);
    const line = await waitForLine(path.lines, 'upstream connect through proxy failed; resetting');
    expect(line).toMatchObject({ stage: 'http-connect connect', replyCode: 503 });
    expect(line.reason).toMatch(/^the proxy could not connect to 198\.51\.100\.10:9 \(503/);
  });
});

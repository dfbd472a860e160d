// Internet HTTP destinations through corporate proxies, end to end: plain curl in `app`, the dataplane
// sending through a real squid (Basic authentication; absolute form for http, CONNECT + TLS for https)
// or a real Dante (SOCKS5) in `net`, to nginx in `net`. nginx names the client address it saw, so a
// response says whether the request came through the proxy (198.51.100.11) or directly (the app).
// Needs root (network namespaces).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../lab/certs.js';
import { startDante, type Dante } from '../lab/dante.js';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { startSquid, type Squid } from '../lab/squid.js';
import { DETOUR_BIN, REPO } from './helpers.js';

const APP_UID = 1000;
const DATAPLANE_UID = 5678;
const PROXY_USER = 'svc-http';
const PROXY_PASSWORD = 'squid-PW-e2e-42';
const S = '198.51.100.10';
const CLIENT_SECRET = 'orders-SECRET-e2e-5';

let lab: Lab;
let dir: string;
let squid: Squid;
let dante: Dante;
let dataplane: Background | undefined;
let oauth: Background | undefined;

const curl = (args: string[]) =>
  lab.run('app', ['curl', '-sS', '--max-time', '15', ...args], { uid: APP_UID, reject: false });
const admin = (path: string) =>
  lab.run('app', ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:9901${path}`], { reject: false });

async function startDataplane(egressProxy: string, env: Record<string, string> = {}): Promise<Background> {
  await dataplane?.stop();
  writeFileSync(join(dir, 'detour.yaml'), `destinations: { files: [./destinations.yaml] }\n${egressProxy}\n`);
  chmodSync(join(dir, 'detour.yaml'), 0o644);
  const bg = lab.spawn(
    'app',
    ['node', DETOUR_BIN, 'dataplane', '--user', `${DATAPLANE_UID}`, '--config', join(dir, 'detour.yaml')],
    { env },
  );
  await bg.waitFor(/"msg":"ready"/, 20000);
  const deadline = Date.now() + 10000;
  while (!(await admin('/ready')).stdout.includes('"ready":true')) {
    if (Date.now() > deadline) throw new Error('dataplane not ready');
    await new Promise((r) => setTimeout(r, 200));
  }
  dataplane = bg;
  return bg;
}

const proxyUrl = (password = PROXY_PASSWORD) =>
  `http://${PROXY_USER}:${encodeURIComponent(password)}@${lab.addr.server2V4}:3128`;

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab({ ipv6: false });
  chmodSync(lab.dir, 0o755);
  dir = join(lab.dir, 'detour');
  mkdirSync(dir, { mode: 0o755 });
  const pki = join(lab.dir, 'pki');
  const ca = createCa(pki);
  const server = issueCertificate(ca, pki, 'upstream', { altNames: [S] });
  copyFileSync(ca.cert, join(dir, 'ca.pem'));
  chmodSync(join(dir, 'ca.pem'), 0o644);
  writeFileSync(
    join(dir, 'destinations.yaml'),
    `- Name: web
  URL: http://${S}/
- Name: secure
  URL: https://${S}:8443/
  TrustStoreLocation: ca.pem
- Name: direct
  URL: http://${S}:8081/
- Name: orders
  URL: http://${S}/
  Authentication: OAuth2ClientCredentials
  tokenServiceURL: http://${S}:9000/oauth/token
  clientId: orders-client
  clientSecret: ${CLIENT_SECRET}
`,
  );
  chmodSync(join(dir, 'destinations.yaml'), 0o644);
  await lab.startHttpServer({ port: 80, body: 'web' });
  await lab.startHttpServer({ port: 8081, body: 'direct' });
  await lab.startHttpServer({ port: 8443, body: 'tls', tls: { cert: server.cert, key: server.key } });
  squid = await startSquid(lab, { port: 3128, username: PROXY_USER, password: PROXY_PASSWORD });
  dante = await startDante(lab, { port: 1081 });
  oauth = lab.spawn('net', [
    'node',
    join(REPO, 'dist', 'test', 'peers', 'oauth-server-cli.js'),
    JSON.stringify({
      host: S,
      port: 9000,
      clients: [
        { clientId: 'orders-client', clientSecret: CLIENT_SECRET, grantTypes: ['client_credentials'] },
      ],
    }),
  ]);
  await oauth.waitFor(/oauth ready/, 15000);
  await lab.run('app', ['node', DETOUR_BIN, 'install', 'transparent-proxy', '--redirect-dns']);
}, 120_000);

afterAll(async () => {
  await dataplane?.stop();
  await squid?.stop();
  await dante?.stop();
  await oauth?.stop();
  await lab?.destroy();
}, 60_000);

const viaProxy = (body: string, port: number) => `${body} from ${S}:${port} to ${lab.addr.server2V4}`;

describe('Internet destinations through squid (egressProxy.http)', () => {
  beforeAll(async () => {
    await startDataplane(`egressProxy: { http: "${proxyUrl()}", noProxy: ["${S}:8081"] }`);
  }, 60_000);

  test('http target: through squid, authenticated', async () => {
    expect((await curl(['http://web/a'])).stdout.trim()).toBe(viaProxy('web', 80));
    expect(await squid.accessLog()).toContain(`GET http://${S}/a 200 ${PROXY_USER}`);
  });

  test('https target: CONNECT through squid, TLS verified against the trust store', async () => {
    expect((await curl(['http://secure/b'])).stdout.trim()).toBe(viaProxy('tls', 8443));
  });

  test('the token service is reached through squid as well (CONNECT)', async () => {
    expect((await curl(['http://orders/'])).stdout.trim()).toBe(viaProxy('web', 80));
    // squid logs a tunnel when it closes: the token client keeps it alive for 4 s
    const deadline = Date.now() + 20_000;
    while (!(await squid.accessLog()).includes(`CONNECT ${S}:9000`) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 250));
    expect(await squid.accessLog()).toContain(`CONNECT ${S}:9000 200 ${PROXY_USER}`);
  });

  test('NO_PROXY entry host:port: direct from the app', async () => {
    expect((await curl(['http://direct/'])).stdout.trim()).toBe(`direct from ${S}:8081 to ${lab.addr.appV4}`);
  });

  test('/config shows the proxy without its password', async () => {
    const config = (await admin('/config')).stdout;
    expect(config).toContain(`http://${PROXY_USER}:<redacted>@${lab.addr.server2V4}:3128`);
    expect(config + dataplane!.output()).not.toContain(PROXY_PASSWORD);
    expect(config + dataplane!.output()).not.toContain(CLIENT_SECRET);
    // the start-up line names the proxy, redacted
    expect(dataplane!.output()).toMatch(/"msg":"proxies"/);
    expect(dataplane!.output()).toContain(`http://${PROXY_USER}:<redacted>@${lab.addr.server2V4}:3128`);
  });
});

describe('proxy credentials refused', () => {
  test('wrong password: 502 Egress Proxy (407) for http and https targets, password never shown', async () => {
    const bg = await startDataplane(`egressProxy: { http: "${proxyUrl('not-the-PW-9')}" }`);
    for (const name of ['web', 'secure']) {
      const r = (await curl(['-i', `http://${name}/`])).stdout;
      expect(r).toMatch(/^HTTP\/1\.1 502/);
      expect(r).toMatch(/x-error-origin: Egress Proxy/i);
      expect(r).toContain('(407)');
      expect(r).not.toContain('not-the-PW-9');
    }
    expect(bg.output()).not.toContain('not-the-PW-9');
  });
});

describe('Internet destinations through Dante (egressProxy.socks5)', () => {
  test('http and https targets arrive from the SOCKS5 proxy', async () => {
    await startDataplane(`egressProxy: { socks5: "socks5://${lab.addr.server2V4}:1081" }`);
    expect((await curl(['http://web/s'])).stdout.trim()).toBe(viaProxy('web', 80));
    expect((await curl(['http://secure/s'])).stdout.trim()).toBe(viaProxy('tls', 8443));
  });
});

describe('proxies from the environment', () => {
  test('HTTP_PROXY / HTTPS_PROXY / NO_PROXY', async () => {
    await startDataplane('', {
      HTTP_PROXY: proxyUrl(),
      HTTPS_PROXY: proxyUrl(),
      NO_PROXY: `localhost,${S}:8081`,
    });
    expect((await curl(['http://web/env'])).stdout.trim()).toBe(viaProxy('web', 80));
    expect((await curl(['http://secure/env'])).stdout.trim()).toBe(viaProxy('tls', 8443));
    expect((await curl(['http://direct/env'])).stdout.trim()).toBe(
      `direct from ${S}:8081 to ${lab.addr.appV4}`,
    );
    const config = (await admin('/config')).stdout;
    expect(config).toMatch(/"from":\s*"HTTP_PROXY"/);
    expect(config).not.toContain(PROXY_PASSWORD);
  });
});

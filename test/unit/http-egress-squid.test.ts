// Internet destinations through a real squid (Basic authentication via basic_ncsa_auth) on loopback:
// http targets in absolute form, https targets by CONNECT + TLS with the destination's trust store.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { resolveEgressProxy } from '../../dataplane/egress/config.js';
import { createUndiciTokenFetch } from '../../dataplane/auth/token-http.js';
import { createEgressProxies } from '../../dataplane/egress/egress-proxies.js';
import { createCa, issueCertificate } from '../lab/certs.js';
import { type Background, spawnBackground } from '../lab/exec.js';
import { squidConfig, userIds } from '../lab/squid.js';
import { startEchoUpstream } from '../peers/echo-upstream.js';
import { closedPort } from './auth-helpers.js';
import { type Proxy, destination, fakeAuth, request, startProxy, waitFor } from './http-harness.js';

const PROXY_PASSWORD = 'squid-S3cret!';
let dir: string;
let squid: { accessLog(): string; stop(): Promise<void> };
let squidPort = 0;
let plain: http.Server;
let secure: https.Server;
let caPem: Buffer;
let targetCert: { cert: Buffer; key: Buffer };
const seen: http.IncomingHttpHeaders[] = [];
const proxies: Proxy[] = [];

const port = (s: http.Server) => (s.address() as AddressInfo).port;
const echo: http.RequestListener = (req, res) => {
  seen.push(req.headers);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`${req.method} ${req.url} host=${req.headers.host}`);
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'detour-squid-'));
  chmodSync(dir, 0o755); // squid runs as its own user
  const ca = createCa(join(dir, 'ca'));
  const cert = issueCertificate(ca, join(dir, 'ca'), 'target', { altNames: ['localhost', '127.0.0.1'] });
  caPem = readFileSync(ca.cert);
  targetCert = { cert: readFileSync(cert.cert), key: readFileSync(cert.key) };
  plain = http.createServer(echo);
  secure = https.createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, echo);
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => secure.listen(0, '127.0.0.1', r));
  squidPort = await closedPort();
  squid = await startLoopbackSquid(join(dir, 'squid'), squidPort);
}, 30_000);

/** The lab's squid config (test/lab/squid.ts) on 127.0.0.1: Basic auth for alice, no cache, own logs. */
async function startLoopbackSquid(squidDir: string, listenPort: number) {
  mkdirSync(squidDir);
  const hash = execFileSync('openssl', ['passwd', '-apr1', '-stdin'], { input: `${PROXY_PASSWORD}\n` });
  const htpasswd = join(squidDir, 'htpasswd');
  writeFileSync(htpasswd, `alice:${hash.toString().trim()}\n`);
  writeFileSync(join(squidDir, 'hosts'), '127.0.0.1 localhost\n');
  writeFileSync(join(squidDir, 'access.log'), '');
  const conf = join(squidDir, 'squid.conf');
  writeFileSync(conf, squidConfig({ dir: squidDir, address: '127.0.0.1', port: listenPort, htpasswd }));
  const { uid, gid } = userIds('proxy');
  for (const f of ['', 'access.log', 'hosts', 'htpasswd']) chownSync(join(squidDir, f), uid, gid);
  const bg: Background = spawnBackground(['squid', '-N', '-f', conf], {
    logFile: join(squidDir, 'squid.out'),
  });
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: listenPort });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
  const deadline = Date.now() + 15_000;
  while (!(await listening())) {
    if (Date.now() > deadline) {
      await bg.stop();
      throw new Error(`squid did not listen: ${bg.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { accessLog: () => readFileSync(join(squidDir, 'access.log'), 'utf8'), stop: () => bg.stop() };
}

afterAll(async () => {
  await squid?.stop();
  for (const s of [plain, secure]) {
    s?.closeAllConnections();
    await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  }
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  seen.length = 0;
});

async function through(
  url: string,
  egressProxy: Parameters<typeof resolveEgressProxy>[0],
  over: Parameters<typeof destination>[0] = {},
) {
  const egressProxies = createEgressProxies(resolveEgressProxy(egressProxy, {}));
  const proxy = await startProxy(
    destination({
      url: new URL(url),
      trustStore: { location: 'ca.pem', content: caPem },
      ...over,
    }),
    {
      authenticator: fakeAuth(async () => ({ headers: [['authorization', 'Basic dGFyZ2V0OnB3']] }))
        .authenticator,
      egress: { egressProxies },
    },
  );
  proxies.push(proxy);
  return proxy;
}

const proxyUrl = (password = PROXY_PASSWORD) =>
  `http://alice:${encodeURIComponent(password)}@127.0.0.1:${squidPort}`;

describe('Internet destinations through squid', () => {
  test('http target: absolute form with Basic proxy credentials; the target sees its own Host and auth, no Proxy-Authorization', async () => {
    const proxy = await through(`http://127.0.0.1:${port(plain)}/api`, { http: proxyUrl() });
    const res = await request(proxy.port, '/items?x=1');
    expect(res.status).toBe(200);
    expect(res.body).toBe(`GET /api/items?x=1 host=127.0.0.1:${port(plain)}`);
    expect(seen[0]?.['proxy-authorization']).toBeUndefined();
    expect(seen[0]?.authorization).toBe('Basic dGFyZ2V0OnB3');
    // squid logs URLs without their query (strip_query_terms)
    expect(squid.accessLog()).toMatch(
      new RegExp(`GET http://127\\.0\\.0\\.1:${port(plain)}/api/items\\? 200 alice`),
    );
  });

  test('https target: CONNECT through squid, TLS to the target with its trust store', async () => {
    const proxy = await through(`https://localhost:${port(secure)}/api`, { http: proxyUrl() });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++) {
      const res = await request(proxy.port, `/s${i}`, { agent });
      expect(res.status).toBe(200);
      expect(res.body).toBe(`GET /api/s${i} host=localhost:${port(secure)}`);
    }
    agent.destroy();
    expect(seen.every((h) => h['proxy-authorization'] === undefined)).toBe(true);
    // kept alive: one tunnel for three requests (squid logs a CONNECT when the tunnel closes)
    await proxies.pop()!.close();
    const connects = await waitFor(
      'the CONNECT log line',
      () =>
        squid.accessLog().match(new RegExp(`CONNECT localhost:${port(secure)} 200 alice`, 'g')) ?? undefined,
    );
    expect(connects).toHaveLength(1);
  });

  test('https target by IP address: the certificate is checked against the address', async () => {
    const proxy = await through(`https://127.0.0.1:${port(secure)}/ip`, { http: proxyUrl() });
    const res = await request(proxy.port, '/');
    expect(res.status).toBe(200);
    expect(res.body).toBe(`GET /ip host=127.0.0.1:${port(secure)}`);
  });

  test('https target with an untrusted certificate fails as TLS (503 Upstream), not as a proxy error', async () => {
    const proxy = await through(
      `https://localhost:${port(secure)}/`,
      { http: proxyUrl() },
      { trustStore: undefined },
    );
    const res = await request(proxy.port, '/');
    expect(res.status).toBe(503);
    expect(res.headers['x-error-origin']).toBe('Upstream');
    expect(res.headers['x-error-message']).toContain('TLS');
  });

  test.each(['http', 'https'])(
    '%s target with a wrong proxy password → 502 Egress Proxy (407), password never shown',
    async (scheme) => {
      const target =
        scheme === 'http' ? `http://127.0.0.1:${port(plain)}/` : `https://localhost:${port(secure)}/`;
      const proxy = await through(target, { http: proxyUrl('wrong-Pa55') });
      const res = await request(proxy.port, '/');
      expect(res.status).toBe(502);
      expect(res.headers['x-error-origin']).toBe('Egress Proxy');
      expect(res.headers['x-error-message']).toContain('(407)');
      expect(res.headers['x-error-message']).toContain('http://alice:<redacted>@127.0.0.1');
      expect(res.headers['x-error-message']).not.toContain('wrong-Pa55');
      expect(proxy.logText()).not.toContain('wrong-Pa55');
      expect(seen).toHaveLength(0);
    },
  );

  test.each(['http', 'https'])(
    'WebSocket to an %s target: a tunnel through squid, frames echo both ways',
    async (scheme) => {
      const up = await startEchoUpstream({
        host: '127.0.0.1',
        port: 0,
        ...(scheme === 'https' ? { tls: { cert: targetCert.cert, key: targetCert.key } } : {}),
      });
      try {
        const proxy = await through(`${scheme}://localhost:${up.port}/base`, { http: proxyUrl() });
        const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws`);
        const messages: string[] = [];
        await new Promise<void>((resolve, reject) => {
          ws.onopen = () => ws.send('hello through squid');
          ws.onmessage = (e) => {
            messages.push(String(e.data));
            ws.close(1000, 'bye');
          };
          ws.onclose = () => resolve();
          ws.onerror = () => reject(new Error('websocket error'));
        });
        expect(messages).toEqual(['hello through squid']);
        expect(up.requests[0]?.path).toBe('/base/ws');
        await waitFor('the CONNECT log line', () =>
          squid.accessLog().includes(`CONNECT localhost:${up.port} 200 alice`) ? true : undefined,
        );
      } finally {
        await up.close();
      }
    },
  );

  test('token requests go through the proxy too (CONNECT), and fail clearly with wrong proxy credentials', async () => {
    const proxies = createEgressProxies(resolveEgressProxy({ http: proxyUrl() }, {}));
    const pick = (url: URL) => proxies.forTarget(url.hostname, Number(url.port), 'http');
    const good = createUndiciTokenFetch({ proxyFor: pick });
    const url = new URL(`http://127.0.0.1:${port(plain)}/oauth/token`);
    const res = await good.fetch({
      url,
      headers: {},
      body: 'grant_type=client_credentials',
      connectTimeoutMs: 5000,
      readTimeoutMs: 5000,
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe(`POST /oauth/token host=127.0.0.1:${port(plain)}`);
    await good.close();
    await waitFor('the CONNECT log line', () =>
      squid.accessLog().includes(`CONNECT 127.0.0.1:${port(plain)} 200 alice`) ? true : undefined,
    );
    const wrong = createEgressProxies(resolveEgressProxy({ http: proxyUrl('bad-Pw-77') }, {}));
    const bad = createUndiciTokenFetch({
      proxyFor: (u) => wrong.forTarget(u.hostname, Number(u.port), 'http'),
    });
    const failure = await bad
      .fetch({ url, headers: {}, body: '', connectTimeoutMs: 5000, readTimeoutMs: 5000 })
      .then(
        () => undefined,
        (e: Error) => e,
      );
    await bad.close();
    expect(String(failure?.message)).toContain('407');
    expect(String(failure?.message)).not.toContain('bad-Pw-77');
  });

  test('NO_PROXY match → direct connection; squid never sees it', async () => {
    const before = squid.accessLog();
    const proxy = await through(`http://127.0.0.1:${port(plain)}/`, {
      http: proxyUrl(),
      noProxy: ['127.0.0.0/8'],
    });
    expect((await request(proxy.port, '/direct')).status).toBe(200);
    expect(squid.accessLog()).toBe(before);
  });

  test('proxy down → 503 Egress Proxy naming it', async () => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    for (const target of [`http://127.0.0.1:${port(plain)}/`, `https://localhost:${port(secure)}/`]) {
      const proxy = await through(target, { http: down });
      const res = await request(proxy.port, '/');
      expect(res.status).toBe(503);
      expect(res.headers['x-error-origin']).toBe('Egress Proxy');
      expect(res.headers['x-error-message']).toMatch(
        /the egress proxy http:\/\/127\.0\.0\.1:\d+ .*refused the connection/,
      );
    }
  });

  test('squid cannot reach the https target (CONNECT 503) → 503 Egress Proxy', async () => {
    const proxy = await through(`https://localhost:${await closedPort()}/`, { http: proxyUrl() });
    const res = await request(proxy.port, '/');
    expect(res.status).toBe(503);
    expect(res.headers['x-error-origin']).toBe('Egress Proxy');
    expect(res.headers['x-error-message']).toMatch(/could not reach the target \(50[234]\)/);
  });
});

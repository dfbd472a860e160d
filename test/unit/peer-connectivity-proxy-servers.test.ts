// The connectivity proxy stand-in over loopback sockets, with raw bytes: every HTTP status and SOCKS5
// reply it produces, principal propagation, per-connection identity binding, counters and its CLI.
// Tokens come from the real OAuth server (oidc-provider, JWT format) through its JWKS endpoint;
// expired tokens are signed here with a key the proxy also trusts.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { main, parseCliConfig } from '../peers/connectivity-proxy-cli.js';
import {
  type ConnectivityProxy,
  connectivityServiceKey,
  startConnectivityProxy,
} from '../peers/connectivity-proxy.js';
import { buildConnectRequest, buildJwtAuthFrame } from '../peers/connectivity-socks5.js';
import { type EchoUpstream, startEchoUpstream } from '../peers/echo-upstream.js';
import { KeySet } from '../peers/jwt.js';
import { type OAuthServer, startOAuthServer } from '../peers/oauth-server.js';
import { probe } from '../peers/socks5-probe-cli.js';

let oauth: OAuthServer;
let echo: EchoUpstream;
let cp: ConnectivityProxy;
let cpStrictConnect: ConnectivityProxy;
let cpTrusted: ConnectivityProxy;
let closedPort: number;
const tokens: Record<string, string> = {};

async function token(client: string, form: Record<string, string>): Promise<string> {
  const res = await fetch(oauth.tokenUrl, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${client}:${client}-secret`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams(form).toString(),
  });
  const json = (await res.json()) as { access_token?: string };
  if (!json.access_token) throw new Error(`no token for ${client}`);
  return json.access_token;
}

/** Writes `data` (chunks one after the other) and collects everything until the peer closes or `ms` pass. */
function exchange(port: number, data: Buffer | string | (Buffer | string)[], ms = 3000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port }, () => {
      for (const d of Array.isArray(data) ? data : [data]) socket.write(d);
    });
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** Like exchange, and says whether the peer ended the connection (rather than our timeout). */
function exchangeUntilEnd(
  port: number,
  data: Buffer,
  ms = 5000,
): Promise<{ data: Buffer; peerEnded: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let peerEnded = false;
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(data));
    const timer = setTimeout(() => socket.destroy(), ms);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => (peerEnded = true));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), peerEnded });
    });
  });
}

const request = (target: string, headers: Record<string, string> = {}, method = 'GET'): string =>
  `${method} ${target} HTTP/1.1\r\nHost: x\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}Connection: close\r\n\r\n`;

const statusOf = (raw: Buffer): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw.toString())?.[1] ?? 0);
const auth = (t: string) => ({ 'Proxy-Authorization': `Bearer ${t}` });

const testKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
function signed(payload: object): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'test-key' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${crypto.sign('sha256', Buffer.from(input), testKey.privateKey).toString('base64url')}`;
}

beforeAll(async () => {
  oauth = await startOAuthServer({
    zoneId: 'tenant-a',
    clients: [
      {
        clientId: 'cp',
        clientSecret: 'cp-secret',
        accessTokenFormat: 'jwt',
      },
      { clientId: 'app', clientSecret: 'app-secret', grantTypes: ['password'], accessTokenFormat: 'jwt' },
      {
        clientId: 'tech',
        clientSecret: 'tech-secret',
        grantTypes: ['client_credentials'],
        accessTokenFormat: 'jwt',
      },
      { clientId: 'opaque', clientSecret: 'opaque-secret', grantTypes: ['client_credentials'] },
      {
        clientId: 'foreign',
        clientSecret: 'foreign-secret',
        grantTypes: ['password'],
        accessTokenFormat: 'jwt',
        zoneId: 'tenant-b',
      },
    ],
    users: [
      { username: 'alice', password: 'alice-pw' },
      { username: 'bob', password: 'bob-pw' },
    ],
  });
  echo = await startEchoUpstream({ host: '127.0.0.1' });
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  closedPort = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));

  const locations = {
    '': {
      systems: [
        { virtualHost: 'erp.internal', virtualPort: 80, internalHost: '127.0.0.1', internalPort: echo.port },
        {
          virtualHost: 'limited.internal',
          virtualPort: 80,
          internalHost: '127.0.0.1',
          internalPort: echo.port,
          paths: ['/api'],
        },
        {
          virtualHost: 'gone.internal',
          virtualPort: 80,
          internalHost: '127.0.0.1',
          internalPort: closedPort,
        },
        {
          virtualHost: 'tcp.internal',
          virtualPort: 7000,
          internalHost: '127.0.0.1',
          internalPort: echo.port,
          protocol: 'tcp' as const,
        },
        {
          virtualHost: '10.1.2.3',
          virtualPort: 7000,
          internalHost: '127.0.0.1',
          internalPort: echo.port,
          protocol: 'tcp' as const,
        },
        {
          virtualHost: 'tcp-gone.internal',
          virtualPort: 7001,
          internalHost: '127.0.0.1',
          internalPort: closedPort,
          protocol: 'tcp' as const,
        },
      ],
    },
    'cloud-sdk-js': {
      systems: [
        { virtualHost: 'erp.internal', virtualPort: 80, internalHost: '127.0.0.1', internalPort: echo.port },
      ],
    },
    offline: { connected: false, systems: [] },
  };
  const jwks = (await (await fetch(oauth.jwksUrl)).json()) as { keys: object[] };
  expect(jwks.keys).toHaveLength(1);
  cp = await startConnectivityProxy({
    jwksUrl: oauth.jwksUrl,
    clientIds: ['cp', 'tech'],
    locations,
    adminPort: 0,
  });
  cpStrictConnect = await startConnectivityProxy({
    keys: [...oauth.publicKeys(), { ...testKey.publicKey.export({ format: 'jwk' }), kid: 'test-key' }],
    clientIds: ['cp'],
    locations,
    socksAuthFailure: 'connect',
  });
  cpTrusted = await startConnectivityProxy({
    jwksUrl: oauth.jwksUrl,
    clientIds: ['cp'],
    locations,
    trusted: true,
  });
  tokens.cp = await token('cp', { grant_type: 'client_credentials' });
  tokens.tech = await token('tech', { grant_type: 'client_credentials' });
  tokens.opaque = await token('opaque', { grant_type: 'client_credentials' });
  tokens.alice = await token('app', { grant_type: 'password', username: 'alice', password: 'alice-pw' });
  tokens.bob = await token('app', { grant_type: 'password', username: 'bob', password: 'bob-pw' });
  tokens.foreignUser = await token('foreign', {
    grant_type: 'password',
    username: 'alice',
    password: 'alice-pw',
  });
  tokens.appAsProxyToken = tokens.alice;
  tokens.cpForAlice = await token('cp', { grant_type: 'password', username: 'alice', password: 'alice-pw' });
});

afterAll(async () => {
  await Promise.all([cp?.stop(), cpStrictConnect?.stop(), cpTrusted?.stop(), echo?.close(), oauth?.stop()]);
});

describe('HTTP port', () => {
  test('a valid token: forwarded to the internal host, proxy and SAP headers stripped', async () => {
    const raw = await exchange(
      cp.httpPort,
      request('http://erp.internal/orders?x=1', { ...auth(tokens.cp!), 'X-Custom': 'kept' }),
    );
    expect(statusOf(raw)).toBe(200);
    const seen = echo.requests.at(-1)!;
    expect(seen.path).toBe('/orders?x=1');
    const names = seen.headers.map(([n]) => n.toLowerCase());
    expect(names).toContain('x-custom');
    expect(names.filter((n) => n.startsWith('proxy-') || n.startsWith('sap-connectivity'))).toEqual([]);
    expect(echo.lastHeader('host')).toEqual([`127.0.0.1:${echo.port}`]);
    expect(echo.lastHeader('x-onprem-principal')).toEqual([]);
  });

  test('405: CONNECT and https:// URLs, with the reason in the body', async () => {
    const connect = await exchange(
      cp.httpPort,
      'CONNECT erp.internal:443 HTTP/1.1\r\nHost: erp.internal:443\r\n\r\n',
    );
    expect(statusOf(connect)).toBe(405);
    expect(connect.toString()).toContain('CONNECT is not supported');
    const https = await exchange(cp.httpPort, request('https://erp.internal/', auth(tokens.cp!)));
    expect(statusOf(https)).toBe(405);
    expect(https.toString()).toContain('https:// URLs are not supported');
  });

  test('400: origin-form request target', async () => {
    expect(statusOf(await exchange(cp.httpPort, request('/orders', auth(tokens.cp!))))).toBe(400);
  });

  test.each([
    ['no Proxy-Authorization', () => ({}), 'no Bearer token'],
    [
      'Basic instead of Bearer',
      () => ({ 'Proxy-Authorization': 'Basic Y3A6Y3Atc2VjcmV0' }),
      'no Bearer token',
    ],
    ['an opaque token', () => auth(tokens.opaque!), '3 dot-separated parts'],
    ['a tampered token', () => auth(`${tokens.cp!.slice(0, -6)}AAAAAA`), 'does not verify'],
    ['a token of another client', () => auth(tokens.appAsProxyToken!), 'not a connectivity service client'],
    [
      'a token signed by an unknown key',
      () => auth(signed({ exp: 9999999999, cid: 'cp' })),
      'no RSA signing key',
    ],
  ])('407 for %s, with Proxy-Authenticate', async (_what, headers, reason) => {
    const raw = (await exchange(cp.httpPort, request('http://erp.internal/', headers()))).toString();
    expect(statusOf(Buffer.from(raw))).toBe(407);
    expect(raw).toMatch(/^proxy-authenticate: Bearer realm="connectivity-proxy"$/im);
    expect(raw).toContain(reason);
  });

  test('407 for an expired token (and the token is not echoed)', async () => {
    const expired = signed({ exp: Math.floor(Date.now() / 1000) - 300, cid: 'cp' });
    const raw = (
      await exchange(cpStrictConnect.httpPort, request('http://erp.internal/', auth(expired)))
    ).toString();
    expect(statusOf(Buffer.from(raw))).toBe(407);
    expect(raw).toContain('expired');
    expect(raw).not.toContain(expired.split('.')[1]!);
  });

  test('503: unknown location id, disconnected Cloud Connector; location header selects', async () => {
    const h = (loc: string) => ({ ...auth(tokens.cp!), 'SAP-Connectivity-SCC-Location_ID': loc });
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal/', h('nowhere'))))).toBe(503);
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal/', h('offline'))))).toBe(503);
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal/', h('cloud-sdk-js'))))).toBe(
      200,
    );
    cp.setConnected('cloud-sdk-js', false);
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal/', h('cloud-sdk-js'))))).toBe(
      503,
    );
    cp.setConnected('cloud-sdk-js', true);
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal/', h('cloud-sdk-js'))))).toBe(
      200,
    );
  });

  test('403: host not in the access control, path not exposed, a TCP system', async () => {
    const h = auth(tokens.cp!);
    expect(statusOf(await exchange(cp.httpPort, request('http://unknown.internal/', h)))).toBe(403);
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal:81/', h)))).toBe(403);
    expect(statusOf(await exchange(cp.httpPort, request('http://limited.internal/private', h)))).toBe(403);
    expect(statusOf(await exchange(cp.httpPort, request('http://limited.internal/api/x', h)))).toBe(200);
    expect(statusOf(await exchange(cp.httpPort, request('http://tcp.internal:7000/', h)))).toBe(403);
  });

  test('request bodies are streamed to the backend', async () => {
    const body = 'x'.repeat(100_000);
    const raw = await exchange(
      cp.httpPort,
      `POST http://erp.internal/upload HTTP/1.1\r\nHost: e\r\nProxy-Authorization: Bearer ${tokens.cp}\r\n` +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(statusOf(raw)).toBe(200);
    expect(raw.toString()).toContain('{"bytes":100000}');
  });

  test('WebSocket upgrade: admitted like a request, then the bytes flow both ways', async () => {
    const upgrade = (token: string) =>
      `GET http://erp.internal/ws HTTP/1.1\r\nHost: erp.internal\r\nProxy-Authorization: Bearer ${token}\r\n` +
      'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
    const mask = Buffer.from([1, 2, 3, 4]);
    const payload = Buffer.from('hello');
    const frame = Buffer.concat([
      Buffer.from([0x81, 0x80 | payload.length]),
      mask,
      Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!)),
    ]);
    const raw = await exchange(cp.httpPort, [upgrade(tokens.cp!), frame], 1500);
    const text = raw.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 101 /);
    expect(text).toContain('s3pPLMBiTxaQ9kYGzzhZRbK+xOo='); // RFC 6455's example accept value
    expect(text.endsWith('\x81\x05hello')).toBe(true);
    expect(echo.lastHeader('proxy-authorization')).toEqual([]);

    const refused = await exchange(cp.httpPort, upgrade('x.y.z'));
    expect(statusOf(refused)).toBe(407);
    expect(refused.toString()).toMatch(/^proxy-authenticate: Bearer/im);
  });

  test('502: the backend refuses', async () => {
    expect(statusOf(await exchange(cp.httpPort, request('http://gone.internal/', auth(tokens.cp!))))).toBe(
      502,
    );
  });

  test('principal propagation: user and technical user', async () => {
    const user = await exchange(
      cp.httpPort,
      request('http://erp.internal/me', {
        ...auth(tokens.cp!),
        'SAP-Connectivity-Authentication': `Bearer ${tokens.alice}`,
      }),
    );
    expect(statusOf(user)).toBe(200);
    expect(echo.lastHeader('x-onprem-principal')).toEqual(['alice']);
    expect(echo.lastHeader('x-onprem-principal-type')).toEqual(['user']);
    expect(echo.lastHeader('x-onprem-tenant')).toEqual(['tenant-a']);
    expect(echo.lastHeader('sap-connectivity-authentication')).toEqual([]);
    const tech = await exchange(
      cp.httpPort,
      request('http://erp.internal/me', {
        ...auth(tokens.cp!),
        'SAP-Connectivity-Technical-Authentication': `Bearer ${tokens.tech}`,
      }),
    );
    expect(statusOf(tech)).toBe(200);
    expect(echo.lastHeader('x-onprem-principal')).toEqual(['tech']);
    expect(echo.lastHeader('x-onprem-principal-type')).toEqual(['technical']);
  });

  test('a user exchanged into the proxy token is propagated; then SAP-Connectivity-Authentication is refused', async () => {
    const ok = await exchange(cp.httpPort, request('http://erp.internal/me', auth(tokens.cpForAlice!)));
    expect(statusOf(ok)).toBe(200);
    expect(echo.lastHeader('x-onprem-principal')).toEqual(['alice']);
    const both = await exchange(
      cp.httpPort,
      request('http://erp.internal/me', {
        ...auth(tokens.cpForAlice!),
        'SAP-Connectivity-Authentication': `Bearer ${tokens.alice}`,
      }),
    );
    expect(statusOf(both)).toBe(400);
    expect(both.toString()).toContain('must not be sent');
  });

  test('400: an Authorization header together with principal or technical user propagation', async () => {
    const propagation: Record<string, string>[] = [
      { 'SAP-Connectivity-Authentication': `Bearer ${tokens.alice}` },
      { 'SAP-Connectivity-Technical-Authentication': `Bearer ${tokens.tech}` },
    ];
    for (const h of propagation) {
      const raw = await exchange(
        cp.httpPort,
        request('http://erp.internal/', { ...auth(tokens.cp!), ...h, Authorization: 'Basic dTpw' }),
      );
      expect(statusOf(raw)).toBe(400);
      expect(raw.toString()).toContain('Authorization header must be omitted');
    }
    // without propagation the Authorization header is the backend's business and passes through
    expect(
      statusOf(
        await exchange(
          cp.httpPort,
          request('http://erp.internal/', { ...auth(tokens.cp!), Authorization: 'Basic dTpw' }),
        ),
      ),
    ).toBe(200);
    expect(echo.lastHeader('authorization')).toEqual(['Basic dTpw']);
  });

  test('401: bad user token, other tenant; 400: both propagation headers', async () => {
    const send = (h: Record<string, string>) =>
      exchange(cp.httpPort, request('http://erp.internal/', { ...auth(tokens.cp!), ...h }));
    expect(statusOf(await send({ 'SAP-Connectivity-Authentication': 'Bearer nope' }))).toBe(401);
    expect(statusOf(await send({ 'SAP-Connectivity-Authentication': tokens.alice! }))).toBe(401);
    const foreign = await send({ 'SAP-Connectivity-Authentication': `Bearer ${tokens.foreignUser}` });
    expect(statusOf(foreign)).toBe(401);
    expect(foreign.toString()).toContain('tenant-b');
    const both = await send({
      'SAP-Connectivity-Authentication': `Bearer ${tokens.alice}`,
      'SAP-Connectivity-Technical-Authentication': `Bearer ${tokens.tech}`,
    });
    expect(statusOf(both)).toBe(400);
  });

  test('identity binding: one connection, same user twice → fine; another user → refused, counted', async () => {
    const keepAlive = (user: string) =>
      `GET http://erp.internal/ HTTP/1.1\r\nHost: erp.internal\r\nProxy-Authorization: Bearer ${tokens.cp}\r\n` +
      `SAP-Connectivity-Authentication: Bearer ${tokens[user]}\r\n\r\n`;
    const before = cp.stats().violations;
    const same = (await exchange(cp.httpPort, [keepAlive('alice'), keepAlive('alice')], 1500)).toString();
    expect(same.match(/^HTTP\/1\.1 200/gm)).toHaveLength(2);
    expect(cp.stats().violations).toBe(before);

    const mixed = (await exchange(cp.httpPort, [keepAlive('alice'), keepAlive('bob')], 1500)).toString();
    expect(mixed.match(/^HTTP\/1\.1 \d{3}/gm)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 403']);
    expect(mixed).toContain('identity binding violation');
    expect(cp.stats().violations).toBe(before + 1);

    // Separate connections per user are what a correct client does.
    expect(statusOf(await exchange(cp.httpPort, keepAlive('bob'), 1500))).toBe(200);
    expect(cp.stats().violations).toBe(before + 1);
  });

  test('each client connection gets its own backend connection', async () => {
    const before = echo.connections();
    const twice =
      `GET http://erp.internal/a HTTP/1.1\r\nHost: e\r\nProxy-Authorization: Bearer ${tokens.cp}\r\n\r\n` +
      `GET http://erp.internal/b HTTP/1.1\r\nHost: e\r\nProxy-Authorization: Bearer ${tokens.cp}\r\n\r\n`;
    await exchange(cp.httpPort, twice, 1500);
    expect(echo.connections() - before).toBe(1);
    await exchange(cp.httpPort, request('http://erp.internal/c', auth(tokens.cp!)));
    expect(echo.connections() - before).toBe(2);
  });

  test('counters: in-process and at GET /_peer/stats; PUT /_peer/locations/<id>', async () => {
    const stats = cp.stats();
    expect(stats.requests).toBeGreaterThan(stats.forwarded);
    expect(stats.byStatus['407']).toBeGreaterThanOrEqual(6);
    expect(stats.byLocation['cloud-sdk-js']).toBeGreaterThanOrEqual(2);
    expect(stats.byPrincipal.alice).toBeGreaterThanOrEqual(3);
    const remote = (await (
      await fetch(`http://127.0.0.1:${cp.adminPort}/_peer/stats`)
    ).json()) as typeof stats;
    expect(remote.violations).toBe(stats.violations);
    const put = (body: string) =>
      fetch(`http://127.0.0.1:${cp.adminPort}/_peer/locations/cloud-sdk-js`, { method: 'PUT', body });
    expect((await put('{"connected":false}')).status).toBe(204);
    const h = { ...auth(tokens.cp!), 'SAP-Connectivity-SCC-Location_ID': 'cloud-sdk-js' };
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal/', h)))).toBe(503);
    expect((await put('{"connected":true}')).status).toBe(204);
    expect((await put('{"connected":"yes"}')).status).toBe(400);
    expect(statusOf(await exchange(cp.httpPort, request('http://erp.internal/', h)))).toBe(200);
  });
});

describe('SOCKS5 port', () => {
  const session = (
    o: { jwt?: string; location?: string; host?: string; port?: number; send?: Buffer },
    p = cp,
  ) =>
    probe({
      proxyHost: '127.0.0.1',
      proxyPort: p.socksPort,
      host: o.host ?? 'tcp.internal',
      port: o.port ?? 7000,
      jwt: o.jwt ?? tokens.cp!,
      ...(o.location !== undefined ? { locationId: o.location } : {}),
      ...(o.send ? { send: o.send, readMs: 1500 } : {}),
    });

  test('success: 05 80, 01 00, 05 00 ..., then the bytes are piped (by domain and by IPv4)', async () => {
    const http = Buffer.from('GET /via-socks HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const r = await session({ send: http });
    expect(r).toMatchObject({ method: '80', auth: '0100', reply: '00', replyName: 'SUCCESS' });
    expect(Buffer.from(r.received!, 'hex').toString()).toMatch(/^HTTP\/1\.1 200/);
    expect(echo.requests.at(-1)!.path).toBe('/via-socks');
    const byIp = await session({ host: '10.1.2.3', send: http });
    expect(byIp.reply).toBe('00');
  });

  test('raw bytes: the reply to a CONNECT and pipelined data in the same write', async () => {
    const greeting = Buffer.from([0x05, 0x01, 0x80]);
    const all = Buffer.concat([
      greeting,
      buildJwtAuthFrame(tokens.cp!),
      buildConnectRequest('tcp.internal', 7000),
      Buffer.from('GET /pipelined HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'),
    ]);
    const raw = await exchange(cp.socksPort, all, 2000);
    expect(raw.subarray(0, 4)).toEqual(Buffer.from([0x05, 0x80, 0x01, 0x00]));
    expect(raw.subarray(4, 8)).toEqual(Buffer.from([0x05, 0x00, 0x00, 0x01]));
    expect(raw.subarray(14).toString()).toMatch(/^HTTP\/1\.1 200/);
  });

  test('a client that half-closes after its request still gets the whole answer', async () => {
    const all = Buffer.concat([
      Buffer.from([0x05, 0x01, 0x80]),
      buildJwtAuthFrame(tokens.cp!),
      buildConnectRequest('tcp.internal', 7000),
      // keep-alive: only the client's half-close can make the backend close
      Buffer.from('GET /bytes/200000 HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n'),
    ]);
    const received = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      const socket = net.connect({ host: '127.0.0.1', port: cp.socksPort, allowHalfOpen: true }, () =>
        socket.end(all),
      );
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('error', () => {});
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    const http = received.subarray(14).toString('latin1');
    expect(http).toMatch(/^HTTP\/1\.[01] 200/);
    expect(http.length - http.indexOf('\r\n\r\n') - 4).toBe(200_000);
  });

  test('a location id in the frame selects the Cloud Connector; unknown or disconnected → 0x03', async () => {
    expect(await session({ location: 'nowhere' })).toMatchObject({ auth: '0100', reply: '03' });
    expect(await session({ location: 'offline' })).toMatchObject({
      reply: '03',
      replyName: 'NETWORK_UNREACHABLE',
    });
    // cloud-sdk-js exists but has no tcp.internal mapping → 0x02
    expect(await session({ location: 'cloud-sdk-js' })).toMatchObject({ reply: '02' });
  });

  test('access control denies → 0x02; backend refuses → 0x04', async () => {
    expect(await session({ host: 'erp.internal', port: 80 })).toMatchObject({
      reply: '02',
      replyName: 'FORBIDDEN',
    });
    expect(await session({ host: 'tcp.internal', port: 7999 })).toMatchObject({ reply: '02' });
    expect(await session({ host: 'tcp-gone.internal', port: 7001 })).toMatchObject({
      reply: '04',
      replyName: 'HOST_UNREACHABLE',
    });
  });

  test('token not accepted → 01 01 and closed (default) or 0x05 at CONNECT (socksAuthFailure: connect)', async () => {
    expect(await session({ jwt: tokens.alice! })).toMatchObject({ method: '80', auth: '0101' });
    const raw = await exchangeUntilEnd(
      cp.socksPort,
      Buffer.concat([Buffer.from([0x05, 0x01, 0x80]), buildJwtAuthFrame(tokens.alice!)]),
    );
    expect(raw).toEqual({ data: Buffer.from([0x05, 0x80, 0x01, 0x01]), peerEnded: true });
    expect(await session({ jwt: 'not-a-jwt' })).toMatchObject({ auth: '0101' });
    const expired = signed({ exp: Math.floor(Date.now() / 1000) - 300, cid: 'cp' });
    expect(await session({ jwt: expired }, cpStrictConnect)).toMatchObject({
      auth: '0100',
      reply: '05',
      replyName: 'CONNECTION_REFUSED',
    });
    expect(cpStrictConnect.stats().socksReplies.CONNECTION_REFUSED).toBe(1);
  });

  test("SAP's known-good 177-byte frame, built by hand, is read as a frame (its fake JWT then fails: 01 01)", async () => {
    const fakeJwt = `eyJhbGciOiJSUzI1NiJ9.${'a'.repeat(123)}.${'s'.repeat(10)}`;
    expect(fakeJwt).toHaveLength(155);
    const frame = Buffer.concat([
      Buffer.from([0x01, 0x00, 0x00, 0x00, 0x9b]),
      Buffer.from(fakeJwt, 'latin1'),
      Buffer.from([0x10]),
      Buffer.from('Y2xvdWQtc2RrLWpz', 'latin1'),
    ]);
    expect(frame).toHaveLength(177);
    const answer = await exchangeUntilEnd(
      cp.socksPort,
      Buffer.concat([Buffer.from([0x05, 0x01, 0x80]), frame]),
    );
    expect(answer).toEqual({ data: Buffer.from([0x05, 0x80, 0x01, 0x01]), peerEnded: true });
    // the same frame one byte short is incomplete: no answer to it until the client gives up
    const short = await exchange(
      cp.socksPort,
      Buffer.concat([Buffer.from([0x05, 0x01, 0x80]), frame.subarray(0, 176)]),
      500,
    );
    expect(short).toEqual(Buffer.from([0x05, 0x80]));
  });

  test('method 0x80 not offered → 05 FF and closed', async () => {
    expect(await exchange(cp.socksPort, Buffer.from([0x05, 0x02, 0x00, 0x02]))).toEqual(
      Buffer.from([0x05, 0xff]),
    );
  });

  test('malformed input is closed without an answer: SOCKS4, bad sub-negotiation version', async () => {
    expect(await exchange(cp.socksPort, Buffer.from([0x04, 0x01, 0x00, 0x50, 1, 2, 3, 4, 0]))).toEqual(
      Buffer.alloc(0),
    );
    const badFrame = Buffer.concat([
      Buffer.from([0x05, 0x01, 0x80]),
      Buffer.from([0x02, 0, 0, 0, 1, 0x41, 0]),
    ]);
    expect(await exchange(cp.socksPort, badFrame)).toEqual(Buffer.from([0x05, 0x80]));
  });

  test('BIND → 0x07, IPv6 → 0x08, unknown address type → 0x08', async () => {
    const head = Buffer.concat([Buffer.from([0x05, 0x01, 0x80]), buildJwtAuthFrame(tokens.cp!)]);
    const bind = await exchange(cp.socksPort, [
      head,
      Buffer.from([0x05, 0x02, 0x00, 0x01, 10, 1, 2, 3, 0x1b, 0x58]),
    ]);
    expect(bind.subarray(4, 6)).toEqual(Buffer.from([0x05, 0x07]));
    const v6 = Buffer.concat([
      Buffer.from([0x05, 0x01, 0x00, 0x04]),
      Buffer.alloc(15),
      Buffer.from([1, 0x1b, 0x58]),
    ]);
    expect((await exchange(cp.socksPort, [head, v6])).subarray(4, 6)).toEqual(Buffer.from([0x05, 0x08]));
    const odd = Buffer.from([0x05, 0x01, 0x00, 0x07, 1, 2]);
    expect((await exchange(cp.socksPort, [head, odd])).subarray(4, 6)).toEqual(Buffer.from([0x05, 0x08]));
  });

  test('sessions and replies are counted', () => {
    const s = cp.stats();
    expect(s.socksSessions).toBeGreaterThanOrEqual(10);
    expect(s.socksReplies.SUCCESS).toBeGreaterThanOrEqual(3);
    expect(s.socksReplies.NETWORK_UNREACHABLE).toBe(2);
    expect(s.socksReplies.COMMAND_UNSUPPORTED).toBe(1);
  });
});

describe('trusted mode (no proxy authorization)', () => {
  test('HTTP without Proxy-Authorization is forwarded; a bad token is still refused', async () => {
    expect(statusOf(await exchange(cpTrusted.httpPort, request('http://erp.internal/trusted')))).toBe(200);
    expect(echo.requests.at(-1)!.path).toBe('/trusted');
    expect(statusOf(await exchange(cpTrusted.httpPort, request('http://erp.internal/', auth('x.y.z'))))).toBe(
      407,
    );
  });

  test('SOCKS5 method 0x00 is accepted, and 0x80 still works', async () => {
    const raw = await exchange(cpTrusted.socksPort, [
      Buffer.from([0x05, 0x01, 0x00]),
      buildConnectRequest('tcp.internal', 7000),
      Buffer.from('GET /trusted-socks HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n'),
    ]);
    expect(raw.subarray(0, 4)).toEqual(Buffer.from([0x05, 0x00, 0x05, 0x00]));
    expect(raw.subarray(12).toString()).toMatch(/^HTTP\/1\.1 200/);
    const jwt = await probe({
      proxyHost: '127.0.0.1',
      proxyPort: cpTrusted.socksPort,
      host: 'tcp.internal',
      port: 7000,
      jwt: tokens.cp!,
    });
    expect(jwt).toMatchObject({ method: '80', auth: '0100', reply: '00' });
  });
});

describe('service key', () => {
  test('a connectivity service key as BTP hands it out', () => {
    expect(
      connectivityServiceKey({
        tokenServiceUrl: 'http://198.51.100.10:9000/oauth/token',
        clientId: 'cp',
        clientSecret: 'cp-secret',
        proxyHost: '198.51.100.11',
        httpPort: 20003,
        socksPort: 20004,
      }),
    ).toEqual({
      clientid: 'cp',
      clientsecret: 'cp-secret',
      url: 'http://198.51.100.10:9000',
      token_service_url: 'http://198.51.100.10:9000',
      onpremise_proxy_host: '198.51.100.11',
      onpremise_proxy_port: '20003',
      onpremise_proxy_http_port: '20003',
      onpremise_socks5_proxy_port: '20004',
    });
  });
});

describe('CLI', () => {
  const config = { keys: [], clientIds: ['cp'], locations: { '': { systems: [] } } };

  test('bad config → exit 2 naming the field; JSON errors named', async () => {
    const err: string[] = [];
    const io = { out: () => {}, err: (l: string) => err.push(l) };
    expect((await main([JSON.stringify({ ...config, clientIds: 'cp' })], io)).exitCode).toBe(2);
    expect((await main(['{nope'], io)).exitCode).toBe(2);
    expect((await main([], io)).exitCode).toBe(2);
    expect(err[0]).toContain('config.clientIds');
    expect(err[1]).toContain('not JSON');
    expect(err[2]).toContain('usage');
    expect(() => parseCliConfig(['--config'])).toThrow('needs a file name');
  });

  test('good config → prints the ports and serves', async () => {
    const out: string[] = [];
    const { proxy, exitCode } = await main([JSON.stringify({ ...config, adminPort: 0 })], {
      out: (l) => out.push(l),
      err: () => {},
    });
    expect(exitCode).toBe(0);
    expect(out[0]).toMatch(/^connectivity-proxy ready http=\d+ socks5=\d+ admin=\d+$/);
    expect(statusOf(await exchange(proxy!.httpPort, request('http://a/')))).toBe(407);
    await proxy!.stop();
  });
});

describe('token service keys (JWKS)', () => {
  test('an unknown kid refetches the JWKS (key rotation); an unreachable JWKS is named', async () => {
    const k1 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const k2 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = (k: typeof k1, kid: string) => ({
      ...k.publicKey.export({ format: 'jwk' }),
      kid,
      use: 'sig',
    });
    let served: object[] = [jwk(k1, 'one')];
    let fetches = 0;
    let failing = false;
    const jwksServer = http.createServer((_req, res) => {
      fetches++;
      if (failing) return void res.writeHead(500).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: served }));
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(jwksServer.address() as net.AddressInfo).port}/jwks`;
    const sign = (k: typeof k1, kid: string) => {
      const input = `${Buffer.from(JSON.stringify({ alg: 'RS256', kid })).toString('base64url')}.${Buffer.from(JSON.stringify({ exp: 9999999999, cid: 'cp' })).toString('base64url')}`;
      return `${input}.${crypto.sign('sha256', Buffer.from(input), k.privateKey).toString('base64url')}`;
    };
    try {
      const keys = new KeySet({ url }, 0);
      await expect(keys.verify(sign(k1, 'one'))).resolves.toMatchObject({ cid: 'cp' });
      expect(fetches).toBe(1);
      await keys.verify(sign(k1, 'one'));
      expect(fetches).toBe(1); // known kid: no refetch
      served = [jwk(k2, 'two')];
      await expect(keys.verify(sign(k2, 'two'))).resolves.toMatchObject({ cid: 'cp' });
      expect(fetches).toBe(2);
      failing = true;
      await expect(keys.verify(sign(k1, 'three'))).rejects.toThrow(`JWKS ${url} answered 500`);

      const proxy = await startConnectivityProxy({
        jwksUrl: url,
        clientIds: ['cp'],
        locations: { '': { systems: [] } },
      });
      try {
        const raw = (await exchange(proxy.httpPort, request('http://a/', auth(sign(k2, 'two'))))).toString();
        expect(statusOf(Buffer.from(raw))).toBe(407);
        expect(raw).toContain('token service keys unavailable');
      } finally {
        await proxy.stop();
      }
    } finally {
      await new Promise<void>((r) => jwksServer.close(() => r()));
    }
  });
});

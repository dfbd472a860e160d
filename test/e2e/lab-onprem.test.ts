// The on-premise world of the lab: an `onprem` namespace reachable from `net` only, the connectivity
// proxy stand-in in `net` in front of it (with oidc-provider issuing its JWTs), and real servers in
// onprem (nginx, the echo upstream, PostgreSQL). Clients run in `app`, where the dataplane will run.
// Needs root (creates network namespaces).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { startPostgres, type PostgresServer } from '../lab/postgres.js';
import { listNamespaces } from '../lab/teardown.js';
import { REPO } from './helpers.js';

const OAUTH = '198.51.100.10';
const CP = '198.51.100.11';
const SECRETS = {
  cp: 'cp-SECRET-123',
  app: 'app-SECRET-456',
  other: 'other-SECRET-789',
  alice: 'alice-PW-1',
  bob: 'bob-PW-2',
};

let lab: Lab;
let pg: PostgresServer;
const peers: Background[] = [];
let cpToken: string;
let aliceJwt: string;
let otherToken: string;

const peer = (ns: 'net' | 'onprem', script: string, args: string[], env?: Record<string, string>) => {
  const bg = lab.spawn(
    ns,
    ['node', join(REPO, 'dist', 'test', 'peers', script), ...args],
    env ? { env } : {},
  );
  peers.push(bg);
  return bg;
};

async function fetchToken(
  client: string,
  secret: string,
  form: string[] = ['grant_type=client_credentials'],
) {
  const args = ['curl', '-sS', '-u', `${client}:${secret}`, ...form.flatMap((f) => ['-d', f])];
  const out = await lab.run('net', [...args, `http://${OAUTH}:9000/oauth/token`]);
  const token = (JSON.parse(out.stdout) as { access_token?: string }).access_token;
  if (!token) throw new Error(`no token for ${client}: ${out.stdout}`);
  return token;
}

/** curl in `app` through the proxy's HTTP port; returns status, headers and body. */
async function viaProxy(url: string, headers: string[] = [], extra: string[] = []) {
  const argv = ['curl', '-sS', '-i', '--max-time', '10', '-x', `http://${CP}:20003`, ...extra];
  for (const h of headers) argv.push('-H', h);
  const r = await lab.run('app', [...argv, url], { reject: false });
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/m.exec(r.stdout)?.[1] ?? 0);
  return { status, text: r.stdout, stderr: r.stderr };
}

async function socksProbe(
  host: string,
  port: number,
  opts: { jwt: string; location?: string; send?: string },
) {
  const args = [CP, '20004', host, String(port)];
  if (opts.location !== undefined) args.push('--location', opts.location);
  if (opts.send) args.push('--send', opts.send);
  const r = await lab.run(
    'app',
    ['node', join(REPO, 'dist', 'test', 'peers', 'socks5-probe-cli.js'), ...args],
    {
      env: { CP_JWT: opts.jwt },
    },
  );
  return JSON.parse(r.stdout) as {
    method?: string;
    auth?: string;
    reply?: string;
    replyName?: string;
    received?: string;
  };
}

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab({ onprem: true });
  const o = lab.addr.onpremV4;
  await lab.startHttpServer({ ns: 'onprem', port: 80, body: 'onprem-erp' });
  const echo = peer('onprem', 'echo-upstream-cli.js', [o, '8080']);
  pg = await startPostgres(lab, 'onprem');
  const oauth = peer('net', 'oauth-server-cli.js', [
    JSON.stringify({
      host: OAUTH,
      port: 9000,
      zoneId: 'tenant-a',
      clients: [
        {
          clientId: 'cp-client',
          clientSecret: SECRETS.cp,
          grantTypes: ['client_credentials'],
          accessTokenFormat: 'jwt',
        },
        {
          clientId: 'app-client',
          clientSecret: SECRETS.app,
          grantTypes: ['password'],
          accessTokenFormat: 'jwt',
        },
        {
          clientId: 'other-client',
          clientSecret: SECRETS.other,
          grantTypes: ['client_credentials'],
          accessTokenFormat: 'jwt',
        },
      ],
      users: [
        { username: 'alice', password: SECRETS.alice },
        { username: 'bob', password: SECRETS.bob },
      ],
    }),
  ]);
  await echo.waitFor(/echo ready/, 15000);
  await oauth.waitFor(/oauth ready/, 15000);
  const erp = { virtualHost: 'erp.internal', virtualPort: 80, internalHost: o, internalPort: 80 };
  const cp = peer('net', 'connectivity-proxy-cli.js', [
    JSON.stringify({
      host: CP,
      httpPort: 20003,
      socksPort: 20004,
      adminPort: 20005,
      jwksUrl: `http://${OAUTH}:9000/jwks`,
      clientIds: ['cp-client'],
      locations: {
        '': {
          systems: [
            erp,
            {
              virtualHost: 'echo.internal',
              virtualPort: 8080,
              internalHost: o,
              internalPort: 8080,
              paths: ['/api'],
            },
            {
              virtualHost: 'db.internal',
              virtualPort: 5432,
              internalHost: o,
              internalPort: pg.port,
              protocol: 'tcp',
            },
          ],
        },
        'cloud-sdk-js': { systems: [erp] },
        offline: { connected: false, systems: [erp] },
      },
    }),
  ]);
  await cp.waitFor(/connectivity-proxy ready/, 15000);
  cpToken = await fetchToken('cp-client', SECRETS.cp);
  otherToken = await fetchToken('other-client', SECRETS.other);
  aliceJwt = await fetchToken('app-client', SECRETS.app, [
    'grant_type=password',
    'username=alice',
    `password=${SECRETS.alice}`,
  ]);
}, 180_000);

afterAll(async () => {
  await Promise.all(peers.map((p) => p.stop()));
  await pg?.stop();
  await lab?.destroy();
}, 60_000);

describe('onprem namespace', () => {
  test('is reachable from net, not from app (no forwarding in net, no route back from onprem)', async () => {
    expect(lab.onprem).toBe(`${lab.id}-onprem`);
    expect(listNamespaces()).toContain(lab.onprem);
    const fromNet = await lab.run('net', ['curl', '-sS', '--max-time', '5', `http://${lab.addr.onpremV4}/`]);
    expect(fromNet.stdout).toBe(`onprem-erp from ${lab.addr.onpremV4}:80 to ${lab.addr.onpremNetV4}\n`);
    const fromApp = await lab.run('app', ['curl', '-sS', '--max-time', '3', `http://${lab.addr.onpremV4}/`], {
      reject: false,
    });
    expect(fromApp.exitCode).not.toBe(0);
    expect(fromApp.stdout).toBe('');
    expect((await lab.run('net', ['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim()).toBe('0');
    expect((await lab.run('onprem', ['ip', 'route', 'show', 'default'])).stdout.trim()).toBe('');
    if (lab.ipv6) {
      const v6 = await lab.run('app', ['curl', '-sS', '--max-time', '3', `http://[${lab.addr.onpremV6}]/`], {
        reject: false,
      });
      expect(v6.exitCode).not.toBe(0);
    }
  });
});

describe('connectivity proxy HTTP port (20003)', () => {
  test('a valid token reaches the onprem server by its virtual host', async () => {
    const r = await viaProxy('http://erp.internal/', [`Proxy-Authorization: Bearer ${cpToken}`]);
    expect(r.status).toBe(200);
    expect(r.text).toContain(`onprem-erp from ${lab.addr.onpremV4}:80 to ${lab.addr.onpremNetV4}`);
  });

  test('the location id header selects the Cloud Connector', async () => {
    const r = await viaProxy('http://erp.internal/', [
      `Proxy-Authorization: Bearer ${cpToken}`,
      'SAP-Connectivity-SCC-Location_ID: cloud-sdk-js',
    ]);
    expect(r.status).toBe(200);
  });

  test('no token, a token of another client → 407 with Proxy-Authenticate', async () => {
    const none = await viaProxy('http://erp.internal/');
    expect(none.status).toBe(407);
    expect(none.text).toMatch(/^proxy-authenticate: Bearer/im);
    const other = await viaProxy('http://erp.internal/', [`Proxy-Authorization: Bearer ${otherToken}`]);
    expect(other.status).toBe(407);
    expect(other.text).toContain('not a connectivity service client');
    const forged = await viaProxy('http://erp.internal/', [
      `Proxy-Authorization: Bearer ${cpToken.slice(0, -4)}AAAA`,
    ]);
    expect(forged.status).toBe(407);
  });

  test('https → 405 (as CONNECT and as an absolute https:// URL)', async () => {
    const auth = `Proxy-Authorization: Bearer ${cpToken}`;
    const tunnel = await viaProxy('https://erp.internal/', [], ['--proxy-header', auth]);
    expect(tunnel.text).toMatch(/^HTTP\/1\.1 405/m);
    const absolute = await viaProxy(
      'http://erp.internal/',
      [auth],
      ['--request-target', 'https://erp.internal/'],
    );
    expect(absolute.status).toBe(405);
    expect(absolute.text).toContain('https:// URLs are not supported');
  });

  test('unknown or disconnected location → 503', async () => {
    const auth = `Proxy-Authorization: Bearer ${cpToken}`;
    const unknown = await viaProxy('http://erp.internal/', [
      auth,
      'SAP-Connectivity-SCC-Location_ID: nowhere',
    ]);
    expect(unknown.status).toBe(503);
    const offline = await viaProxy('http://erp.internal/', [
      auth,
      'SAP-Connectivity-SCC-Location_ID: offline',
    ]);
    expect(offline.status).toBe(503);
  });

  test('access control: unmapped host or path → 403', async () => {
    const auth = `Proxy-Authorization: Bearer ${cpToken}`;
    expect((await viaProxy('http://unmapped.internal/', [auth])).status).toBe(403);
    expect((await viaProxy('http://echo.internal:8080/private', [auth])).status).toBe(403);
  });

  test('principal propagation: the backend sees the user, not the proxy or SAP headers', async () => {
    const r = await viaProxy('http://echo.internal:8080/api/orders', [
      `Proxy-Authorization: Bearer ${cpToken}`,
      `SAP-Connectivity-Authentication: Bearer ${aliceJwt}`,
    ]);
    expect(r.status).toBe(200);
    const body = JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)) as {
      path: string;
      headers: [string, string][];
    };
    const headers = Object.fromEntries(body.headers.map(([n, v]) => [n.toLowerCase(), v]));
    expect(body.path).toBe('/api/orders');
    expect(headers['x-onprem-principal']).toBe('alice');
    expect(headers['x-onprem-principal-type']).toBe('user');
    expect(headers['x-onprem-tenant']).toBe('tenant-a');
    expect(headers.host).toBe(`${lab.addr.onpremV4}:8080`);
    expect(Object.keys(headers).filter((h) => /^(proxy-|sap-connectivity)/.test(h))).toEqual([]);
  });

  test('identity binding: curl reusing one connection for two users is refused and counted', async () => {
    const bobJwt = await fetchToken('app-client', SECRETS.app, [
      'grant_type=password',
      'username=bob',
      `password=${SECRETS.bob}`,
    ]);
    const stats = async () =>
      JSON.parse((await lab.run('net', ['curl', '-sS', `http://${CP}:20005/_peer/stats`])).stdout) as {
        violations: number;
      };
    const before = (await stats()).violations;
    const r = await lab.run(
      'app',
      [
        'curl',
        '-sS',
        '--max-time',
        '10',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{num_connects}\n',
        '-x',
        `http://${CP}:20003`,
        '-H',
        `Proxy-Authorization: Bearer ${cpToken}`,
        '-H',
        `SAP-Connectivity-Authentication: Bearer ${aliceJwt}`,
        'http://erp.internal/',
        '--next',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{num_connects}\n',
        '-x',
        `http://${CP}:20003`,
        '-H',
        `Proxy-Authorization: Bearer ${cpToken}`,
        '-H',
        `SAP-Connectivity-Authentication: Bearer ${bobJwt}`,
        'http://erp.internal/',
      ],
      { reject: false },
    );
    // the second transfer reused the first connection (0 new connects) and was refused
    expect(r.stdout.trim().split('\n')).toEqual(['200 1', '403 0']);
    expect((await stats()).violations).toBe(before + 1);
  });

  test('counts requests at the admin port', async () => {
    const r = await lab.run('net', ['curl', '-sS', `http://${CP}:20005/_peer/stats`]);
    const stats = JSON.parse(r.stdout) as {
      forwarded: number;
      byStatus: Record<string, number>;
      byPrincipal: Record<string, number>;
    };
    expect(stats.forwarded).toBeGreaterThanOrEqual(3);
    expect(stats.byStatus['407']).toBeGreaterThanOrEqual(3);
    // alice: the principal propagation test and the first transfer of the identity binding test;
    // bob's request was refused, never forwarded
    expect(stats.byPrincipal.alice).toBe(2);
    expect(stats.byPrincipal.bob).toBeUndefined();
  });
});

describe('connectivity proxy SOCKS5 port (20004)', () => {
  // PostgreSQL's SSLRequest (length 8, code 80877103); a server without TLS answers 'N'.
  const SSL_REQUEST = '0000000804d2162f';

  test('0x80 session reaches PostgreSQL in onprem by virtual host', async () => {
    const r = await socksProbe('db.internal', 5432, { jwt: cpToken, send: SSL_REQUEST });
    expect(r).toMatchObject({ method: '80', auth: '0100', reply: '00', received: '4e' });
  });

  test('a PostgreSQL startup message gets the server authentication request', async () => {
    const params = Buffer.from('user\0postgres\0database\0postgres\0\0', 'latin1');
    const head = Buffer.alloc(8);
    head.writeUInt32BE(8 + params.length, 0);
    head.writeUInt32BE(196608, 4); // protocol 3.0
    const r = await socksProbe('db.internal', 5432, {
      jwt: cpToken,
      send: Buffer.concat([head, params]).toString('hex'),
    });
    expect(r.reply).toBe('00');
    // 'R' AuthenticationRequest, type 10 = SASL (scram-sha-256)
    expect(r.received?.slice(0, 2)).toBe('52');
    expect(Buffer.from(r.received ?? '', 'hex').readUInt32BE(5)).toBe(10);
  });

  test('reply codes: bad token, unknown location, denied host', async () => {
    expect(await socksProbe('db.internal', 5432, { jwt: otherToken })).toMatchObject({
      method: '80',
      auth: '0101',
    });
    expect(await socksProbe('db.internal', 5432, { jwt: cpToken, location: 'nowhere' })).toMatchObject({
      auth: '0100',
      reply: '03',
    });
    expect(await socksProbe('erp.internal', 80, { jwt: cpToken })).toMatchObject({ reply: '02' });
    expect(await socksProbe('db.internal', 5433, { jwt: cpToken })).toMatchObject({ reply: '02' });
  });
});

describe('lab teardown with onprem', () => {
  test('destroy() and a failed createLab leave no onprem namespace behind', async () => {
    const extra = await createLab({ onprem: true, ipv6: false });
    expect(listNamespaces()).toEqual(expect.arrayContaining([extra.app, extra.net, extra.onprem]));
    await extra.startHttpServer({ ns: 'onprem', body: 'x' });
    await extra.destroy();
    expect(listNamespaces().filter((n) => n.startsWith(extra.id))).toEqual([]);

    const before = listNamespaces().filter((n) => n.startsWith(`dtlab-${process.pid}-`));
    await expect(createLab({ onprem: true, failAfter: 'routes' })).rejects.toThrow(
      'forced failure after step "routes"',
    );
    expect(listNamespaces().filter((n) => n.startsWith(`dtlab-${process.pid}-`))).toEqual(before);
  });

  test('a lab without onprem refuses onprem commands', async () => {
    const plain = await createLab({ ipv6: false });
    try {
      expect(plain.onprem).toBeUndefined();
      await expect(plain.run('onprem', ['true'])).rejects.toThrow('no onprem namespace');
      await expect(plain.startHttpServer({ ns: 'onprem' })).rejects.toThrow('no onprem namespace');
    } finally {
      await plain.destroy();
    }
  });
});

// The on-premise world of the lab: an `onprem` namespace reachable from `net` only, the connectivity
// proxy stand-in in `net` in front of it (with oidc-provider issuing its JWTs), and real servers in
// onprem (nginx, the echo upstream, PostgreSQL). Clients run in `app`, where the dataplane will run.
// Needs root (creates network namespaces).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupStaleLabs, createLab, type Lab } from '../lab/lab.js';
import type { PostgresServer } from '../lab/postgres.js';
import { listNamespaces } from '../lab/teardown.js';
import { REPO } from './helpers.js';
import { CP_HOST as CP, type OnpremWorld, startOnpremWorld } from './onprem-world.js';

let lab: Lab;
let world: OnpremWorld;
let pg: PostgresServer;
let cpToken: string;
let aliceJwt: string;
let otherToken: string;

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
  world = await startOnpremWorld(lab);
  pg = world.onprem.postgres!;
  cpToken = await world.token('cp');
  otherToken = await world.token('other');
  aliceJwt = await world.token('app', 'alice');
}, 180_000);

afterAll(async () => {
  await world?.stop();
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
      const fromNet6 = await lab.run('net', [
        'curl',
        '-sS',
        '--max-time',
        '5',
        `http://[${lab.addr.onpremV6}]/`,
      ]);
      expect(fromNet6.stdout).toBe(`onprem-erp from ${lab.addr.onpremV6}:80 to ${lab.addr.onpremNetV6}\n`);
      const v6 = await lab.run('app', ['curl', '-sS', '--max-time', '3', `http://[${lab.addr.onpremV6}]/`], {
        reject: false,
      });
      expect(v6.exitCode).not.toBe(0);
    }
  });
});

describe('PostgreSQL in onprem', () => {
  test('psql from net logs in with the known password; a wrong one is refused', async () => {
    const psql = (password: string) =>
      lab.run(
        'net',
        [
          'psql',
          '-h',
          pg.host,
          '-p',
          String(pg.port),
          '-U',
          pg.user,
          '-d',
          pg.database,
          '-tAc',
          'select 40 + 2',
        ],
        { env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: '5' }, reject: false },
      );
    const ok = await psql(pg.password);
    expect(ok.stdout.trim()).toBe('42');
    const wrong = await psql('not-the-password');
    expect(wrong.exitCode).not.toBe(0);
    expect(wrong.stderr).toContain('password authentication failed');
    expect(pg.url).toBe(`postgresql://postgres:lab-pg-password@${lab.addr.onpremV4}:5432/postgres`);
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

  test('a Cloud Connector disconnected at runtime → 503 until it reconnects', async () => {
    const headers = [
      `Proxy-Authorization: Bearer ${cpToken}`,
      'SAP-Connectivity-SCC-Location_ID: cloud-sdk-js',
    ];
    await world.setConnected('cloud-sdk-js', false);
    expect((await viaProxy('http://erp.internal/', headers)).status).toBe(503);
    await world.setConnected('cloud-sdk-js', true);
    expect((await viaProxy('http://erp.internal/', headers)).status).toBe(200);
  });

  test('the service key names the token service and the proxy as a BTP binding does', () => {
    expect(JSON.parse(readFileSync(world.serviceKeyFile, 'utf8'))).toEqual({
      clientid: 'cp-client',
      clientsecret: expect.any(String),
      url: 'http://198.51.100.10:9000',
      token_service_url: 'http://198.51.100.10:9000',
      onpremise_proxy_host: CP,
      onpremise_proxy_port: '20003',
      onpremise_proxy_http_port: '20003',
      onpremise_socks5_proxy_port: '20004',
    });
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
    const bobJwt = await world.token('app', 'bob');
    const stats = () => world.stats();
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
    const stats = await world.stats();
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
    const addrs = (await extra.run('onprem', ['ip', '-o', 'addr'])).stdout;
    expect(addrs).toContain(`inet ${extra.addr.onpremV4}/24`);
    expect(addrs).not.toContain('inet6'); // ipv6: false reaches the onprem namespace too
    expect((await extra.run('net', ['curl', '-sS', `http://${extra.addr.onpremV4}/`])).stdout).toContain(
      'x from',
    );
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

// On-premise TCP destinations end to end: `psql` in the app (an unprivileged UID) connects to a
// destination name; the embedded DNS gives its VIP, the rules send the connection to the dataplane,
// and the dataplane opens SOCKS5 with SAP's method 0x80 to the connectivity proxy stand-in in `net`
// (token from oidc-provider with the connectivity service key, Cloud Connector location id), which
// connects to a real PostgreSQL in the `onprem` namespace. Each failure — unknown or disconnected
// location (0x03), a host the Cloud Connector does not expose (0x02), a token the proxy refuses, the
// token service or the proxy down — resets psql's connection and logs one line saying why.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { PG_BIN, startPostgres, type PostgresServer } from '../lab/postgres.js';
import { DETOUR_BIN, REPO, spawnDataplane } from './helpers.js';

const APP_UID = 1000;
const OAUTH = '198.51.100.10';
const CP = '198.51.100.11';
const CP_SECRET = 'cp-SECRET-4711';
const OTHER_SECRET = 'other-SECRET-0815';
const PG_PASSWORD = 'pg-PASS-2718';
const FAILED = 'upstream connect through proxy failed; resetting';

let lab: Lab;
let dir: string;
let pg: PostgresServer;
let dataplane: Background | undefined;
const peers: Background[] = [];

interface Line {
  msg: string;
  [key: string]: unknown;
}

const peer = (script: string, args: string[]) => {
  const bg = lab.spawn('net', ['node', join(REPO, 'dist', 'test', 'peers', script), ...args]);
  peers.push(bg);
  return bg;
};

function destinationsYaml(): string {
  const onprem = (name: string, address: string, location?: string) =>
    `- Name: ${name}\n  Type: TCP\n  ProxyType: OnPremise\n  Address: tcp://${address}\n` +
    `  URL.connectionTimeoutInSeconds: 5\n${location ? `  CloudConnectorLocationId: ${location}\n` : ''}`;
  return [
    onprem('erp-db', 'db.internal:5432'),
    onprem('erp-db-loc', 'db2.internal:5432', 'cloud-sdk-js'),
    onprem('nowhere-db', 'db.internal:5432', 'nowhere'),
    onprem('offline-db', 'db.internal:5432', 'offline'),
    onprem('secret-db', 'secret.internal:5432'),
  ].join('');
}

function serviceKey(name: string, key: Record<string, string>): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(key), { mode: 0o644 });
  return file;
}

/** (Re)starts the dataplane with this connectivityProxy section. */
async function startDataplane(connectivityProxy: Record<string, string | number | boolean>): Promise<void> {
  await dataplane?.stop();
  const config = join(dir, 'detour.yaml');
  const section = Object.entries(connectivityProxy)
    .map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  writeFileSync(
    config,
    `destinations:\n  files: [${join(dir, 'destinations.yaml')}]\nconnectivityProxy:\n${section}\n` +
      'egressProxy:\n  fromEnvironment: false\n',
  );
  chmodSync(config, 0o644);
  dataplane = await spawnDataplane(lab, ['--config', config]);
}

const lines = (): Line[] =>
  (dataplane?.output() ?? '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);

async function failureLine(destination: string): Promise<Line> {
  const deadline = Date.now() + 15000;
  for (;;) {
    const line = lines().find((l) => l.msg === FAILED && l.destination === destination);
    if (line) return line;
    if (Date.now() > deadline)
      throw new Error(`no failure line for ${destination} in:\n${dataplane?.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** psql as the app's UID; `-Atc` prints bare values. */
const psql = (host: string, sql: string) =>
  lab.run(
    'app',
    [join(PG_BIN, 'psql'), '-h', host, '-p', '5432', '-U', 'postgres', '-d', 'postgres', '-w', '-Atc', sql],
    {
      uid: APP_UID,
      env: { PGPASSWORD: PG_PASSWORD, PGCONNECT_TIMEOUT: '10' },
      reject: false,
      timeoutMs: 30000,
    },
  );

const cpStats = async () =>
  JSON.parse((await lab.run('net', ['curl', '-sS', `http://${CP}:20005/_peer/stats`])).stdout) as {
    byLocation: Record<string, number>;
    socksReplies: Record<string, number>;
  };

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab({ onprem: true, ipv6: false });
  pg = await startPostgres(lab, 'onprem', { password: PG_PASSWORD });
  chmodSync(lab.dir, 0o755); // the dataplane runs as UID 5678 and reads its files from here
  dir = join(lab.dir, 'detour');
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(join(dir, 'destinations.yaml'), destinationsYaml(), { mode: 0o644 });
  await lab.writeResolvConf([`nameserver ${lab.addr.dnsV4}`]);

  const oauth = peer('oauth-server-cli.js', [
    JSON.stringify({
      host: OAUTH,
      port: 9000,
      zoneId: 'tenant-a',
      clients: [
        {
          clientId: 'cp-client',
          clientSecret: CP_SECRET,
          grantTypes: ['client_credentials'],
          accessTokenFormat: 'jwt',
        },
        // a valid JWT of a client that is not the connectivity service's
        {
          clientId: 'other-client',
          clientSecret: OTHER_SECRET,
          grantTypes: ['client_credentials'],
          accessTokenFormat: 'jwt',
        },
      ],
    }),
  ]);
  await oauth.waitFor(/oauth ready/, 15000);
  const db = (virtualHost: string) => ({
    virtualHost,
    virtualPort: 5432,
    internalHost: lab.addr.onpremV4,
    internalPort: pg.port,
    protocol: 'tcp',
  });
  const locations = {
    '': { systems: [db('db.internal')] },
    'cloud-sdk-js': { systems: [db('db2.internal')] },
    offline: { connected: false, systems: [db('db.internal')] },
  };
  const jwksUrl = `http://${OAUTH}:9000/jwks`;
  const cp = peer('connectivity-proxy-cli.js', [
    JSON.stringify({
      host: CP,
      httpPort: 20003,
      socksPort: 20004,
      adminPort: 20005,
      jwksUrl,
      clientIds: ['cp-client'],
      locations,
    }),
  ]);
  // SAP's "trusted environment" mode: no proxy authorization (SOCKS5 method 0x00)
  const trusted = peer('connectivity-proxy-cli.js', [
    JSON.stringify({
      host: CP,
      httpPort: 20013,
      socksPort: 20014,
      adminPort: 20015,
      jwksUrl,
      clientIds: ['cp-client'],
      locations,
      trusted: true,
    }),
  ]);
  await cp.waitFor(/connectivity-proxy ready/, 15000);
  await trusted.waitFor(/connectivity-proxy ready/, 15000);
  await lab.run('app', ['node', DETOUR_BIN, 'install', 'transparent-proxy', '--redirect-dns']);
}, 180000);

afterEach(() => {
  const output = dataplane?.output() ?? '';
  for (const secret of [CP_SECRET, OTHER_SECRET, PG_PASSWORD]) expect(output).not.toContain(secret);
  expect(output).not.toMatch(/eyJ[\w-]{10,}\.[\w-]{10,}/); // no JWT
});

afterAll(async () => {
  await dataplane?.stop();
  for (const p of peers) await p.stop();
  await pg?.stop();
  await lab?.destroy();
}, 60000);

const key = (extra: Record<string, string> = {}) => ({
  clientid: 'cp-client',
  clientsecret: CP_SECRET,
  url: `http://${OAUTH}:9000`,
  onpremise_proxy_host: CP,
  onpremise_proxy_http_port: '20003',
  onpremise_socks5_proxy_port: '20004',
  ...extra,
});

describe('psql to an on-premise PostgreSQL through the connectivity proxy (SOCKS5 0x80)', () => {
  test('without and with a location id; each failure a reset and one clear line', async () => {
    await startDataplane({ serviceKey: serviceKey('connectivity-key.json', key()) });

    const plain = await psql('erp-db', 'select 42, inet_client_addr()');
    expect(plain.stderr).toBe('');
    // PostgreSQL sees the connectivity proxy's (Cloud Connector's) connection from net, not the app
    expect(plain.stdout.trim()).toBe(`42|${lab.addr.onpremNetV4}`);
    const withLocation = await psql('erp-db-loc', 'select current_user');
    expect(withLocation.stdout.trim()).toBe('postgres');
    const stats = await cpStats();
    expect(stats.byLocation['cloud-sdk-js']).toBeGreaterThanOrEqual(1);
    expect(stats.socksReplies.SUCCESS).toBeGreaterThanOrEqual(2);

    for (const [name, location, replyCode, replyName, reason] of [
      ['nowhere-db', ', location nowhere', '0x03', 'NETWORK_UNREACHABLE', /no Cloud Connector is connected/],
      ['offline-db', ', location offline', '0x03', 'NETWORK_UNREACHABLE', /no Cloud Connector is connected/],
      ['secret-db', '', '0x02', 'FORBIDDEN', /not allowed by the Cloud Connector’s access control/],
    ] as const) {
      const r = await psql(name, 'select 1');
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toMatch(/server closed the connection unexpectedly|Connection reset by peer/);
      const line = await failureLine(name);
      expect(line).toMatchObject({
        level: 40,
        via: `connectivity proxy ${CP}:20004 (SOCKS5${location})`,
        stage: 'socks5 connect',
        replyCode,
        replyName,
      });
      expect(line.reason).toMatch(reason);
    }
    expect(lines().filter((l) => l.msg === FAILED)).toHaveLength(3);
    const metrics = (
      await lab.run('app', ['curl', '-sS', '--max-time', '5', 'http://127.0.0.1:9901/metrics'])
    ).stdout;
    expect(metrics).toContain('detour_upstream_errors_total{destination="nowhere-db",kind="unreachable"} 1');
    expect(metrics).toContain('detour_upstream_errors_total{destination="secret-db",kind="proxy"} 1');
  });

  test('a token the connectivity proxy does not accept: reset, auth-stage line', async () => {
    await startDataplane({
      serviceKey: serviceKey('other-key.json', key({ clientid: 'other-client', clientsecret: OTHER_SECRET })),
    });
    const r = await psql('erp-db', 'select 1');
    expect(r.exitCode).not.toBe(0);
    expect(await failureLine('erp-db')).toMatchObject({
      stage: 'socks5 auth',
      replyName: 'FAILURE',
      reason: 'the connectivity proxy did not accept the token (authentication failed)',
    });
  });

  test('token service down: reset, a line naming the token', async () => {
    await startDataplane({
      serviceKey: serviceKey('dead-token-key.json', key({ url: `http://${OAUTH}:9999` })),
    });
    const r = await psql('erp-db', 'select 1');
    expect(r.exitCode).not.toBe(0);
    const line = await failureLine('erp-db');
    expect(line.stage).toBe('token');
    expect(line.reason).toMatch(/^cannot get a token for the connectivity proxy: /);
  });

  test('connectivity proxy down: reset, a line naming the proxy', async () => {
    await startDataplane({ serviceKey: serviceKey('connectivity-key.json', key()), socks5Port: 20099 });
    const r = await psql('erp-db', 'select 1');
    expect(r.exitCode).not.toBe(0);
    expect(await failureLine('erp-db')).toMatchObject({
      via: `connectivity proxy ${CP}:20099 (SOCKS5)`,
      stage: 'socks5 proxy-connect',
      reason: 'cannot connect to the proxy (ECONNREFUSED)',
    });
  });

  test('trusted mode: method 0x00 without a location id; with one, 0x80 and an empty JWT, which this proxy refuses', async () => {
    await startDataplane({ host: CP, socks5Port: 20014, httpPort: 20013, trusted: true });
    expect((await psql('erp-db', 'select 7')).stdout.trim()).toBe('7');
    // The location id needs SAP's 0x80 frame; a trusted proxy that insists on a JWT there closes.
    const r = await psql('erp-db-loc', 'select 1');
    expect(r.exitCode).not.toBe(0);
    expect(await failureLine('erp-db-loc')).toMatchObject({
      via: `connectivity proxy ${CP}:20014 (SOCKS5, location cloud-sdk-js)`,
      stage: 'socks5 auth',
      reason: 'the proxy closed the connection during the handshake',
    });
  });
});

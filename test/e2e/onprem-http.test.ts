// On-premise HTTP destinations end to end: the app calls `http://<destination>/...` with plain curl;
// the dataplane (connectivityProxy from a connectivity service key) sends it through the connectivity
// proxy stand-in in `net` to an echo server in `onprem`, with its token from oidc-provider. Principal
// propagation with two users in parallel, technical user propagation, and the failures: unknown and
// disconnected locations, token service down (cached token), connectivity proxy down, 407.
// Needs root (network namespaces).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { DETOUR_BIN, REPO, spawnDataplane } from './helpers.js';

const APP_UID = 1000;
const OAUTH = '198.51.100.10';
const CP = '198.51.100.11';
const SECRETS = {
  cp: 'cp-SECRET-e2e-123',
  app: 'app-SECRET-e2e-456',
  tech: 'tech-SECRET-e2e-789',
  other: 'other-SECRET-e2e-000',
  alice: 'alice-PW-e2e',
  bob: 'bob-PW-e2e',
};

let lab: Lab;
let dir: string;
let dataplane: Background | undefined;
let oauth: Background | undefined;
let cp: Background | undefined;
const peers: Background[] = [];
const jwts: Record<'alice' | 'bob', string> = { alice: '', bob: '' };

const node = (ns: 'net' | 'onprem', script: string, args: string[]): Background => {
  const bg = lab.spawn(ns, ['node', join(REPO, 'dist', 'test', 'peers', script), ...args]);
  peers.push(bg);
  return bg;
};

const curl = (args: string[]) =>
  lab.run('app', ['curl', '-sS', '--max-time', '15', ...args], { uid: APP_UID, reject: false });
const admin = (path: string) =>
  lab.run('app', ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:9901${path}`], { reject: false });
const cpStats = async () =>
  JSON.parse((await lab.run('net', ['curl', '-sS', `http://${CP}:20005/_peer/stats`])).stdout) as {
    requests: number;
    violations: number;
    byPrincipal: Record<string, number>;
    byLocation: Record<string, number>;
    byStatus: Record<string, number>;
  };

interface Echo {
  path: string;
  headers: [string, string][];
}
const header = (e: Echo, name: string) =>
  e.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

/** status line, headers and body of `curl -i` output */
function parse(out: string): { status: number; headers: Record<string, string>; body: string } {
  const [head = '', ...rest] = out.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  return {
    status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0),
    headers,
    body: rest.join('\r\n\r\n'),
  };
}

function startOAuth(): Background {
  const client = (clientId: string, clientSecret: string, grant: string) => ({
    clientId,
    clientSecret,
    grantTypes: [grant],
    accessTokenFormat: 'jwt',
  });
  return node('net', 'oauth-server-cli.js', [
    JSON.stringify({
      host: OAUTH,
      port: 9000,
      zoneId: 'tenant-a',
      accessTokenTtlSeconds: 3600,
      clients: [
        client('cp-client', SECRETS.cp, 'client_credentials'),
        client('app-client', SECRETS.app, 'password'),
        client('tech-client', SECRETS.tech, 'client_credentials'),
        client('other-client', SECRETS.other, 'client_credentials'),
      ],
      users: [
        { username: 'alice', password: SECRETS.alice },
        { username: 'bob', password: SECRETS.bob },
      ],
    }),
  ]);
}

function startCp(): Background {
  const echo = {
    virtualHost: 'erp.internal',
    virtualPort: 8080,
    internalHost: lab.addr.onpremV4,
    internalPort: 8080,
  };
  return node('net', 'connectivity-proxy-cli.js', [
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
            echo,
            {
              virtualHost: 'erp-tcp.internal',
              virtualPort: 8080,
              internalHost: lab.addr.onpremV4,
              internalPort: 8080,
              protocol: 'tcp',
            },
          ],
        },
        'loc-b': { systems: [echo] },
        offline: { connected: false, systems: [echo] },
      },
    }),
  ]);
}

async function startDataplane(clientId = 'cp-client', secret = SECRETS.cp): Promise<Background> {
  writeFileSync(
    join(dir, 'cp-key.json'),
    JSON.stringify({
      clientid: clientId,
      clientsecret: secret,
      url: `http://${OAUTH}:9000`,
      onpremise_proxy_host: CP,
      onpremise_proxy_http_port: '20003',
      onpremise_socks5_proxy_port: '20004',
    }),
  );
  chmodSync(join(dir, 'cp-key.json'), 0o644);
  const bg = await spawnDataplane(lab, ['--config', join(dir, 'detour.yaml')]);
  const deadline = Date.now() + 10000;
  while (!(await admin('/ready')).stdout.includes('"ready":true')) {
    if (Date.now() > deadline) throw new Error('dataplane not ready');
    await new Promise((r) => setTimeout(r, 200));
  }
  return bg;
}

async function password(user: 'alice' | 'bob'): Promise<string> {
  const out = await lab.run('net', [
    'curl',
    '-sS',
    '-u',
    `app-client:${SECRETS.app}`,
    '-d',
    'grant_type=password',
    '-d',
    `username=${user}`,
    '-d',
    `password=${SECRETS[user]}`,
    `http://${OAUTH}:9000/oauth/token`,
  ]);
  const token = (JSON.parse(out.stdout) as { access_token?: string }).access_token;
  if (!token) throw new Error(`no token for ${user}`);
  return token;
}

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab({ onprem: true });
  chmodSync(lab.dir, 0o755);
  dir = join(lab.dir, 'detour');
  mkdirSync(dir, { mode: 0o755 });
  const echo = node('onprem', 'echo-upstream-cli.js', [lab.addr.onpremV4, '8080']);
  oauth = startOAuth();
  await echo.waitFor(/echo ready/, 15000);
  await oauth.waitFor(/oauth ready/, 15000);
  cp = startCp();
  await cp.waitFor(/connectivity-proxy ready/, 15000);
  const onPremise = (name: string, extra: string) =>
    `- Name: ${name}\n  URL: http://erp.internal:8080/api\n  ProxyType: OnPremise\n${extra}`;
  writeFileSync(
    join(dir, 'destinations.yaml'),
    [
      onPremise('erp', ''),
      onPremise(
        'erp-basic',
        '  CloudConnectorLocationId: loc-b\n  Authentication: BasicAuthentication\n  User: erp-user\n  Password: erp-PASS\n',
      ),
      onPremise('erp-pp', '  Authentication: PrincipalPropagation\n'),
      onPremise(
        'erp-tech',
        `  Authentication: OAuth2TechnicalUserPropagation\n  tokenServiceURL: http://${OAUTH}:9000/oauth/token\n  clientId: tech-client\n  clientSecret: ${SECRETS.tech}\n`,
      ),
      onPremise('erp-offline', '  CloudConnectorLocationId: offline\n'),
      onPremise('erp-nowhere', '  CloudConnectorLocationId: nowhere\n'),
      '- Name: erp-tcp\n  Type: TCP\n  Address: tcp://erp-tcp.internal:8080\n  ProxyType: OnPremise\n',
    ].join(''),
  );
  writeFileSync(
    join(dir, 'detour.yaml'),
    'destinations: { files: [./destinations.yaml] }\nconnectivityProxy: { serviceKey: ./cp-key.json }\n',
  );
  for (const f of ['destinations.yaml', 'detour.yaml']) chmodSync(join(dir, f), 0o644);
  jwts.alice = await password('alice');
  jwts.bob = await password('bob');
  await lab.run('app', ['node', DETOUR_BIN, 'install', 'transparent-proxy', '--redirect-dns']);
  dataplane = await startDataplane();
}, 180_000);

afterAll(async () => {
  await dataplane?.stop();
  for (const p of peers) await p.stop();
  await lab?.destroy();
}, 60_000);

describe('OnPremise HTTP through the connectivity proxy', () => {
  test('plain curl reaches the onprem server by its virtual host; the backend never sees the proxy token', async () => {
    const r = await curl(['http://erp/orders?top=1']);
    const seen = JSON.parse(r.stdout) as Echo;
    expect(seen.path).toBe('/api/orders?top=1');
    expect(header(seen, 'proxy-authorization')).toEqual([]);
    expect(header(seen, 'host')).toEqual([`${lab.addr.onpremV4}:8080`]);
    expect(r.stdout).not.toMatch(/eyJ[\w-]+\.[\w-]+\./); // no JWT anywhere in what the backend saw
  });

  test('BasicAuthentication and a location id: both arrive, through location loc-b', async () => {
    const before = await cpStats();
    const seen = JSON.parse((await curl(['http://erp-basic/x'])).stdout) as Echo;
    expect(header(seen, 'authorization')).toEqual([
      `Basic ${Buffer.from('erp-user:erp-PASS').toString('base64')}`,
    ]);
    const after = await cpStats();
    expect(after.requests).toBe(before.requests + 1);
    expect(after.byLocation['loc-b']).toBe((before.byLocation['loc-b'] ?? 0) + 1);
  });

  test('principal propagation: two users in parallel each arrive as themselves, never over a shared connection', async () => {
    const urls = Array.from({ length: 10 }, (_, i) => `http://erp-pp/who/${i}`);
    const runs = await Promise.all(
      (['alice', 'bob', 'alice', 'bob', 'alice', 'bob'] as const).map(async (user) => {
        // one curl, ten requests over one kept-alive app connection
        const r = await curl([
          '-H',
          `Authorization: Bearer ${jwts[user]}`,
          ...urls.flatMap((u) => [u, '-w', '\n']),
        ]);
        return { user, bodies: r.stdout.trim().split('\n') };
      }),
    );
    for (const { user, bodies } of runs) {
      expect(bodies).toHaveLength(10);
      for (const body of bodies) {
        const seen = JSON.parse(body) as Echo;
        expect(header(seen, 'x-onprem-principal')).toEqual([user]);
        expect(header(seen, 'authorization')).toEqual([]);
      }
    }
    const stats = await cpStats();
    expect(stats.violations).toBe(0);
    expect(stats.byPrincipal.alice).toBeGreaterThanOrEqual(30);
    expect(stats.byPrincipal.bob).toBeGreaterThanOrEqual(30);
  });

  test('principal propagation without a user JWT: 400 naming what to send', async () => {
    const r = parse((await curl(['-i', 'http://erp-pp/'])).stdout);
    expect(r.status).toBe(400);
    expect(r.headers['x-error-message']).toContain("send the user's JWT as 'Authorization: Bearer <token>'");
  });

  test('technical user propagation: the technical client arrives as the principal', async () => {
    // an app's own Authorization is dropped (the proxy would refuse it with propagation: 400)
    const seen = JSON.parse(
      (await curl(['-H', 'Authorization: Bearer app-token', 'http://erp-tech/t'])).stdout,
    ) as Echo;
    expect(header(seen, 'x-onprem-principal-type')).toEqual(['technical']);
    expect(header(seen, 'x-onprem-principal')).toEqual(['tech-client']);
  });

  test('unknown and disconnected locations: 503 from the Connectivity Proxy, with its reason', async () => {
    for (const [name, why] of [
      ['erp-offline', 'is disconnected'],
      ['erp-nowhere', 'no Cloud Connector is connected'],
    ]) {
      const r = parse((await curl(['-i', `http://${name}/`])).stdout);
      expect(r.status).toBe(503);
      expect(r.headers['x-error-origin']).toBe('Connectivity Proxy');
      expect(r.headers['x-error-message']).toContain(why);
    }
  });

  test('a TCP OnPremise destination shares the connectivity proxy (SOCKS5 0x80 with the same token)', async () => {
    // raw bytes: curl's HTTP request goes unchanged through SOCKS5 to the echo server
    const seen = JSON.parse((await curl(['http://erp-tcp/raw'])).stdout) as Echo;
    expect(seen.path).toBe('/raw');
    expect(header(seen, 'host')).toEqual(['erp-tcp']);
    // one client-credentials token for the connectivity proxy (HTTP and TCP), one for the technical user
    const stats = JSON.parse(
      (await lab.run('net', ['curl', '-sS', `http://${OAUTH}:9000/_peer/stats`])).stdout,
    ) as {
      byGrant: Record<string, number>;
    };
    expect(stats.byGrant.client_credentials).toBe(2);
  });

  test('WebSocket through the connectivity proxy: frames echo both ways, each user on a connection of their own', async () => {
    const script = `
      const [url, jwt] = process.argv.slice(1);
      const ws = new WebSocket(url, jwt ? { headers: { authorization: 'Bearer ' + jwt } } : undefined);
      ws.onopen = () => ws.send('hello onprem');
      ws.onmessage = (e) => { console.log(String(e.data)); ws.close(1000); };
      ws.onerror = (e) => { console.log('error ' + (e.message ?? '')); process.exit(1); };
      ws.onclose = () => process.exit(0);
      setTimeout(() => { console.log('timeout'); process.exit(2); }, 10000);
    `;
    const run = (url: string, jwt?: string) =>
      lab.run('app', ['node', '-e', script, url, ...(jwt ? [jwt] : [])], { uid: APP_UID, reject: false });
    expect((await run('ws://erp/ws')).stdout.trim()).toBe('hello onprem');
    const before = await cpStats();
    const [a, b] = await Promise.all([run('ws://erp-pp/ws', jwts.alice), run('ws://erp-pp/ws', jwts.bob)]);
    expect(a.stdout.trim()).toBe('hello onprem');
    expect(b.stdout.trim()).toBe('hello onprem');
    const after = await cpStats();
    expect(after.violations).toBe(0);
    expect(after.byPrincipal.alice).toBe((before.byPrincipal.alice ?? 0) + 1);
    expect(after.byPrincipal.bob).toBe((before.byPrincipal.bob ?? 0) + 1);
  });

  test('token service down: the cached token keeps working', async () => {
    await oauth!.stop();
    const r = await curl(['http://erp/still']);
    expect((JSON.parse(r.stdout) as Echo).path).toBe('/api/still');
  });

  test('connectivity proxy down: 503 naming it, no hang; back up: works again', async () => {
    await cp!.stop();
    const r = parse((await curl(['-i', 'http://erp/down'])).stdout);
    expect(r.status).toBe(503);
    expect(r.headers['x-error-origin']).toBe('Connectivity Proxy');
    expect(r.headers['x-error-message']).toContain(`the connectivity proxy ${CP}:20003`);
    oauth = startOAuth();
    await oauth.waitFor(/oauth ready/, 15000);
    cp = startCp();
    await cp.waitFor(/connectivity-proxy ready/, 15000);
    // the new token service signs with new keys: the cached proxy token is refused (407) once, a new
    // one is fetched and the request goes through
    const again = JSON.parse((await curl(['http://erp/again'])).stdout) as Echo;
    expect(again.path).toBe('/api/again');
  });

  test('a key whose client the proxy does not accept: 407 → 502 Connectivity Proxy', async () => {
    await dataplane!.stop();
    dataplane = await startDataplane('other-client', SECRETS.other);
    const r = parse((await curl(['-i', 'http://erp/'])).stdout);
    expect(r.status).toBe(502);
    expect(r.headers['x-error-origin']).toBe('Connectivity Proxy');
    expect(r.headers['x-internal-error-code']).toBe('407');
  });

  test('no secret in the dataplane log or /config', async () => {
    const config = (await admin('/config')).stdout;
    expect(config).toContain('"connectivityProxy"');
    const text = dataplane!.output() + config;
    for (const s of Object.values(SECRETS)) expect(text).not.toContain(s);
    expect(text).not.toContain('erp-PASS');
    expect(text).not.toMatch(/eyJ[\w-]{10,}\.[\w-]{10,}\./);
  });
});

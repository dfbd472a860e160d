// The product path end to end: the app resolves destination names through the embedded DNS (its
// DNS captured by the rules), connects to the VIP, and the dataplane forwards with the destination's
// authentication to real peers in `net`: an echo upstream, oidc-provider as the token service,
// nginx requiring a client certificate, nginx as a TCP target.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issueCertificate } from '../lab/certs.js';
import { cleanupStaleLabs, createLab, type Background, type Lab } from '../lab/lab.js';
import { DETOUR_BIN, REPO, startDnsmasq, spawnDataplane } from './helpers.js';

const APP_UID = 1000;
const SECRETS = [
  'wr0ng-SECRET-789',
  's3cret-orders-XYZ',
  'b1lling-PASS-xyz',
  'pr0file-SECRET',
  'alice-PASS-123',
  'p12-PASS-456',
];

let lab: Lab;
let dataplane: Background;
let dir: string;
let destinationsFile: string;
const peers: Background[] = [];

function destinationsYaml(extra = ''): string {
  const s = '198.51.100.10';
  return `- Name: orders
  Type: HTTP
  URL: http://${s}:8080/api
  ProxyType: Internet
  Authentication: OAuth2ClientCredentials
  tokenServiceURL: http://${s}:9000/oauth/token
  clientId: orders-client
  clientSecret: s3cret-orders-XYZ
  URL.headers.x-api-version: "2"
  URL.queries.sap-client: "100"
- Name: billing
  Type: HTTP
  URL: http://${s}:8080/billing
  Authentication: BasicAuthentication
  User: billing-user
  Password: b1lling-PASS-xyz
- Name: profile
  Type: HTTP
  URL: http://${s}:8080/
  Authentication: OAuth2Password
  tokenServiceURL: http://${s}:9000/oauth/token
  clientId: profile-client
  clientSecret: pr0file-SECRET
  User: alice
  Password: alice-PASS-123
- Name: secure
  Type: HTTP
  URL: https://${s}:8443/
  Authentication: ClientCertificateAuthentication
  KeyStoreLocation: client.p12
  KeyStorePassword: p12-PASS-456
  TrustStoreLocation: ca.pem
- Name: legacy-db
  Type: TCP
  Address: tcp://${s}:80
- Name: down
  Type: HTTP
  URL: http://${s}:8999/
  Authentication: NoAuthentication
- Name: badsecret
  Type: HTTP
  URL: http://${s}:8080/
  Authentication: OAuth2ClientCredentials
  tokenServiceURL: http://${s}:9000/oauth/token
  clientId: orders-client
  clientSecret: wr0ng-SECRET-789
${extra}`;
}

const curl = (args: string[]) =>
  lab.run('app', ['curl', '-sS', '--max-time', '10', ...args], { uid: APP_UID, reject: false });
const dig = (args: string[]) =>
  lab.run('app', ['dig', '+short', '+time=2', '+tries=1', ...args], { uid: APP_UID, reject: false });
const admin = (path: string) =>
  lab.run('app', ['curl', '-sS', '--max-time', '5', `http://127.0.0.1:9901${path}`], { reject: false });
const tokenStats = async () =>
  JSON.parse((await lab.run('net', ['curl', '-sS', 'http://198.51.100.10:9000/_peer/stats'])).stdout) as {
    issued: number;
    byGrant: Record<string, number>;
  };

async function waitUntil(check: () => Promise<boolean>, what: string, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab();
  // The dataplane runs as UID 5678 and reads its destinations from here.
  chmodSync(lab.dir, 0o755);
  dir = join(lab.dir, 'detour');
  mkdirSync(dir, { mode: 0o755 });
  const pki = join(lab.dir, 'pki');
  const ca = createCa(pki);
  const server = issueCertificate(ca, pki, 'upstream', { altNames: ['198.51.100.10'] });
  const client = issueCertificate(ca, pki, 'detour-client', { client: true, password: 'p12-PASS-456' });
  copyFileSync(client.p12, join(dir, 'client.p12'));
  copyFileSync(ca.cert, join(dir, 'ca.pem'));
  for (const f of ['client.p12', 'ca.pem']) chmodSync(join(dir, f), 0o644);
  destinationsFile = join(dir, 'destinations.yaml');
  writeFileSync(destinationsFile, destinationsYaml());

  await lab.writeResolvConf(['search ns1.svc.cluster.local', `nameserver ${lab.addr.dnsV4}`]);
  await startDnsmasq(lab, 'net', { listen: [lab.addr.dnsV4], port: 53, answer: '203.0.113.1' });
  await lab.startHttpServer({ port: 80, body: 'tcp-target' });
  await lab.startHttpServer({
    port: 8443,
    body: 'mtls',
    tls: { cert: server.cert, key: server.key, clientCa: ca.cert },
  });
  const node = (script: string, args: string[]) =>
    lab.spawn('net', ['node', join(REPO, 'dist', 'test', 'peers', script), ...args]);
  const echo = node('echo-upstream-cli.js', ['198.51.100.10', '8080']);
  const oauth = node('oauth-server-cli.js', [
    JSON.stringify({
      host: '198.51.100.10',
      port: 9000,
      clients: [
        { clientId: 'orders-client', clientSecret: 's3cret-orders-XYZ', grantTypes: ['client_credentials'] },
        { clientId: 'profile-client', clientSecret: 'pr0file-SECRET', grantTypes: ['password'] },
      ],
      users: [{ username: 'alice', password: 'alice-PASS-123' }],
      accessTokenTtlSeconds: 3600,
    }),
  ]);
  peers.push(echo, oauth);
  await echo.waitFor(/echo ready/, 15000);
  await oauth.waitFor(/oauth ready/, 15000);

  await lab.run('app', ['node', DETOUR_BIN, 'install', 'transparent-proxy', '--redirect-dns']);
  dataplane = await spawnDataplane(lab, ['--destinations', destinationsFile]);
  await waitUntil(async () => (await admin('/ready')).stdout.includes('"ready":true'), 'admin /ready');
}, 120000);

afterAll(async () => {
  await dataplane?.stop();
  for (const p of peers) await p.stop();
  await lab?.destroy();
}, 60000);

describe('destinations through the embedded DNS and the dataplane', () => {
  test('destination names resolve to stable VIPs, bare and with the search suffix, A and AAAA', async () => {
    const a = (await dig(['orders'])).stdout.trim();
    expect(a).toMatch(/^240\.240\.\d+\.\d+$/);
    expect((await dig(['orders.ns1.svc.cluster.local'])).stdout.trim()).toBe(a);
    expect((await dig(['ORDERS', 'A'])).stdout.trim()).toBe(a);
    expect((await dig(['orders', 'AAAA'])).stdout.trim()).toMatch(/^2001:2:0:240:/);
    expect((await dig(['billing'])).stdout.trim()).not.toBe(a);
    // Everything else is answered by the upstream in net.
    expect((await dig(['anything.example.test'])).stdout.trim()).toBe('203.0.113.1');
  });

  test('OAuth2ClientCredentials: path prefix, queries, headers, Host and a bearer token', async () => {
    const r = await curl(['http://orders/items?x=1']);
    const seen = JSON.parse(r.stdout) as { path: string; headers: [string, string][] };
    expect(seen.path).toBe('/api/items?x=1&sap-client=100');
    const header = (name: string) => seen.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
    expect(header('host')).toEqual(['198.51.100.10:8080']);
    expect(header('x-api-version')).toEqual(['2']);
    expect(header('authorization')[0]).toMatch(/^Bearer \S{20,}$/);
    expect((await tokenStats()).byGrant.client_credentials).toBe(1);
  });

  test('20 parallel requests reuse the cached token: no new token is fetched', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => curl(['http://orders/parallel'])));
    for (const r of results) expect(r.stdout).toContain('"/api/parallel?sap-client=100"');
    expect((await tokenStats()).byGrant.client_credentials).toBe(1);
  });

  test('100 parallel first requests to a password-grant destination cause one token fetch', async () => {
    const results = await Promise.all(Array.from({ length: 100 }, () => curl(['http://profile/burst'])));
    for (const r of results) expect(r.stdout).toContain('"path":"/burst"');
    expect((await tokenStats()).byGrant.password).toBe(1);
  });

  test('BasicAuthentication and OAuth2Password', async () => {
    const basic = JSON.parse((await curl(['http://billing/invoices'])).stdout) as {
      headers: [string, string][];
    };
    const expected = `Basic ${Buffer.from('billing-user:b1lling-PASS-xyz').toString('base64')}`;
    expect(basic.headers.find(([n]) => n.toLowerCase() === 'authorization')?.[1]).toBe(expected);
    const profile = JSON.parse((await curl(['http://profile/me'])).stdout) as { headers: [string, string][] };
    expect(profile.headers.find(([n]) => n.toLowerCase() === 'authorization')?.[1]).toMatch(/^Bearer /);
    expect((await tokenStats()).byGrant.password).toBe(1);
  });

  test('ClientCertificateAuthentication: nginx that requires a client certificate accepts the request', async () => {
    const r = await curl(['http://secure/']);
    expect(r.stdout.trim()).toBe(`mtls from 198.51.100.10:8443 to ${lab.addr.appV4} client CN=detour-client`);
  });

  test('a TCP destination is piped to its address', async () => {
    const r = await curl(['http://legacy-db/']);
    expect(r.stdout).toContain('tcp-target from 198.51.100.10:80');
  });

  test('an upstream that is down gives 503 with SAP-style error headers', async () => {
    const r = await curl(['-i', 'http://down/']);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 503/);
    expect(r.stdout).toMatch(/x-error-origin: Upstream/i);
    expect(r.stdout).toMatch(/x-request-id: \S+/i);
    expect(r.stdout).toMatch(/x-proxy-server: detour/i);
  });

  test('a wrong client secret gives 502 from the token service, without the secret', async () => {
    const r = await curl(['-i', 'http://badsecret/']);
    expect(r.stdout).toMatch(/^HTTP\/1\.1 502/);
    expect(r.stdout).toMatch(/x-error-origin: Token Service/i);
    expect(r.stdout).toMatch(/invalid_client/);
    expect(r.stdout).not.toContain('wr0ng-SECRET-789');
  });

  test('admin: /metrics counts DNS answers and requests; /config shows VIPs and no secret', async () => {
    await dig(['cached.example.test']);
    await dig(['cached.example.test']);
    const metrics = (await admin('/metrics')).stdout;
    expect(metrics).toMatch(/detour_dns_queries_total\{source="local",rcode="NOERROR",type="A"\} [1-9]/);
    expect(metrics).toMatch(
      /detour_http_requests_total\{destination="orders",status="200"\} (2[1-9]|[3-9]\d)/,
    );
    expect(metrics).toMatch(/detour_connections_total\{direction="outbound",route="destination"\} [1-9]/);
    expect(metrics).toMatch(/detour_dns_queries_total\{source="upstream",rcode="NOERROR",type="A"\} [1-9]/);
    expect(metrics).toMatch(/detour_dns_queries_total\{source="cache",rcode="NOERROR",type="A"\} [1-9]/);
    expect(metrics).toMatch(/detour_token_fetches_total\{destination="badsecret",outcome="error"\} [1-9]/);
    expect(metrics).toMatch(/detour_upstream_errors_total\{destination="down",kind="connect-refused"\} 1/);
    const config = JSON.parse((await admin('/config')).stdout) as {
      destinations: { Name: string; vip: { ipv4: string } }[];
    };
    const orders = config.destinations.find((d) => d.Name === 'orders');
    expect(orders?.vip.ipv4).toBe((await dig(['orders'])).stdout.trim());
    const everything = JSON.stringify(config) + dataplane.output();
    for (const secret of SECRETS) expect(everything).not.toContain(secret);
  });

  test('a destination added to the file resolves and works; a removed one stops', async () => {
    // One kept-alive connection making 300 requests over about 2 s while the file changes twice: none may fail.
    const load = curl([
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{num_connects}\\n',
      '--rate',
      '150/s',
      'http://billing/load/[1-300]',
    ]);
    writeFileSync(
      destinationsFile,
      destinationsYaml(
        `- Name: added\n  Type: HTTP\n  URL: http://198.51.100.10:8080/new\n  Authentication: NoAuthentication\n`,
      ),
    );
    await waitUntil(
      async () => /^240\.240\./.test((await dig(['added'])).stdout.trim()),
      'the added destination',
    );
    expect(JSON.parse((await curl(['http://added/x'])).stdout).path).toBe('/new/x');
    const vip = (await dig(['added'])).stdout.trim();
    writeFileSync(destinationsFile, destinationsYaml());
    await waitUntil(async () => (await dig(['added'])).stdout.trim() !== vip, 'the removed destination');
    const gone = await curl([`http://${vip}/x`]);
    expect(gone.exitCode).not.toBe(0);
    // The others kept working throughout, on the same connection.
    const codes = (await load).stdout.trim().split('\n');
    expect(codes).toHaveLength(300);
    expect(codes.filter((c) => c.startsWith('200 ')).length).toBe(300);
    expect(codes.filter((c) => c.endsWith(' 1')).length).toBe(1);
  });

  test('with the token service down, a cached token keeps working and a new fetch gives 502', async () => {
    const oauth = peers.find((p) => p.output().includes('oauth ready'))!;
    await oauth.stop();
    expect((await curl(['http://orders/while-down'])).stdout).toContain('/api/while-down');
    const fresh = await curl(['-i', 'http://badsecret/']);
    expect(fresh.stdout).toMatch(/^HTTP\/1\.1 502/);
    expect(fresh.stdout).toMatch(/x-error-origin: Token Service/i);
    expect(fresh.stdout).toMatch(/unreachable/);
  });
});

// OnPremise HTTP destinations over real sockets: the HTTP handler → a recording connectivity proxy
// (absolute form, Proxy-Authorization, identity per connection) → a backend on loopback.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createAuthenticator, type DataplaneAuthenticator } from '../../dataplane/auth/authenticator.js';
import type { TokenFetch } from '../../dataplane/auth/token-http.js';
import { createConnectivityProxy } from '../../dataplane/egress/connectivity-proxy.js';
import type { ConnectivityProxySettings } from '../../dataplane/egress/config.js';
import { closedPort } from './auth-helpers.js';
import { type Proxy, destination, fakeAuth, memoryLogger, request, startProxy } from './http-harness.js';

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** Stands in for the connectivity proxy: checks the token, counts identities per connection, forwards. */
class RecordingConnectivityProxy {
  server!: http.Server;
  port = 0;
  expectedToken: string | undefined = 'cp-token-1';
  /** set to make the proxy answer with this instead of forwarding */
  ownAnswer: { status: number; headers: Record<string, string> } | undefined;
  seen: Seen[] = [];
  violations = 0;
  connections = 0;
  private readonly identityOf = new WeakMap<object, string>();

  constructor(private readonly backendPort: () => number) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.on('connection', () => this.connections++);
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.seen.push({ url: req.url ?? '', headers: { ...req.headers } });
    if (!/^http:\/\//.test(req.url ?? '')) {
      res.writeHead(400).end('absolute form required');
      return;
    }
    if (
      this.expectedToken !== undefined &&
      req.headers['proxy-authorization'] !== `Bearer ${this.expectedToken}`
    ) {
      res.writeHead(407, { 'proxy-authenticate': 'Bearer' }).end('token rejected');
      return;
    }
    if (this.ownAnswer) {
      res.writeHead(this.ownAnswer.status, this.ownAnswer.headers).end('proxy says no');
      return;
    }
    const identity = String(req.headers['sap-connectivity-authentication'] ?? '');
    const bound = this.identityOf.get(req.socket);
    if (bound === undefined) this.identityOf.set(req.socket, identity);
    else if (bound !== identity) this.violations++;
    const target = new URL(req.url!);
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const up = http.request(
      {
        host: '127.0.0.1',
        port: this.backendPort(),
        path: target.pathname + target.search,
        method: req.method,
        headers,
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let backend: http.Server;
let backendPort = 0;
let cp: RecordingConnectivityProxy;
const proxies: Proxy[] = [];
const authenticators: DataplaneAuthenticator[] = [];

beforeAll(async () => {
  backend = http.createServer((req, res) => {
    // the echo waits a little, so parallel requests overlap
    setTimeout(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ url: req.url, headers: req.headers }));
    }, 5);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  backendPort = (backend.address() as AddressInfo).port;
  cp = new RecordingConnectivityProxy(() => backendPort);
  await cp.start();
});
afterAll(async () => {
  await cp.stop();
  backend.closeAllConnections();
  await new Promise<void>((r) => backend.close(() => r()));
});
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(authenticators.splice(0).map((a) => a.close()));
  cp.seen = [];
  cp.violations = 0;
  cp.expectedToken = 'cp-token-1';
  cp.ownAnswer = undefined;
});

/** The token service: cp-token-1, cp-token-2, ... or a failure while `down`. */
function tokenService() {
  const state = { fetches: 0, down: false, expiresIn: 3600 };
  const fetch: TokenFetch = async () => {
    state.fetches++;
    if (state.down)
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    return {
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({
        access_token: `cp-token-${state.fetches}`,
        token_type: 'bearer',
        expires_in: state.expiresIn,
      }),
    };
  };
  return { state, fetch };
}

function settings(port = cp.port, trusted = false): ConnectivityProxySettings {
  return {
    host: '127.0.0.1',
    httpPort: port,
    socks5Port: 20004,
    auth: trusted
      ? { kind: 'trusted' }
      : {
          kind: 'serviceKey',
          file: 'cp-key.json',
          clientId: 'cp-client',
          clientSecret: 'cp-client-secret',
          tokenUrl: 'https://auth.example.test/oauth/token',
        },
  };
}

async function start(
  d: ReturnType<typeof destination>,
  options: {
    port?: number;
    trusted?: boolean;
    fetch?: TokenFetch;
    destinationAuth?: ReturnType<typeof fakeAuth>;
  } = {},
) {
  const { log } = memoryLogger();
  const tokens = createAuthenticator({ logger: log, fetch: options.fetch ?? tokenService().fetch });
  authenticators.push(tokens);
  const connectivityProxy = createConnectivityProxy(settings(options.port, options.trusted), tokens);
  const proxy = await startProxy(d, {
    authenticator: (options.destinationAuth ?? fakeAuth(async () => ({ headers: [] }))).authenticator,
    egress: { connectivityProxy },
  });
  proxies.push(proxy);
  return proxy;
}

const erp = (over: Parameters<typeof destination>[0] = {}) =>
  destination({
    name: 'erp',
    proxyType: 'OnPremise',
    url: new URL('http://erp.virtual:44300/sap'),
    locationId: 'loc-a',
    ...over,
  });

describe('OnPremise through the connectivity proxy', () => {
  test('absolute form with the proxy token and location id; the backend never sees Proxy-Authorization', async () => {
    const proxy = await start(erp());
    const res = await request(proxy.port, '/orders?top=2', { headers: { 'x-app': 'a' } });
    expect(res.status).toBe(200);
    expect(cp.seen[0]).toMatchObject({
      url: 'http://erp.virtual:44300/sap/orders?top=2',
      headers: {
        host: 'erp.virtual:44300',
        'proxy-authorization': 'Bearer cp-token-1',
        'sap-connectivity-scc-location_id': 'loc-a',
      },
    });
    const echoed = JSON.parse(res.body) as Seen;
    expect(echoed.url).toBe('/sap/orders?top=2');
    expect(echoed.headers['proxy-authorization']).toBeUndefined();
    expect(echoed.headers['x-app']).toBe('a');
    expect(JSON.stringify(echoed)).not.toContain('cp-token');
  });

  test("the app's own location id wins; Basic authentication of the destination reaches the backend", async () => {
    const proxy = await start(erp({ authentication: 'BasicAuthentication' }), {
      destinationAuth: fakeAuth(async () => ({ headers: [['authorization', 'Basic dTpw']] })),
    });
    const res = await request(proxy.port, '/', {
      headers: { 'SAP-Connectivity-SCC-Location_ID': 'loc-app' },
    });
    expect(res.status).toBe(200);
    expect(cp.seen[0]?.headers['sap-connectivity-scc-location_id']).toBe('loc-app');
    expect((JSON.parse(res.body) as Seen).headers.authorization).toBe('Basic dTpw');
  });

  test('trusted mode sends no Proxy-Authorization', async () => {
    cp.expectedToken = undefined;
    const proxy = await start(erp(), { trusted: true });
    expect((await request(proxy.port, '/')).status).toBe(200);
    expect(cp.seen[0]?.headers['proxy-authorization']).toBeUndefined();
  });

  test('principal propagation: two users in parallel each arrive with their own identity, never sharing a connection', async () => {
    const proxy = await start(erp({ authentication: 'PrincipalPropagation' }));
    const users = ['alice', 'bob'].map(
      (u) => `eyJhbGciOiJub25lIn0.${Buffer.from(`{"sub":"${u}"}`).toString('base64url')}.sig`,
    );
    const agents = users.map(() => new http.Agent({ keepAlive: true, maxSockets: 4 }));
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => {
        const u = i % 2;
        return request(proxy.port, `/who?i=${i}`, {
          headers: { authorization: `Bearer ${users[u]}` },
          agent: agents[u]!,
        }).then((res) => ({ u, res }));
      }),
    );
    for (const a of agents) a.destroy();
    for (const { u, res } of results) {
      expect(res.status).toBe(200);
      const echoed = JSON.parse(res.body) as Seen;
      expect(echoed.headers['sap-connectivity-authentication']).toBe(`Bearer ${users[u]}`);
      expect(echoed.headers.authorization).toBeUndefined();
    }
    expect(cp.violations).toBe(0);
    expect(cp.seen).toHaveLength(40);
  });

  test('principal propagation without a user JWT: 400 with a clear message, nothing sent', async () => {
    const proxy = await start(erp({ authentication: 'PrincipalPropagation' }));
    const res = await request(proxy.port, '/', { headers: { authorization: 'Basic dTpw' } });
    expect(res.status).toBe(400);
    expect(res.headers['x-error-origin']).toBe('Transparent Proxy');
    expect(res.headers['x-error-message']).toContain("uses PrincipalPropagation: send the user's JWT");
    expect(cp.seen).toHaveLength(0);
  });

  test('technical user propagation sends the technical token (a forged one from the app is replaced)', async () => {
    const proxy = await start(erp({ authentication: 'OAuth2TechnicalUserPropagation' }), {
      destinationAuth: fakeAuth(async () => ({
        headers: [['sap-connectivity-technical-authentication', 'Bearer tech-token']],
      })),
    });
    const res = await request(proxy.port, '/', {
      headers: { 'SAP-Connectivity-Technical-Authentication': 'Bearer forged' },
    });
    expect(res.status).toBe(200);
    expect(cp.seen[0]?.headers['sap-connectivity-technical-authentication']).toBe('Bearer tech-token');
  });

  test('407 from the proxy → 502 Connectivity Proxy naming the cause', async () => {
    cp.expectedToken = 'another-token';
    const proxy = await start(erp());
    const res = await request(proxy.port, '/');
    expect(res.status).toBe(502);
    expect(res.headers['x-error-origin']).toBe('Connectivity Proxy');
    expect(res.headers['x-internal-error-code']).toBe('407');
    expect(res.headers['x-error-message']).toContain('refused the proxy authorization (407)');
    expect(res.headers['x-error-message']).toContain('(407): token rejected.');
  });

  test('407 once (token revoked): a new proxy token is fetched and the request retried', async () => {
    const service = tokenService();
    const proxy = await start(erp(), { fetch: service.fetch });
    expect((await request(proxy.port, '/')).status).toBe(200);
    cp.expectedToken = 'cp-token-2';
    const res = await request(proxy.port, '/again');
    expect(res.status).toBe(200);
    expect(service.state.fetches).toBe(2);
    expect(cp.seen.map((s) => s.headers['proxy-authorization'])).toEqual([
      'Bearer cp-token-1',
      'Bearer cp-token-1',
      'Bearer cp-token-2',
    ]);
  });

  test("the proxy's own 503 → 503 Connectivity Proxy; a backend's 503 passes through", async () => {
    cp.ownAnswer = { status: 503, headers: { 'x-error-origin': 'Connectivity Proxy' } };
    const proxy = await start(erp());
    const res = await request(proxy.port, '/');
    expect(res.status).toBe(503);
    expect(res.headers['x-error-origin']).toBe('Connectivity Proxy');
    expect(res.headers['x-error-message']).toContain('Cloud Connector');
    expect(res.headers['x-error-message']).toContain(': proxy says no');
    cp.ownAnswer = { status: 503, headers: { 'retry-after': '1', 'content-type': 'text/html' } };
    const passed = await request(proxy.port, '/');
    expect(passed.status).toBe(503);
    expect(passed.headers['x-error-origin']).toBeUndefined();
    expect(passed.body).toBe('proxy says no');
  });

  test('connectivity proxy down → 503 Connectivity Proxy', async () => {
    const proxy = await start(erp(), { port: await closedPort() });
    const res = await request(proxy.port, '/');
    expect(res.status).toBe(503);
    expect(res.headers['x-error-origin']).toBe('Connectivity Proxy');
    expect(res.headers['x-error-message']).toMatch(
      /the connectivity proxy 127\.0\.0\.1:\d+ .*refused the connection/,
    );
  });

  test('token service down: the cached token is used while valid; without one → 502 Token Service', async () => {
    const service = tokenService();
    const proxy = await start(erp(), { fetch: service.fetch });
    expect((await request(proxy.port, '/')).status).toBe(200);
    service.state.down = true;
    expect((await request(proxy.port, '/')).status).toBe(200);
    expect(service.state.fetches).toBe(1);

    const fresh = await start(erp(), { fetch: service.fetch });
    const res = await request(fresh.port, '/');
    expect(res.status).toBe(502);
    expect(res.headers['x-error-origin']).toBe('Token Service');
    expect(res.headers['x-error-message']).toContain('connectivity proxy token');
    expect(res.headers['x-error-message']).not.toContain('cp-client-secret');
  });

  test('without a connectivityProxy configured: 502 naming the missing config', async () => {
    const proxy = await startProxy(erp(), {
      authenticator: fakeAuth(async () => ({ headers: [] })).authenticator,
    });
    proxies.push(proxy);
    const res = await request(proxy.port, '/');
    expect(res.status).toBe(502);
    expect(res.headers['x-error-message']).toContain('no connectivityProxy configured');
  });
});

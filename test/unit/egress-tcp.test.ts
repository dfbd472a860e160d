import { afterEach, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import type { Destination } from '../../dataplane/destinations/types.js';
import { buildSapJwtFrame, buildUsernamePasswordFrame } from '../../dataplane/egress/socks5.js';
import { connectivityProxyAuth, failureKind, TcpEgressError } from '../../dataplane/egress/tcp-connect.js';
import { chooseTcpRoute, describeTcpRoute } from '../../dataplane/egress/tcp-route.js';
import type { ConnectivityProxy, EgressProxies, EgressProxy } from '../../dataplane/egress/types.js';
import { pipeTcpDestination, type TcpDestinationOptions } from '../../dataplane/tcp-destination.js';
import {
  cleanups,
  listen,
  startEarlyCloseUpstream,
  startEchoUpstream,
  startHalfCloseUpstream,
  startScriptedHttpProxy,
  startScriptedSocks5,
} from './egress-helpers.js';
import { destination, memoryLogger, waitFor, type Line } from './http-harness.js';

afterEach(() => cleanups.splice(0).forEach((fn) => fn()));

const JWT = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjb25uZWN0aXZpdHkifQ.c2lnbmF0dXJl';

const tcp = (extra: Partial<Destination> = {}): Destination =>
  destination({ name: 'erp-db', type: 'TCP', address: { host: 'virtual-db', port: 5432 }, ...extra });

function connectivityProxy(socks5Port: number, token: ConnectivityProxy['token']): ConnectivityProxy {
  return { host: '127.0.0.1', httpPort: 20003, socks5Port, token };
}

function egressProxies(proxy: EgressProxy | undefined, calls: unknown[] = []): EgressProxies {
  return {
    forTarget: (...args) => {
      calls.push(args);
      return proxy;
    },
  };
}

describe('route choice (pure)', () => {
  test('OnPremise → connectivity proxy with the location id; without one configured → unusable', () => {
    const cp = connectivityProxy(20004, async () => JWT);
    expect(
      chooseTcpRoute(tcp({ proxyType: 'OnPremise', locationId: 'loc1' }), { connectivityProxy: cp }),
    ).toEqual({
      route: { kind: 'connectivity-proxy', proxy: cp, locationId: 'loc1' },
    });
    expect(chooseTcpRoute(tcp({ proxyType: 'OnPremise' }), {})).toEqual({
      unusable:
        'ProxyType OnPremise needs a connectivity proxy, and none is configured (connectivityProxy in detour.yaml)',
    });
  });

  test('Internet → whatever EgressProxies says for (host, port, tcp); nothing configured → direct', () => {
    const calls: unknown[] = [];
    const squid: EgressProxy = { kind: 'http', host: 'proxy.corp', port: 3128, username: 'u', password: 'p' };
    expect(chooseTcpRoute(tcp(), { egressProxies: egressProxies(squid, calls) })).toEqual({
      route: { kind: 'egress-proxy', proxy: squid },
    });
    expect(calls).toEqual([['virtual-db', 5432, 'tcp']]);
    expect(chooseTcpRoute(tcp(), { egressProxies: egressProxies(undefined) })).toEqual({
      route: { kind: 'direct' },
    });
    expect(chooseTcpRoute(tcp(), {})).toEqual({ route: { kind: 'direct' } });
    expect(chooseTcpRoute(destination({ name: 'web' }), {})).toEqual({
      unusable: 'not a TCP destination with an Address',
    });
  });

  test('route descriptions never carry credentials', () => {
    const text = describeTcpRoute({
      kind: 'egress-proxy',
      proxy: { kind: 'socks5', host: '2001:db8::1', port: 1080, username: 'svc', password: 'pw-secret' },
    });
    expect(text).toBe('SOCKS5 proxy [2001:db8::1]:1080 (authenticated)');
    expect(
      describeTcpRoute({
        kind: 'connectivity-proxy',
        proxy: connectivityProxy(20004, async () => JWT),
        locationId: 'loc1',
      }),
    ).toBe('connectivity proxy 127.0.0.1:20004 (SOCKS5, location loc1)');
  });

  test('connectivity proxy authentication: token → 0x80; trusted mode → 0x00, or 0x80 with an empty JWT for a location', () => {
    expect(connectivityProxyAuth(JWT, undefined)).toEqual({ method: 'sap-jwt', token: JWT });
    expect(connectivityProxyAuth(JWT, 'loc')).toEqual({ method: 'sap-jwt', token: JWT, locationId: 'loc' });
    expect(connectivityProxyAuth(undefined, undefined)).toEqual({ method: 'none' });
    expect(connectivityProxyAuth(undefined, 'loc')).toEqual({
      method: 'sap-jwt',
      token: '',
      locationId: 'loc',
    });
  });
});

test('failure kinds for detour_upstream_errors_total', () => {
  const kind = (stage: string, extra: ConstructorParameters<typeof TcpEgressError>[2] = {}) =>
    failureKind(new TcpEgressError(stage, 'x', extra));
  expect(kind('token')).toBe('token-service');
  expect(kind('socks5 proxy-connect', { code: 'ECONNREFUSED' })).toBe('connect-refused');
  expect(kind('http-connect proxy-connect', { code: 'EHOSTUNREACH' })).toBe('unreachable');
  expect(kind('socks5 auth', { code: 'ETIMEDOUT' })).toBe('connect-timeout');
  expect(kind('http-connect connect', { code: 'CONNECT_TIMEOUT' })).toBe('connect-timeout');
  expect(kind('socks5 auth', { replyCode: 1 })).toBe('proxy-authentication');
  expect(kind('socks5 greeting')).toBe('proxy-authentication');
  expect(kind('http-connect connect', { replyCode: 407, code: 'PROXY_CONNECT_STATUS' })).toBe(
    'proxy-authentication',
  );
  expect(kind('socks5 connect', { replyCode: 3 })).toBe('unreachable');
  expect(kind('socks5 connect', { replyCode: 2 })).toBe('proxy');
  expect(kind('http-connect connect', { replyCode: 503 })).toBe('unreachable');
  expect(kind('http-connect connect', { replyCode: 403 })).toBe('proxy');
  expect(kind('internal')).toBe('internal');
});

// ---------------------------------------------------------------------------------------------------
// pipeTcpDestination on loopback: app → "dataplane" listener → proxy → upstream

async function startDataplane(d: Destination, extra: Partial<TcpDestinationOptions>) {
  const { log, lines, text } = memoryLogger();
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    s.on('error', () => {});
    pipeTcpDestination(s, d, { logger: log, connectTimeoutMs: 1000, ...extra });
  });
  return { port: await listen(server), lines, text };
}

/** Connects, waits for the upstream's greeting line, sends a line and reads its echo. */
function talk(port: number): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const client = net.connect({ port, host: '127.0.0.1' });
    let data = '';
    client.on('data', (c: Buffer) => {
      data += c.toString();
      if (data === 'hello\n') client.write('ping\n');
      if (data === 'hello\nping\n') client.end();
    });
    client.on('error', (e: NodeJS.ErrnoException) => resolve({ data, error: e.code ?? e.message }));
    client.on('close', () => resolve({ data }));
  });
}

const failed = (lines: Line[]) =>
  waitFor('failure line', () =>
    lines.find((l) => l.msg === 'upstream connect through proxy failed; resetting'),
  );

describe('pipeTcpDestination through proxies', () => {
  test('OnPremise: SOCKS5 0x80 with the token and location id, CONNECT to the virtual host', async () => {
    const upstreamPort = await startEchoUpstream();
    const proxy = await startScriptedSocks5({ upstreamPort });
    const tenants: unknown[] = [];
    const dp = await startDataplane(tcp({ proxyType: 'OnPremise', locationId: 'cloud-sdk-js' }), {
      connectivityProxy: connectivityProxy(proxy.port, async (tenant?: string) => {
        tenants.push(tenant);
        return JWT;
      }),
      tenant: 'tenant-a',
    });
    expect(await talk(dp.port)).toEqual({ data: 'hello\nping\n' });
    expect(tenants).toEqual(['tenant-a']);
    const [rec] = proxy.recorded;
    expect(rec!.auth!.equals(buildSapJwtFrame(JWT, 'cloud-sdk-js'))).toBe(true);
    expect(rec!.connect!.subarray(4, 5 + 'virtual-db'.length).toString('latin1')).toBe('\x0avirtual-db');
    const closed = await waitFor('close line', () => dp.lines.find((l) => l.msg === 'connection closed'));
    expect(closed).toMatchObject({
      destination: 'erp-db',
      address: 'virtual-db:5432',
      via: `connectivity proxy 127.0.0.1:${proxy.port} (SOCKS5, location cloud-sdk-js)`,
      upstreamConnected: true,
      bytesIn: 5,
      bytesOut: 11,
    });
    expect(dp.text()).not.toContain(JWT);
  });

  test.each([
    [0x03, 'NETWORK_UNREACHABLE', /no Cloud Connector is connected/],
    [0x02, 'FORBIDDEN', /access control/],
  ])('OnPremise, CONNECT reply 0x0%s: app reset, one line with the meaning', async (rep, name, meaning) => {
    const proxy = await startScriptedSocks5({ rep });
    const events: unknown[] = [];
    const dp = await startDataplane(tcp({ proxyType: 'OnPremise', locationId: 'nowhere' }), {
      connectivityProxy: connectivityProxy(proxy.port, async () => JWT),
      onUpstreamError: (e) => events.push(e),
    });
    expect(await talk(dp.port)).toEqual({ data: '', error: 'ECONNRESET' });
    const line = await failed(dp.lines);
    expect(line).toMatchObject({
      level: 40,
      destination: 'erp-db',
      address: 'virtual-db:5432',
      stage: 'socks5 connect',
      replyCode: `0x0${rep}`,
      replyName: name,
    });
    expect(line.reason).toMatch(meaning);
    expect(dp.lines.filter((l) => l.level === 40)).toHaveLength(1);
    const kind = rep === 0x03 ? 'unreachable' : 'proxy';
    expect(line.kind).toBe(kind);
    expect(events).toEqual([{ destination: 'erp-db', kind }]);
  });

  test('OnPremise, token rejected (auth reply 01 05) and token service down', async () => {
    const proxy = await startScriptedSocks5({ authStatus: 0x05 });
    const rejected = await startDataplane(tcp({ proxyType: 'OnPremise' }), {
      connectivityProxy: connectivityProxy(proxy.port, async () => JWT),
    });
    expect((await talk(rejected.port)).error).toBe('ECONNRESET');
    expect(await failed(rejected.lines)).toMatchObject({
      stage: 'socks5 auth',
      replyCode: '0x05',
      replyName: 'CONNECTION_REFUSED',
    });

    const noToken = await startDataplane(tcp({ proxyType: 'OnPremise' }), {
      connectivityProxy: connectivityProxy(proxy.port, () =>
        Promise.reject(new Error('token service https://uaa.example/oauth/token answered 503')),
      ),
    });
    expect((await talk(noToken.port)).error).toBe('ECONNRESET');
    expect(await failed(noToken.lines)).toMatchObject({
      stage: 'token',
      reason:
        'cannot get a token for the connectivity proxy: token service https://uaa.example/oauth/token answered 503',
    });
    expect(proxy.recorded).toHaveLength(1); // no connection to the proxy without a token
  });

  test('OnPremise, connectivity proxy down: reset and a line naming the proxy', async () => {
    const port = await listen(net.createServer());
    cleanups.splice(0).forEach((fn) => fn());
    const dp = await startDataplane(tcp({ proxyType: 'OnPremise' }), {
      connectivityProxy: connectivityProxy(port, async () => JWT),
    });
    expect((await talk(dp.port)).error).toBe('ECONNRESET');
    expect(await failed(dp.lines)).toMatchObject({
      via: `connectivity proxy 127.0.0.1:${port} (SOCKS5)`,
      stage: 'socks5 proxy-connect',
      reason: 'cannot connect to the proxy (ECONNREFUSED)',
    });
  });

  test('Internet via a SOCKS5 corporate proxy with username/password', async () => {
    const upstreamPort = await startEchoUpstream();
    const proxy = await startScriptedSocks5({ upstreamPort });
    const dp = await startDataplane(tcp(), {
      egressProxies: egressProxies({
        kind: 'socks5',
        host: '127.0.0.1',
        port: proxy.port,
        username: 'svc',
        password: 'pw1',
      }),
    });
    expect(await talk(dp.port)).toEqual({ data: 'hello\nping\n' });
    expect(proxy.recorded[0]!.auth!.equals(buildUsernamePasswordFrame('svc', 'pw1'))).toBe(true);
  });

  test('Internet via an HTTP CONNECT proxy; wrong password → reset and a 407 line without the password', async () => {
    const upstreamPort = await startEchoUpstream();
    const proxy = await startScriptedHttpProxy({ upstreamPort, credentials: 'svc:right' });
    const good = await startDataplane(tcp(), {
      egressProxies: egressProxies({
        kind: 'http',
        host: '127.0.0.1',
        port: proxy.port,
        username: 'svc',
        password: 'right',
      }),
    });
    expect(await talk(good.port)).toEqual({ data: 'hello\nping\n' });
    expect(proxy.heads[0]).toMatch(/^CONNECT virtual-db:5432 HTTP\/1\.1\r\n/);

    const bad = await startDataplane(tcp(), {
      egressProxies: egressProxies({
        kind: 'http',
        host: '127.0.0.1',
        port: proxy.port,
        username: 'svc',
        password: 'wrong-pw',
      }),
    });
    expect(await talk(bad.port)).toEqual({ data: '', error: 'ECONNRESET' });
    expect(await failed(bad.lines)).toMatchObject({
      destination: 'erp-db',
      via: `HTTP CONNECT proxy 127.0.0.1:${proxy.port} (authenticated)`,
      stage: 'http-connect connect',
      replyCode: 407,
      reason: 'the proxy rejected the username or password (407 Proxy Authentication Required)',
    });
    expect(bad.text()).not.toContain('wrong-pw');
  });

  test('a silent proxy: reset after the connect timeout, not a hang', async () => {
    const proxy = await startScriptedHttpProxy({ silent: true });
    const dp = await startDataplane(tcp(), {
      egressProxies: egressProxies({ kind: 'http', host: '127.0.0.1', port: proxy.port }),
      connectTimeoutMs: 300,
    });
    expect((await talk(dp.port)).error).toBe('ECONNRESET');
    expect(await failed(dp.lines)).toMatchObject({
      reason: 'no answer from the proxy within 300 ms',
      timeoutMs: 300,
    });
  });
});

describe('half-close through proxies', () => {
  /** Sends a payload, half-closes, and collects everything until the upstream closes. */
  function halfClose(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      let data = '';
      client.on('data', (c: Buffer) => {
        data += c.toString();
        if (data === 'ready\n') client.end('SELECT 1');
      });
      client.on('error', reject);
      client.on('end', () => resolve(data));
    });
  }

  test.each(['socks5', 'http'] as const)(
    'the app’s FIN reaches the target through %s; its answer comes back',
    async (kind) => {
      const upstreamPort = await startHalfCloseUpstream();
      const proxy =
        kind === 'socks5'
          ? await startScriptedSocks5({ upstreamPort })
          : await startScriptedHttpProxy({ upstreamPort });
      const dp = await startDataplane(tcp(), {
        egressProxies: egressProxies({ kind, host: '127.0.0.1', port: proxy.port }),
      });
      expect(await halfClose(dp.port)).toBe('ready\ngot:SELECT 1');
    },
  );

  test('OnPremise (0x80) likewise', async () => {
    const upstreamPort = await startHalfCloseUpstream();
    const proxy = await startScriptedSocks5({ upstreamPort });
    const dp = await startDataplane(tcp({ proxyType: 'OnPremise' }), {
      connectivityProxy: connectivityProxy(proxy.port, async () => JWT),
    });
    expect(await halfClose(dp.port)).toBe('ready\ngot:SELECT 1');
  });

  test.each(['socks5', 'http'] as const)(
    'the target half-closes first through %s: what the app sends afterwards still arrives',
    async (kind) => {
      const upstream = await startEarlyCloseUpstream();
      const proxy =
        kind === 'socks5'
          ? await startScriptedSocks5({ upstreamPort: upstream.port })
          : await startScriptedHttpProxy({ upstreamPort: upstream.port });
      const dp = await startDataplane(tcp(), {
        egressProxies: egressProxies({ kind, host: '127.0.0.1', port: proxy.port }),
      });
      const client = net.connect({ port: dp.port, host: '127.0.0.1', allowHalfOpen: true });
      client.on('data', () => {});
      client.on('end', () => client.end('late data'));
      expect(await upstream.received).toBe('late data');
    },
  );
});

import { afterEach, describe, expect, test } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { TokenServiceError } from '../../dataplane/auth/types.js';
import type { Destination } from '../../dataplane/destinations/types.js';
import { startEchoUpstream, type EchoUpstream } from '../peers/echo-upstream.js';
import { destination, fakeAuth, request, startProxy, waitFor, type Proxy } from './http-harness.js';

// Loopback only: app (http client) → net.Server → handler → echo upstream, all on 127.0.0.1.
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function upstream(): Promise<EchoUpstream> {
  const u = await startEchoUpstream();
  cleanups.push(() => u.close());
  return u;
}

async function proxy(...args: Parameters<typeof startProxy>): Promise<Proxy> {
  const p = await startProxy(...args);
  cleanups.push(() => p.close());
  return p;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const accessLines = (p: Proxy) => p.lines.filter((l) => l.msg === 'http request');

describe('HTTP destination handler', () => {
  test('rewrites and forwards: path prefix, queries, headers, Host, auth, x-request-id; response headers back', async () => {
    const up = await upstream();
    const auth = fakeAuth();
    const p = await proxy(
      destination({
        url: new URL(`${up.origin}/api`),
        headers: [['x-api-version', '2']],
        queries: [['sap-client', '100']],
      }),
      { authenticator: auth.authenticator },
    );
    const res = await request(p.port, '/v1/items?q=1', {
      headers: {
        host: 'orders',
        'x-api-version': '1',
        authorization: 'Bearer forged',
        connection: 'keep-alive',
      },
    });
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('echo');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
    const seen = up.requests[0];
    expect(seen?.path).toBe('/api/v1/items?q=1&sap-client=100');
    expect(up.lastHeader('host')).toEqual([`127.0.0.1:${up.port}`]);
    expect(up.lastHeader('x-api-version')).toEqual(['1', '2']);
    expect(up.lastHeader('authorization')).toEqual(['Bearer tok-1']);
    expect(up.lastHeader('x-request-id')[0]).toMatch(/^[0-9a-f-]{36}$/);
    const line = accessLines(p)[0];
    expect(line).toMatchObject({
      destination: 'orders',
      method: 'GET',
      status: 200,
      upstream: `${up.origin}/api/v1/items`,
    });
    expect(line?.bytesOut).toBe(Buffer.byteLength(res.body));
    expect(typeof line?.durationMs).toBe('number');
    expect(line?.requestId).toBe(up.lastHeader('x-request-id')[0]);
  });

  test('keep-alive: many requests from one app connection share one upstream connection', async () => {
    const up = await upstream();
    const p = await proxy(destination({ url: new URL(up.origin) }));
    let appConnections = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agent.on('free', () => undefined);
    cleanups.push(() => agent.destroy());
    for (let i = 0; i < 5; i++) {
      const res = await request(p.port, `/n/${i}`, { agent });
      expect(res.status).toBe(200);
    }
    for (const sockets of Object.values(agent.freeSockets)) appConnections += sockets?.length ?? 0;
    expect(appConnections).toBe(1);
    expect(up.requests.map((r) => r.connection)).toEqual([1, 1, 1, 1, 1]);
    expect(up.connections()).toBe(1);
  });

  test('401 from an OAuth destination: token refetched (forceRefresh) and the request retried once', async () => {
    const up = await upstream();
    up.authorize = (h) => h.authorization === 'Bearer tok-2';
    const auth = fakeAuth();
    const p = await proxy(
      destination({ url: new URL(up.origin), authentication: 'OAuth2ClientCredentials' }),
      { authenticator: auth.authenticator },
    );
    const res = await request(p.port, '/upload', { method: 'POST', body: 'small body' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ bytes: 10 });
    expect(auth.calls).toEqual([undefined, { forceRefresh: true }]);
    expect(up.requests.map((r) => r.bodyBytes)).toEqual([10, 10]);
    expect(accessLines(p)[0]).toMatchObject({ status: 200, retried: true, bytesIn: 10 });

    // still 401 after the retry: the app gets the 401 (one retry only)
    up.authorize = () => false;
    const again = await request(p.port, '/x');
    expect(again.status).toBe(401);
    expect(auth.calls.length).toBe(4);
  });

  test('401 is passed through without retry for non-OAuth destinations and streamed (chunked) bodies', async () => {
    const up = await upstream();
    up.authorize = () => false;
    const basic = fakeAuth(async () => ({ headers: [['authorization', 'Basic dTpw']] }));
    const p1 = await proxy(destination({ url: new URL(up.origin), authentication: 'BasicAuthentication' }), {
      authenticator: basic.authenticator,
    });
    expect((await request(p1.port, '/x')).status).toBe(401);
    expect(basic.calls).toEqual([undefined]);

    const oauth = fakeAuth();
    const p2 = await proxy(destination({ url: new URL(up.origin), authentication: 'OAuth2Password' }), {
      authenticator: oauth.authenticator,
    });
    const res = await request(p2.port, '/upload', {
      method: 'POST',
      headers: { 'transfer-encoding': 'chunked' },
      body: 'chunked body',
    });
    expect(res.status).toBe(401);
    expect(oauth.calls).toEqual([undefined]);
  });

  test('token service failure: 502 with x-error-* headers and JSON body; upstream never called', async () => {
    const up = await upstream();
    const auth = fakeAuth(async () => {
      throw new TokenServiceError(
        'token service https://auth.example.test answered 401 (invalid_client)',
        401,
      );
    });
    const p = await proxy(
      destination({ url: new URL(up.origin), authentication: 'OAuth2ClientCredentials' }),
      {
        authenticator: auth.authenticator,
        proxyServerName: 'detour-test',
      },
    );
    const res = await request(p.port, '/x', { headers: { 'x-request-id': 'my-id-1' } });
    expect(res.status).toBe(502);
    expect(res.headers).toMatchObject({
      'x-error-origin': 'Token Service',
      'x-internal-error-code': '401',
      'x-request-id': 'my-id-1',
      'x-proxy-server': 'detour-test',
      'content-type': 'application/json',
    });
    expect(res.headers['x-error-message']).toContain("destination 'orders'");
    expect(JSON.parse(res.body).error).toMatchObject({
      origin: 'Token Service',
      requestId: 'my-id-1',
      status: 502,
    });
    expect(up.requests).toHaveLength(0);
    expect(accessLines(p)[0]).toMatchObject({
      status: 502,
      errorOrigin: 'Token Service',
      errorKind: 'token-service',
    });
  });

  test('Expect: 100-continue and a failing token service: 502 at once, the body is never sent', async () => {
    const up = await upstream();
    const auth = fakeAuth(async () => {
      throw new TokenServiceError('token service unreachable (ECONNREFUSED)');
    });
    const p = await proxy(destination({ url: new URL(up.origin) }), { authenticator: auth.authenticator });
    const dir = mkdtempSync(join(tmpdir(), 'detour-http-expect-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'body.bin'), '');
    truncateSync(join(dir, 'body.bin'), 16 * 1024 * 1024);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'curl',
        [
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code} %{size_upload}',
          '-H',
          'Expect: 100-continue',
          '--expect100-timeout',
          '10',
          '-T',
          join(dir, 'body.bin'),
          '-X',
          'POST',
          `http://127.0.0.1:${p.port}/upload`,
        ],
        { timeout: 20_000 },
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      ),
    );
    expect(out).toBe('502 0');
    expect(up.requests).toHaveLength(0);
  });

  test('other authentication failures: 502 from the Transparent Proxy origin', async () => {
    const auth = fakeAuth(async () => {
      throw new Error('key store client.p12 cannot be read: mac verify failure');
    });
    const p = await proxy(destination({ url: new URL('http://127.0.0.1:9/') }), {
      authenticator: auth.authenticator,
    });
    const res = await request(p.port, '/');
    expect([res.status, res.headers['x-error-origin']]).toEqual([502, 'Transparent Proxy']);
  });

  test('upstream down: 503 Upstream, message names destination and target', async () => {
    const port = await freePort();
    const p = await proxy(destination({ url: new URL(`http://127.0.0.1:${port}/api`) }));
    const res = await request(p.port, '/x');
    expect(res.status).toBe(503);
    expect(res.headers['x-error-origin']).toBe('Upstream');
    expect(res.headers['x-error-message']).toContain(`'orders' (http://127.0.0.1:${port})`);
    expect(res.headers['x-error-message']).toContain('ECONNREFUSED');
  });

  test('upstream hangs past the read timeout: 504 after URL.socketReadTimeoutInSeconds', async () => {
    const up = await upstream();
    const metrics = { requests: [] as unknown[], errors: [] as unknown[] };
    const p = await proxy(destination({ url: new URL(up.origin), readTimeoutMs: 300 }), {
      metrics: { onRequest: (e) => metrics.requests.push(e), onUpstreamError: (e) => metrics.errors.push(e) },
    });
    const started = Date.now();
    const res = await request(p.port, '/hang');
    const elapsed = Date.now() - started;
    expect(res.status).toBe(504);
    expect(res.headers['x-error-message']).toContain('300 ms');
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(3000);
    expect(metrics.errors).toEqual([{ destination: 'orders', kind: 'read-timeout' }]);
    expect(metrics.requests).toEqual([
      { destination: 'orders', status: 504, durationMs: expect.any(Number) },
    ]);
  });

  test('upstream does not accept the connection: 504 after URL.connectionTimeoutInSeconds', async () => {
    // A listen backlog of 0 filled by connections nobody accepts: further SYNs are dropped.
    const py = spawn('python3', [
      '-c',
      [
        'import socket, time',
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
        'print(s.getsockname()[1], flush=True)',
        'fill = []',
        'for i in range(4):',
        '    c = socket.socket(); c.setblocking(False)',
        '    try: c.connect(s.getsockname())',
        '    except BlockingIOError: pass',
        '    fill.append(c)',
        'time.sleep(0.5)',
        "print('ready', flush=True)",
        'time.sleep(30)',
      ].join('\n'),
    ]);
    cleanups.push(() => void py.kill('SIGKILL'));
    let out = '';
    py.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await waitFor('backlog filler', () => (out.includes('ready') ? true : undefined), 5000);
    const port = Number(out.split('\n')[0]);
    const p = await proxy(destination({ url: new URL(`http://127.0.0.1:${port}/`), connectTimeoutMs: 400 }));
    const started = Date.now();
    const res = await request(p.port, '/x');
    expect(res.status).toBe(504);
    expect(res.headers['x-error-message']).toMatch(/timed out after 400 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
  });

  test('destination removed (or invalid) while the app keeps its connection: 502 Destination Service', async () => {
    const up = await upstream();
    let current: Destination | undefined = destination({ url: new URL(up.origin) });
    const p = await proxy(() => current);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    expect((await request(p.port, '/a', { agent })).status).toBe(200);
    current = undefined;
    const res = await request(p.port, '/b', { agent });
    expect(res.status).toBe(502);
    expect(res.headers['x-error-origin']).toBe('Destination Service');
    current = destination({ name: 'db', type: 'TCP', address: { host: '127.0.0.1', port: 5432 } });
    const tcp = await request(p.port, '/c', { agent });
    expect(tcp.status).toBe(502);
    expect(tcp.headers['x-error-message']).toContain("Destination 'db'");
  });

  test('a destination whose URL changes gets a new upstream pool', async () => {
    const a = await upstream();
    const b = await upstream();
    let current = destination({ url: new URL(a.origin) });
    const p = await proxy(() => current);
    expect((await request(p.port, '/1')).status).toBe(200);
    current = destination({ url: new URL(b.origin) });
    expect((await request(p.port, '/2')).status).toBe(200);
    expect([a.requests.length, b.requests.length]).toEqual([1, 1]);
  });

  test('upstream breaks off mid-response: the app connection is destroyed (status cannot change)', async () => {
    const up = await upstream();
    const p = await proxy(destination({ url: new URL(up.origin) }));
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: p.port, path: '/break', agent: false }, (res) => {
        expect(res.statusCode).toBe(200);
        res.on('data', () => undefined);
        res.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
        res.on('end', () => resolve('end'));
        res.on('close', () => resolve(res.complete ? 'complete' : 'aborted'));
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    });
    expect(outcome).not.toBe('end');
    expect(outcome).not.toBe('complete');
    const line = await waitFor('access line', () => accessLines(p)[0]);
    expect(line).toMatchObject({ status: 200, error: 'upstream response broke off' });
  });

  test('WebSocket: upgrade passes through with auth and Host; frames echo both ways', async () => {
    const up = await upstream();
    const p = await proxy(destination({ url: new URL(`${up.origin}/base`) }));
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/ws`);
    const messages: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => {
        ws.send('hello');
        ws.send('x'.repeat(70_000));
      };
      ws.onmessage = (e) => {
        messages.push(String(e.data));
        if (messages.length === 2) ws.close(1000, 'bye');
      };
      ws.onclose = () => resolve();
      ws.onerror = () => reject(new Error('websocket error'));
    });
    expect(messages[0]).toBe('hello');
    expect(messages[1]?.length).toBe(70_000);
    const seen = up.requests[0];
    expect(seen?.path).toBe('/base/ws');
    expect(up.lastHeader('authorization')).toEqual(['Bearer tok-1']);
    expect(up.lastHeader('host')).toEqual([`127.0.0.1:${up.port}`]);
    const line = await waitFor('upgrade line', () => p.lines.find((l) => l.msg === 'http upgrade'));
    expect(line).toMatchObject({ status: 101, destination: 'orders' });
  });

  test('WebSocket to a refusing upstream: 503 error response on the raw socket', async () => {
    const port = await freePort();
    const p = await proxy(destination({ url: new URL(`http://127.0.0.1:${port}/`) }));
    const raw = await new Promise<string>((resolve) => {
      const s = net.connect(p.port, '127.0.0.1', () =>
        s.write(
          'GET /ws HTTP/1.1\r\nHost: orders\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
            'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        ),
      );
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.on('close', () => resolve(data));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\n/);
    expect(raw).toContain('x-error-origin: Upstream');
  });

  test('malformed request: 400 from the Transparent Proxy origin', async () => {
    const p = await proxy(destination({ url: new URL('http://127.0.0.1:9/') }));
    const raw = await new Promise<string>((resolve) => {
      const s = net.connect(p.port, '127.0.0.1', () => s.write('GARBAGE\r\n\r\n'));
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.on('close', () => resolve(data));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(raw).toContain('x-error-origin: Transparent Proxy');
  });

  test('HEAD, 204 and errors from the upstream itself pass through unchanged', async () => {
    const up = await upstream();
    const p = await proxy(destination({ url: new URL(up.origin) }));
    const head = await request(p.port, '/bytes/5000', { method: 'HEAD' });
    expect([head.status, head.headers['content-length'], head.body]).toEqual([200, '5000', '']);
    expect((await request(p.port, '/status/204')).status).toBe(204);
    const notFound = await request(p.port, '/status/404');
    expect(notFound.status).toBe(404);
    expect(notFound.headers['x-error-origin']).toBeUndefined();
  });

  test('no secret of the destination or its credentials in responses or log lines', async () => {
    const up = await upstream();
    const secrets = ['s3cret-client', 'p4ssword', 'apikey-123', 'tok-secret-value', 'ts-pass'];
    const d = destination({
      url: new URL(up.origin),
      authentication: 'OAuth2ClientCredentials',
      clientId: 'client',
      clientSecret: 's3cret-client',
      user: 'u',
      password: 'p4ssword',
      tokenServicePassword: 'ts-pass',
      queries: [['api_key', 'apikey-123']],
      properties: { clientSecret: 's3cret-client', Password: 'p4ssword' },
    });
    let fail = false;
    const auth = fakeAuth(async () => {
      if (fail) throw new TokenServiceError('token service answered 401', 401);
      return { headers: [['authorization', 'Bearer tok-secret-value']] };
    });
    const downPort = await freePort();
    let current = d;
    const p = await proxy(() => current, { authenticator: auth.authenticator });
    const responses = [await request(p.port, '/ok?x=1')];
    fail = true;
    responses.push(await request(p.port, '/token-fails'));
    fail = false;
    current = { ...d, url: new URL(`http://127.0.0.1:${downPort}/`) };
    responses.push(await request(p.port, '/down'));
    current = { ...d, readTimeoutMs: 200 };
    responses.push(await request(p.port, '/hang'));
    expect(responses.map((r) => r.status)).toEqual([200, 502, 503, 504]);
    // The upstream got the credentials (that is the point)...
    expect(up.requests[0]?.path).toContain('api_key=apikey-123');
    // ...but no error response and no log line shows any of them.
    const errorText = responses
      .slice(1)
      .map((r) => JSON.stringify(r.headers) + r.body)
      .join('\n');
    const logText = p.logText();
    for (const secret of secrets) {
      expect(errorText).not.toContain(secret);
      expect(logText).not.toContain(secret);
    }
    expect(accessLines(p)).toHaveLength(4);
  });

  test('a target answering with invalid HTTP: 502 Upstream (protocol)', async () => {
    const replies = [
      'NOT HTTP AT ALL\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\nContent-Length: 0\r\n\r\n',
    ];
    for (const reply of replies) {
      const bad = net.createServer((s) => s.once('data', () => s.end(reply)));
      await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
      cleanups.push(() => void bad.close());
      const port = (bad.address() as net.AddressInfo).port;
      const p = await proxy(destination({ url: new URL(`http://127.0.0.1:${port}/`) }));
      const res = await request(p.port, '/');
      expect([res.status, res.headers['x-error-origin']]).toEqual([502, 'Upstream']);
      expect(res.headers['x-error-message']).toMatch(/invalid HTTP response/);
    }
  });

  test('close(): idle app connections end at once, a running request finishes with Connection: close', async () => {
    const up = await upstream();
    const p = await startProxy(destination({ url: new URL(up.origin), readTimeoutMs: 400 }));
    cleanups.push(() => p.close());
    const idle = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => idle.destroy());
    expect((await request(p.port, '/warm', { agent: idle })).status).toBe(200);
    const idleSocket = Object.values(idle.freeSockets)[0]?.[0];
    expect(idleSocket).toBeDefined();
    const idleClosed = new Promise<void>((r) => idleSocket?.once('close', () => r()));
    const running = request(p.port, '/hang', { headers: { connection: 'keep-alive' } });
    await waitFor('hanging request upstream', () =>
      up.requests.some((r) => r.path === '/hang') ? true : undefined,
    );
    const closed = p.handler.close(5000);
    await idleClosed;
    const res = await running;
    expect(res.status).toBe(504);
    expect(res.headers.connection).toBe('close');
    await closed;
  });
});

// HTTP and TCP destinations over a real network: the handler runs in the lab's `app` namespace (one
// loopback port per destination stands in for the VIP routing the dataplane does), curl is the app,
// real nginx in `net` is the target. Checks what loopback cannot: the Host and Authorization nginx
// sees, keep-alive across the veth, a connect timeout against a black hole, a read timeout against a
// peer that never answers, TCP piping and refusal logging. Needs root (creates network namespaces).
import { beforeAll, describe, expect, test } from '@jest/globals';
import { resolve } from 'node:path';
import type { Background } from '../lab/lab.js';
import { useLab } from '../lab/jest.js';

const BLACK_HOLE = '203.0.113.99';
const SECRETS = ['e2e-client-secret', 'e2e-password', 'e2e-query-key'];
const TOKEN = 'Bearer e2e-token';

interface Spec {
  port: number;
  destination: Record<string, unknown>;
}

// Node runs the TypeScript sources (transform-types for parameter properties); `.js` imports are
// mapped to the `.ts` files as jest's moduleNameMapper does.
function childScript(): string {
  const http = resolve('dataplane/http/index.ts');
  const tcp = resolve('dataplane/tcp-destination.ts');
  const pino = resolve('node_modules/pino/pino.js');
  return `
    import { registerHooks } from 'node:module';
    registerHooks({ resolve(spec, ctx, next) {
      try { return next(spec, ctx); } catch (e) { if (/^(\\.|\\/).*\\.js$/.test(spec)) return next(spec.slice(0, -3) + '.ts', ctx); throw e; }
    } });
    const net = await import('node:net');
    const { pino } = await import(${JSON.stringify(pino)});
    const { createHttpDestinationHandler } = await import(${JSON.stringify(http)});
    const { pipeTcpDestination } = await import(${JSON.stringify(tcp)});
    const logger = pino({ level: 'info' });
    const handler = createHttpDestinationHandler({
      logger,
      authenticator: { authenticate: async () => ({ headers: [['authorization', ${JSON.stringify(TOKEN)}]] }) },
    });
    const specs = JSON.parse(process.env.SPECS);
    for (const { port, destination: d } of specs) {
      const destination = { headers: [], queries: [], trustAll: false, properties: {}, proxyType: 'Internet',
        authentication: 'NoAuthentication', connectTimeoutMs: 2000, readTimeoutMs: 5000, ...d,
        ...(d.url ? { url: new URL(d.url) } : {}) };
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) =>
        destination.type === 'TCP'
          ? pipeTcpDestination(s, destination, { logger, connectTimeoutMs: 1000 })
          : handler.handle(s, destination));
      await new Promise((r) => server.listen(port, '127.0.0.1', r));
    }
    console.log('handler listening');
  `;
}

describe('HTTP and TCP destinations in the lab', () => {
  const lab = useLab({ ipv6: false });
  let handler: Background;
  let accessLog: () => Promise<string>;
  const server = '198.51.100.10';
  const specs: Spec[] = [
    {
      port: 15081,
      destination: {
        name: 'web',
        type: 'HTTP',
        url: `http://${server}/api`,
        queries: [
          ['sap-client', '100'],
          ['key', 'e2e-query-key'],
        ],
        headers: [['x-api-version', '2']],
        clientSecret: 'e2e-client-secret',
        password: 'e2e-password',
      },
    },
    { port: 15082, destination: { name: 'down', type: 'HTTP', url: `http://${server}:81/` } },
    {
      port: 15083,
      destination: { name: 'hole', type: 'HTTP', url: `http://${BLACK_HOLE}/`, connectTimeoutMs: 500 },
    },
    {
      port: 15084,
      destination: { name: 'slow', type: 'HTTP', url: 'http://198.51.100.11:9099/', readTimeoutMs: 500 },
    },
    { port: 15085, destination: { name: 'tcp-web', type: 'TCP', address: { host: server, port: 80 } } },
    { port: 15086, destination: { name: 'tcp-down', type: 'TCP', address: { host: server, port: 81 } } },
  ];

  const curl = async (...args: string[]) =>
    (await lab().run('app', ['curl', '-sS', ...args], { reject: false })).stdout;

  beforeAll(async () => {
    const l = lab();
    accessLog = (await l.startHttpServer({ body: 'hello' })).accessLog;
    // A peer whose kernel completes handshakes it never accepts (so nothing ever answers: read
    // timeout), one process that dies on SIGTERM; and a route to nowhere (connect timeout).
    const silent = l.spawn('net', [
      'python3',
      '-c',
      "import socket, time\ns = socket.socket()\ns.bind(('198.51.100.11', 9099))\ns.listen(64)\ntime.sleep(600)",
    ]);
    await l.run('net', ['ip', 'route', 'add', 'blackhole', `${BLACK_HOLE}/32`]);
    handler = l.spawn(
      'app',
      [
        process.execPath,
        '--experimental-transform-types',
        '--no-warnings',
        '--input-type=module',
        '-e',
        childScript(),
      ],
      { env: { SPECS: JSON.stringify(specs) } },
    );
    await handler.waitFor(/handler listening/, 20_000);
    for (let i = 0; i < 100; i++) {
      if ((await l.run('net', ['ss', '-Hltn', 'sport = :9099'])).stdout.includes('198.51.100.11')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(silent.output()).toBe('');
  }, 60_000);

  test('nginx sees the rewritten request: path prefix, queries, Host, injected Authorization', async () => {
    const out = await curl('-H', 'Authorization: Bearer forged', 'http://127.0.0.1:15081/orders?x=1');
    expect(out).toBe(`hello from ${server}:80 to ${lab().addr.appV4}\n`);
    const log = await accessLog();
    expect(log).toContain(
      `"GET /api/orders?x=1&sap-client=100&key=e2e-query-key HTTP/1.1" 200 host="${server}" auth="${TOKEN}"`,
    );
    expect(log).not.toContain('forged');
  });

  test('keep-alive: two requests of one curl reach nginx over one connection', async () => {
    const before = (await accessLog()).split('\n').filter(Boolean).length;
    await curl('-o', '/dev/null', '-o', '/dev/null', 'http://127.0.0.1:15081/a', 'http://127.0.0.1:15081/b');
    const lines = (await accessLog()).split('\n').filter(Boolean).slice(before);
    expect(lines).toHaveLength(2);
    const clientPort = (line: string) => line.split(' ')[0];
    expect(clientPort(lines[0] ?? 'a')).toBe(clientPort(lines[1] ?? 'b'));
  });

  test('target refuses: 503 with x-error-* headers', async () => {
    const out = await curl('-D', '-', '-o', '/dev/null', 'http://127.0.0.1:15082/');
    expect(out).toMatch(/^HTTP\/1\.1 503 /);
    expect(out).toMatch(/x-error-origin: Upstream/i);
    expect(out).toMatch(/x-proxy-server: detour/i);
    expect(out).toMatch(/x-request-id: [0-9a-f-]{36}/i);
  });

  test('target is a black hole: 504 after the connect timeout', async () => {
    const started = Date.now();
    const out = await curl('-D', '-', '-o', '/dev/null', 'http://127.0.0.1:15083/');
    expect(out).toMatch(/^HTTP\/1\.1 504 /);
    expect(out).toMatch(/x-error-message: .*timed out after 500 ms/i);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  test('target accepts but never answers: 504 after the read timeout', async () => {
    const out = await curl('-D', '-', '-o', '/dev/null', 'http://127.0.0.1:15084/');
    expect(out).toMatch(/^HTTP\/1\.1 504 /);
    expect(out).toMatch(/x-error-message: .*did not answer within 500 ms/i);
  });

  test('TCP destination: bytes piped to nginx and back', async () => {
    const out = await curl('http://127.0.0.1:15085/tcp');
    expect(out).toBe(`hello from ${server}:80 to ${lab().addr.appV4}\n`);
  });

  test('TCP destination refused: the app connection is reset and the log says why', async () => {
    const r = await lab().run('app', ['curl', '-sS', 'http://127.0.0.1:15086/'], { reject: false });
    expect(r.exitCode).not.toBe(0);
    const line = await handler.waitFor(/upstream connect failed/, 5000);
    expect(line).toContain('"destination":"tcp-down"');
    expect(line).toContain(`"address":"${server}:81"`);
    expect(line).toContain('"reason":"ECONNREFUSED"');
  });

  test('access log lines for every request, and no secret anywhere in the handler output', async () => {
    const output = handler.output();
    expect(output).toMatch(/"msg":"http request"/);
    expect(output).toMatch(/"destination":"web".*"upstream":"http:\/\/198\.51\.100\.10\/api\/orders"/);
    for (const secret of [...SECRETS, TOKEN]) expect(output).not.toContain(secret);
  });
});

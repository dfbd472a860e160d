// Shared by the test/unit/http-*.test.ts files: a "dataplane" net.Server on 127.0.0.1 whose
// connections go to an HTTP destination handler, a fake Authenticator, destinations, a memory logger.
import http from 'node:http';
import net from 'node:net';
import { pino, type Logger } from 'pino';
import type { AuthResult, AuthenticateOptions, Authenticator } from '../../dataplane/auth/types.js';
import type { Destination } from '../../dataplane/destinations/types.js';
import {
  createHttpDestinationHandler,
  type DestinationSource,
  type HttpDestinationHandler,
  type HttpDestinationHandlerOptions,
} from '../../dataplane/http/index.js';

export type Line = Record<string, unknown>;

export function memoryLogger(): { log: Logger; lines: Line[]; text: () => string } {
  const lines: Line[] = [];
  const raw: string[] = [];
  const log = pino(
    { level: 'debug' },
    {
      write: (s: string) => {
        raw.push(s);
        lines.push(JSON.parse(s) as Line);
      },
    },
  );
  return { log, lines, text: () => raw.join('') };
}

export function destination(overrides: Partial<Destination> & { url?: URL } = {}): Destination {
  return {
    name: 'orders',
    type: 'HTTP',
    proxyType: 'Internet',
    authentication: 'NoAuthentication',
    headers: [],
    queries: [],
    trustAll: false,
    connectTimeoutMs: 2000,
    readTimeoutMs: 5000,
    properties: {},
    ...overrides,
  };
}

export interface FakeAuth {
  authenticator: Authenticator;
  calls: (AuthenticateOptions | undefined)[];
}

/** Bearer tok-1, tok-2, ... (a new one on forceRefresh), or whatever `impl` returns/throws. */
export function fakeAuth(impl?: (n: number, options?: AuthenticateOptions) => Promise<AuthResult>): FakeAuth {
  const calls: (AuthenticateOptions | undefined)[] = [];
  let token = 1;
  return {
    calls,
    authenticator: {
      async authenticate(_d, options) {
        calls.push(options);
        if (options?.forceRefresh) token++;
        if (impl) return impl(token, options);
        return { headers: [['Authorization', `Bearer tok-${token}`]] };
      },
    },
  };
}

export interface Proxy {
  port: number;
  handler: HttpDestinationHandler;
  lines: Line[];
  logText: () => string;
  close(): Promise<void>;
}

/** Like the dataplane: allowHalfOpen + pauseOnConnect, every connection handed to the handler. */
export async function startProxy(
  source: DestinationSource,
  options: Partial<HttpDestinationHandlerOptions> = {},
): Promise<Proxy> {
  const { log, lines, text } = memoryLogger();
  const handler = createHttpDestinationHandler({
    authenticator: fakeAuth().authenticator,
    logger: log,
    ...options,
  });
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) =>
    handler.handle(socket, source),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    handler,
    lines,
    logText: text,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      await handler.close(500);
    },
  };
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(
  port: number,
  path: string,
  options: {
    method?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string | Buffer;
    agent?: http.Agent;
  } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export async function waitFor<T>(what: string, fn: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

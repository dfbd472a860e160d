import { afterEach, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import { pino } from 'pino';
import { type ConnectionContext, handleConnection } from '../../dataplane/connection.js';
import type { OriginalDestination } from '../../dataplane/original-destination.js';

// Loopback only: a "dataplane" listener whose original-destination lookup is injected, and an upstream.
type Line = Record<string, unknown>;

const cleanups: Array<() => void> = [];
afterEach(() => cleanups.splice(0).forEach((fn) => fn()));

function memoryLogger() {
  const lines: Line[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { log, lines };
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

async function startProxy(
  lookup: (s: net.Socket) => OriginalDestination,
  extra: Partial<ConnectionContext> = {},
) {
  const { log, lines } = memoryLogger();
  const ctx: ConnectionContext = { log, passthrough: true, connectTimeoutMs: 2000, lookup, ...extra };
  let id = 0;
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    sockets.push(s);
    handleConnection(ctx, 'outbound', s, ++id);
  });
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  return { port: await listen(server), lines };
}

/** Upstream that answers "got:<everything received>" only after the client half-closes. */
async function startHalfCloseUpstream(): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => s.end(`got:${Buffer.concat(chunks).toString()}`));
  });
  return listen(server);
}

function exchange(port: number, payload: string): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    client.on('data', (c: Buffer) => (data += c.toString()));
    client.on('error', (e: NodeJS.ErrnoException) => resolve({ data, error: e.code ?? e.message }));
    client.on('close', () => resolve({ data }));
    client.end(payload);
  });
}

async function waitFor(lines: Line[], msg: string): Promise<Line> {
  for (let i = 0; i < 200; i++) {
    const line = lines.find((l) => l.msg === msg);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no "${msg}" line in ${JSON.stringify(lines)}`);
}

const to = (port: number): OriginalDestination => ({
  redirected: true,
  address: '127.0.0.1',
  port,
  family: 4,
});

describe('handleConnection', () => {
  test('forwards both ways, passes a half-close on, logs open and close lines', async () => {
    const upstreamPort = await startHalfCloseUpstream();
    const proxy = await startProxy(() => to(upstreamPort));
    const result = await exchange(proxy.port, 'hello');
    expect(result).toEqual({ data: 'got:hello' });
    const open = await waitFor(proxy.lines, 'outbound connection');
    expect(open).toMatchObject({
      direction: 'outbound',
      originalDestination: `127.0.0.1:${upstreamPort}`,
      id: 1,
    });
    expect(open.source).toMatch(/^127\.0\.0\.1:\d+$/);
    const closed = await waitFor(proxy.lines, 'connection closed');
    expect(closed).toMatchObject({ bytesIn: 5, bytesOut: 9, upstreamConnected: true });
    expect(closed.durationMs).toEqual(expect.any(Number));
    expect(closed.error).toBeUndefined();
  });

  test('a large body is copied exactly', async () => {
    const upstreamPort = await startHalfCloseUpstream();
    const proxy = await startProxy(() => to(upstreamPort));
    const payload = 'x'.repeat(4 * 1024 * 1024);
    const result = await exchange(proxy.port, payload);
    expect(result.data.length).toBe(payload.length + 4);
    expect(await waitFor(proxy.lines, 'connection closed')).toMatchObject({ bytesIn: payload.length });
  });

  test('a refused upstream: the client is reset and the reason logged', async () => {
    const closedPort = await listen(net.createServer());
    cleanups.pop()?.(); // close it again: nothing listens on that port now
    const proxy = await startProxy(() => to(closedPort));
    const result = await exchange(proxy.port, 'x');
    expect(result.data).toBe('');
    expect(await waitFor(proxy.lines, 'upstream connect failed')).toMatchObject({
      reason: 'ECONNREFUSED',
      level: 40,
    });
    expect(await waitFor(proxy.lines, 'connection closed')).toMatchObject({
      upstreamConnected: false,
      error: 'ECONNREFUSED',
    });
  });

  test('not redirected: closed with a warning, never forwarded', async () => {
    const proxy = await startProxy(() => ({ redirected: false, reason: 'direct connection' }));
    expect(await exchange(proxy.port, 'x')).toEqual({ data: '' });
    expect(await waitFor(proxy.lines, 'connection not redirected; closing')).toMatchObject({
      reason: 'direct connection',
      level: 40,
    });
    expect(proxy.lines.find((l) => l.msg === 'outbound connection')).toBeUndefined();
  });

  test('a lookup that throws is treated as not redirected', async () => {
    const proxy = await startProxy(() => {
      throw new Error('getsockopt(SO_ORIGINAL_DST) failed: EBADF');
    });
    await exchange(proxy.port, 'x');
    expect(await waitFor(proxy.lines, 'connection not redirected; closing')).toMatchObject({
      reason: 'getsockopt(SO_ORIGINAL_DST) failed: EBADF',
    });
  });

  test('passthrough off: refused with a log line', async () => {
    const upstreamPort = await startHalfCloseUpstream();
    const proxy = await startProxy(() => to(upstreamPort), { passthrough: false });
    expect(await exchange(proxy.port, 'x')).toEqual({ data: '' });
    expect(await waitFor(proxy.lines, 'connection refused')).toMatchObject({
      originalDestination: `127.0.0.1:${upstreamPort}`,
      reason: 'passthrough disabled and not a destination',
    });
  });

  test('an upstream reset destroys the client too and is logged on the close line', async () => {
    const server = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
    const upstreamPort = await listen(server);
    const proxy = await startProxy(() => to(upstreamPort));
    await new Promise<void>((resolve) => {
      const client = net.connect(proxy.port, '127.0.0.1', () => client.write('boom'));
      client.on('error', () => undefined);
      client.on('close', () => resolve());
    });
    expect(await waitFor(proxy.lines, 'connection closed')).toMatchObject({ error: 'upstream: ECONNRESET' });
  });
});

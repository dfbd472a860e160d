import { afterAll, afterEach, beforeEach, describe, expect, test } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { forward } from '../../dataplane/forward.js';
import { findAddon } from '../../dataplane/original-destination.js';
import {
  cancelAllRelays,
  relayActive,
  relayAvailable,
  relayLoadError,
  relay,
} from '../../dataplane/splice-relay.js';

// Loopback only: app client -> proxy (forward()) -> upstream, with the splice relay on (and off).
type Line = Record<string, unknown>;

const cleanups: Array<() => void> = [];
afterEach(() => cleanups.splice(0).forEach((fn) => fn()));
// Each test chooses: the relay is on unless a test sets DETOUR_SPLICE=0 (whatever the outer environment says).
const outerSplice = process.env.DETOUR_SPLICE;
beforeEach(() => {
  delete process.env.DETOUR_SPLICE;
});
afterAll(() => {
  if (outerSplice === undefined) delete process.env.DETOUR_SPLICE;
  else process.env.DETOUR_SPLICE = outerSplice;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** The dataplane's side: accepts like listeners.ts does and forwards to the upstream port. */
async function startProxy(upstreamPort: number) {
  const lines: Line[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const accepted: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    accepted.push(s);
    forward(s, { address: '127.0.0.1', port: upstreamPort }, { connectTimeoutMs: 2000 }, log);
  });
  cleanups.push(() => accepted.forEach((s) => s.destroy()));
  return { port: await listen(server), lines, accepted };
}

async function startUpstream(onSocket: (s: net.Socket) => void): Promise<number> {
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    onSocket(s);
  });
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  return listen(server);
}

/** A connected loopback pair: [the connecting side, the accepted side (paused on connect)]. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  let onAccept: (s: net.Socket) => void = () => undefined;
  const accepted = new Promise<net.Socket>((resolve) => (onAccept = resolve));
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    cleanups.push(() => s.destroy());
    onAccept(s);
  });
  const client = await connect(await listen(server));
  return [client, await accepted];
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => s.destroy());
  });
}

async function waitUntil(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (check()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function closedLines(lines: Line[]): Line[] {
  return lines.filter((l) => l.msg === 'connection closed');
}

async function closedLine(lines: Line[]): Promise<Line> {
  await waitUntil(() => closedLines(lines).length > 0, '"connection closed"');
  return closedLines(lines)[0]!;
}

/** Everything a socket receives until its FIN, with its hash; rejects on an error. */
function receiveAll(s: net.Socket): Promise<{ length: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let length = 0;
    s.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    s.once('end', () => resolve({ length, sha: hash.digest('hex') }));
    s.once('error', reject);
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Resolves with the error code a socket sees, or 'closed' for a FIN or a clean close. */
function outcome(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.once('end', () => resolve('closed'));
    s.once('close', () => resolve('closed'));
    s.resume();
  });
}

test('the relay is built and available unless DETOUR_SPLICE=0', () => {
  expect(relayAvailable()).toBe(true);
  expect(relayLoadError()).toBeUndefined();
  process.env.DETOUR_SPLICE = '0';
  expect(relayAvailable()).toBe(false);
});

describe.each([
  ['on', '1'],
  ['off', '0'],
])('relay %s', (_mode, env) => {
  const spliced = env === '1';

  test('a few MiB both ways at once arrive byte-exact', async () => {
    process.env.DETOUR_SPLICE = env;
    const up = randomBytes(3 * 1024 * 1024 + 17);
    const down = randomBytes(5 * 1024 * 1024 + 3);
    let upstreamGot: Promise<{ length: number; sha: string }> | undefined;
    const upstreamPort = await startUpstream((s) => {
      upstreamGot = receiveAll(s);
      s.end(down);
    });
    const proxy = await startProxy(upstreamPort);
    const client = await connect(proxy.port);
    const clientGot = receiveAll(client);
    client.end(up);
    expect(await clientGot).toEqual({ length: down.length, sha: sha(down) });
    await waitUntil(() => upstreamGot !== undefined, 'upstream connection');
    expect(await upstreamGot).toEqual({ length: up.length, sha: sha(up) });
    const closed = await closedLine(proxy.lines);
    expect(closed).toMatchObject({ bytesIn: up.length, bytesOut: down.length, upstreamConnected: true });
    expect(closed.error).toBeUndefined();
    expect(closed.spliced).toBe(spliced ? true : undefined);
  });

  test('client half-closes first: the upstream keeps sending after the FIN, and its FIN arrives', async () => {
    process.env.DETOUR_SPLICE = env;
    const reply = randomBytes(2 * 1024 * 1024);
    const upstreamPort = await startUpstream((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        s.write(Buffer.from(`got:${Buffer.concat(chunks).toString()}:`));
        s.end(reply);
      });
    });
    const proxy = await startProxy(upstreamPort);
    const client = await connect(proxy.port);
    const got = receiveAll(client);
    client.end('question');
    const expected = Buffer.concat([Buffer.from('got:question:'), reply]);
    expect(await got).toEqual({ length: expected.length, sha: sha(expected) });
    expect(await closedLine(proxy.lines)).toMatchObject({ bytesIn: 8, bytesOut: expected.length });
  });

  test('upstream half-closes first: the client keeps sending after the FIN, and its FIN arrives', async () => {
    process.env.DETOUR_SPLICE = env;
    const late = randomBytes(1024 * 1024);
    let upstreamGot: Promise<{ length: number; sha: string }> | undefined;
    const upstreamPort = await startUpstream((s) => {
      upstreamGot = receiveAll(s);
      s.end('banner');
    });
    const proxy = await startProxy(upstreamPort);
    const client = await connect(proxy.port);
    expect((await receiveAll(client)).length).toBe(6);
    client.end(late); // written only after our side received the upstream's FIN
    await waitUntil(() => upstreamGot !== undefined, 'upstream connection');
    expect(await upstreamGot).toEqual({ length: late.length, sha: sha(late) });
    const closed = await closedLine(proxy.lines);
    expect(closed).toMatchObject({ bytesIn: late.length, bytesOut: 6 });
    expect(closed.error).toBeUndefined();
  });

  test('a reset from the client resets the upstream', async () => {
    process.env.DETOUR_SPLICE = env;
    let upstreamOutcome: Promise<string> | undefined;
    const upstreamPort = await startUpstream((s) => {
      upstreamOutcome = outcome(s);
      s.write('hello');
    });
    const proxy = await startProxy(upstreamPort);
    const client = await connect(proxy.port);
    client.on('error', () => undefined);
    await new Promise((r) => client.once('data', r));
    client.resetAndDestroy();
    await waitUntil(() => upstreamOutcome !== undefined, 'upstream connection');
    const seen = await upstreamOutcome;
    if (spliced) expect(seen).toBe('ECONNRESET');
    const closed = await closedLine(proxy.lines);
    expect(closed.error).toBe('client: ECONNRESET');
  });

  test('a reset from the upstream resets the client', async () => {
    process.env.DETOUR_SPLICE = env;
    const upstreamPort = await startUpstream((s) => s.once('data', () => s.resetAndDestroy()));
    const proxy = await startProxy(upstreamPort);
    const client = await connect(proxy.port);
    const seen = outcome(client);
    client.write('boom');
    const result = await seen;
    if (spliced) expect(result).toBe('ECONNRESET');
    expect((await closedLine(proxy.lines)).error).toBe('upstream: ECONNRESET');
  });
});

describe('relay on', () => {
  test('a client that stops reading: bounded buffering, no busy loop, everything arrives afterwards', async () => {
    let written = 0;
    const chunk = randomBytes(64 * 1024);
    const limit = 256 * 1024 * 1024;
    const upstreamPort = await startUpstream((s) => {
      const pump = () => {
        while (written < limit) {
          written += chunk.length;
          if (!s.write(chunk)) return;
        }
        s.end();
      };
      s.on('drain', pump);
      pump();
    });
    const proxy = await startProxy(upstreamPort);
    const client = await connect(proxy.port);
    client.pause();
    client.end();
    // Stalled once the upstream has had no 'drain' for half a second.
    let last = -1;
    let unchanged = 0;
    await waitUntil(() => {
      unchanged = written === last && written > 0 ? unchanged + 1 : 0;
      last = written;
      return unchanged >= 50;
    }, 'the upstream to block');
    await sleep(300);
    expect(written).toBe(last);
    // Kernel buffers only: a few socket buffers and a 64 KiB pipe, far below what the upstream offers.
    expect(written).toBeLessThan(64 * 1024 * 1024);
    const cpuBefore = process.cpuUsage();
    const wallBefore = process.hrtime.bigint();
    await sleep(1000);
    const cpu = process.cpuUsage(cpuBefore);
    const wallUs = Number((process.hrtime.bigint() - wallBefore) / 1000n);
    // A spinning relay thread would use about one core (cpu ≈ wall); idle is a few ms.
    expect(cpu.user + cpu.system).toBeLessThan(wallUs * 0.3);
    expect(relayActive()).toBeGreaterThan(0);
    const got = receiveAll(client);
    client.resume();
    expect((await got).length).toBe(written);
    expect(await closedLine(proxy.lines)).toMatchObject({ bytesOut: written, spliced: true });
  });

  test('an upstream with bytes already buffered in Node (a greeting read during a proxy handshake): passed on first, then relayed', async () => {
    const upstreamPort = await startUpstream((s) => {
      const chunks: Buffer[] = [];
      s.write('hello\n');
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`got:${Buffer.concat(chunks).toString()}`));
    });
    // As after a proxy handshake: connected, paused, the target's greeting already read into Node.
    const upstream = net.connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => upstream.destroy());
    upstream.pause();
    upstream.once('connect', () => upstream.read(0)); // reading starts; what arrives stays buffered
    await waitUntil(() => upstream.readableLength === 6, 'the greeting in the upstream socket');
    const lines: Line[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) =>
      forward(s, { address: '127.0.0.1', port: upstreamPort }, { connectTimeoutMs: 2000, upstream }, log),
    );
    const client = await connect(await listen(server));
    let data = '';
    client.on('data', (c: Buffer) => {
      data += c.toString();
      if (data === 'hello\n') client.end('ping');
    });
    await new Promise((r) => client.once('end', r));
    expect(data).toBe('hello\ngot:ping');
    const closed = await closedLine(lines);
    expect(closed).toMatchObject({ bytesIn: 4, bytesOut: 14, spliced: true });
  });

  test('relay() refuses a socket with bytes buffered in Node, and the streams still work afterwards', async () => {
    const upstreamPort = await startUpstream((s) => {
      s.write('hello\n');
      s.on('data', (c: Buffer) => s.end(`got:${c.toString()}`));
    });
    const upstream = net.connect({ port: upstreamPort, host: '127.0.0.1', allowHalfOpen: true });
    cleanups.push(() => upstream.destroy());
    upstream.pause();
    upstream.once('connect', () => upstream.read(0));
    await waitUntil(() => upstream.readableLength === 6, 'the greeting in the upstream socket');
    const [client, server] = await socketPair();
    expect(relay(server, upstream, () => undefined)).toBe(false);
    // What relay() stopped must read again: pipe() would stall otherwise.
    server.pipe(upstream);
    upstream.pipe(server);
    let data = '';
    client.on('data', (c: Buffer) => {
      data += c.toString();
      if (data === 'hello\n') client.write('ping');
    });
    await new Promise((r) => client.once('end', r));
    expect(data).toBe('hello\ngot:ping');
  });

  test('200 concurrent short connections all complete, each logged once', async () => {
    const upstreamPort = await startUpstream((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`got:${Buffer.concat(chunks).toString()}`));
    });
    const proxy = await startProxy(upstreamPort);
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const client = await connect(proxy.port);
        const got = new Promise<string>((resolve, reject) => {
          let data = '';
          client.on('data', (c: Buffer) => (data += c.toString()));
          client.once('end', () => resolve(data));
          client.once('error', reject);
        });
        client.end(`ping-${i}`);
        return got;
      }),
    );
    expect(results).toEqual(Array.from({ length: 200 }, (_, i) => `got:ping-${i}`));
    await waitUntil(() => closedLines(proxy.lines).length >= 200, '200 close lines');
    await sleep(100);
    const closed = closedLines(proxy.lines);
    expect(closed).toHaveLength(200);
    expect(closed.every((l) => l.spliced === true && l.error === undefined)).toBe(true);
    expect(relayActive()).toBe(0);
  });

  test('cancel-all ends every relayed pair at once', async () => {
    const upstreamPort = await startUpstream((s) => s.write('ready'));
    const proxy = await startProxy(upstreamPort);
    const clients = await Promise.all(Array.from({ length: 20 }, () => connect(proxy.port)));
    await Promise.all(clients.map((c) => new Promise((r) => c.once('data', r))));
    await waitUntil(() => relayActive() === 20, '20 relayed pairs');
    const ends = clients.map((c) => outcome(c));
    cancelAllRelays();
    expect(await Promise.all(ends)).toEqual(Array(20).fill('closed'));
    await waitUntil(() => closedLines(proxy.lines).length === 20, '20 close lines');
    expect(closedLines(proxy.lines).every((l) => l.spliced === true && l.error === undefined)).toBe(true);
    expect(relayActive()).toBe(0);
  });

  test('destroying a relayed socket from JavaScript (dataplane shutdown) takes it back first', async () => {
    const upstreamPort = await startUpstream((s) => s.write('ready'));
    const proxy = await startProxy(upstreamPort);
    const client = await connect(proxy.port);
    await new Promise((r) => client.once('data', r));
    await waitUntil(() => relayActive() === 1, 'a relayed pair');
    const end = outcome(client);
    proxy.accepted[0]!.destroy();
    expect(await end).toBe('closed');
    expect(await closedLine(proxy.lines)).toMatchObject({ bytesOut: 5, spliced: true });
    expect(relayActive()).toBe(0);
  });

  test('a process that loads the addon, or relays a pair, still exits on its own', () => {
    const addon = findAddon(dirname(fileURLToPath(import.meta.url)), 'splice_relay.node');
    expect(addon).toBeDefined();
    const script = `(() => {
      const relay = require(${JSON.stringify(addon)});
      const net = require('node:net');
      if (process.argv[1] === 'load') return;
      relay.start((r) => { console.log(JSON.stringify(r)); a.destroy(); b.destroy(); server.close(); });
      let a, b;
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
        b = s;
        relay.add(a._handle.fd, b._handle.fd);
        // both peers of the pair are the relay's own sockets: EOF on each, from their peer's shutdown
        a2.end('x'); b2.end('y');
      });
      let a2, b2;
      server.listen(0, '127.0.0.1', () => {
        // a <-> a2 is one loopback connection, b <-> b2 another; the relay joins a and b.
        const inner = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
          a = s; inner.close();
          b2 = net.connect({ port: server.address().port, allowHalfOpen: true });
          b2.on('data', (d) => process.stdout.write('b2:' + d + '\\n'));
        });
        inner.listen(0, '127.0.0.1', () => {
          a2 = net.connect({ port: inner.address().port, allowHalfOpen: true });
          a2.on('data', (d) => process.stdout.write('a2:' + d + '\\n'));
        });
      });
    })();`;
    for (const mode of ['load', 'relay']) {
      const child = spawnSync(process.execPath, ['-e', script, mode], { encoding: 'utf8', timeout: 10_000 });
      expect({ mode, status: child.status, signal: child.signal, stderr: child.stderr }).toEqual({
        mode,
        status: 0,
        signal: null,
        stderr: '',
      });
      if (mode === 'relay') {
        expect(child.stdout).toContain('a2:y');
        expect(child.stdout).toContain('b2:x');
        expect(child.stdout).toContain('"bytesClientToUpstream":1,"bytesUpstreamToClient":1');
      }
    }
  });
});

import { afterEach, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import type { Destination } from '../../dataplane/destinations/types.js';
import { pipeTcpDestination } from '../../dataplane/tcp-destination.js';
import { destination, memoryLogger, waitFor, type Line } from './http-harness.js';

// Loopback only: a "dataplane" listener handing every connection to pipeTcpDestination.
const cleanups: Array<() => void> = [];
afterEach(() => cleanups.splice(0).forEach((fn) => fn()));

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

async function startDataplane(d: Destination): Promise<{ port: number; lines: Line[] }> {
  const { log, lines } = memoryLogger();
  const sockets: net.Socket[] = [];
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
    sockets.push(s);
    pipeTcpDestination(s, d, { logger: log, connectTimeoutMs: 1000 });
  });
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  return { port: await listen(server), lines };
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

const tcp = (host: string, port: number, extra: Partial<Destination> = {}): Destination =>
  destination({ name: 'postgres', type: 'TCP', address: { host, port }, ...extra });

describe('pipeTcpDestination', () => {
  test('pipes both ways to the Address, passing the half-close on; the close line names the destination', async () => {
    const upstream = net.createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`got:${Buffer.concat(chunks).toString()}`));
    });
    const upstreamPort = await listen(upstream);
    for (const host of ['127.0.0.1', 'localhost']) {
      const dp = await startDataplane(tcp(host, upstreamPort));
      expect(await exchange(dp.port, 'SELECT 1')).toEqual({ data: 'got:SELECT 1' });
      const closed = await waitFor('close line', () => dp.lines.find((l) => l.msg === 'connection closed'));
      expect(closed).toMatchObject({
        destination: 'postgres',
        address: `${host}:${upstreamPort}`,
        upstreamConnected: true,
        bytesIn: 8,
        bytesOut: 12,
      });
    }
  });

  test('refused: the app connection is reset and the log says which destination, address and why', async () => {
    const gone = net.createServer();
    const port = await listen(gone);
    await new Promise<void>((r) => gone.close(() => r()));
    const dp = await startDataplane(tcp('127.0.0.1', port));
    const result = await exchange(dp.port, 'hello');
    expect(result.data).toBe('');
    expect(result.error).toBe('ECONNRESET');
    const line = await waitFor('connect failed line', () =>
      dp.lines.find((l) => l.msg === 'upstream connect failed'),
    );
    expect(line).toMatchObject({
      destination: 'postgres',
      address: `127.0.0.1:${port}`,
      reason: 'ECONNREFUSED',
    });
  });

  test('a destination that is not TCP (or not Internet) is closed with a reason', async () => {
    const notTcp = await startDataplane(destination({ name: 'web', url: new URL('http://127.0.0.1:9/') }));
    await exchange(notTcp.port, 'x');
    expect(notTcp.lines.find((l) => l.msg === 'tcp destination unusable; closing')).toMatchObject({
      destination: 'web',
      reason: 'not a TCP destination with an Address',
    });
    const onPrem = await startDataplane(tcp('127.0.0.1', 9, { proxyType: 'OnPremise' }));
    await exchange(onPrem.port, 'x');
    expect(onPrem.lines.find((l) => l.msg === 'tcp destination unusable; closing')?.reason).toMatch(
      /OnPremise/,
    );
  });
});

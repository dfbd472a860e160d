// The validation probe: with the rules installed, a connection from this (non-dataplane) process to a
// TEST-NET address must land on the outbound port, and the listener must read back exactly that
// address as the connection's original destination.
import net from 'node:net';
import type { TransparentProxyConfig } from './config/schema.js';
import type { PortRange } from './config/values.js';
import { ApplyError } from './errors.js';

export type OriginalDestinationReader = (
  socket: net.Socket,
) => { redirected: true; address: string; port: number } | { redirected: false; reason: string };

export interface ProbeTarget {
  address: string;
  port: number;
}

const V4_CANDIDATES = ['192.0.2.254', '198.51.100.254', '203.0.113.254'];
const V6_CANDIDATES = ['2001:db8::fe', '2001:db8:ffff::fe'];

const inRanges = (port: number, ranges: PortRange[]) => ranges.some((r) => port >= r.from && port <= r.to);

function inCidr(address: string, cidr: string): boolean {
  const [network, prefix] = cidr.split('/');
  const list = new net.BlockList();
  list.addSubnet(network!, Number(prefix), network!.includes(':') ? 'ipv6' : 'ipv4');
  return list.check(address, address.includes(':') ? 'ipv6' : 'ipv4');
}

/** A TEST-NET address and port that the config redirects (not excluded, included if a list is set). */
export function chooseProbeTarget(
  config: TransparentProxyConfig,
  family: 4 | 6,
  seed = Date.now(),
): ProbeTarget {
  const outbound = config.redirect.outbound;
  const candidates = family === 4 ? V4_CANDIDATES : V6_CANDIDATES;
  const address = candidates.find((a) => !outbound.excludeIPs.some((c) => inCidr(a, c.cidr)));
  if (!address) {
    throw new ApplyError(
      `cannot validate: every TEST-NET address (${candidates.join(', ')}) is excluded from redirection`,
    );
  }
  const ports =
    outbound.includePorts.length > 0
      ? outbound.includePorts.flatMap((r) => [r.from, r.to])
      : Array.from({ length: 20 }, (_, i) => 40000 + ((seed + i * 997) % 20000));
  const reserved = [outbound.port, config.redirect.inbound.port, config.redirect.dns.port, 53];
  const port = ports.find((p) => !inRanges(p, outbound.excludePorts) && !reserved.includes(p));
  if (port === undefined) throw new ApplyError('cannot validate: no redirected port is left to probe with');
  return { address, port };
}

const withTimeout = <T>(promise: Promise<T>, ms: number, onTimeout: () => Error) =>
  Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(onTimeout()), ms).unref())]);

async function listen(host: string, port: number): Promise<net.Server> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':') }, () => resolve());
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') {
      throw new ApplyError(
        `cannot validate: the outbound port ${port} is in use on ${host} (is the dataplane running?); validate before starting it`,
      );
    }
    throw new ApplyError(
      `cannot validate: listening on ${host}:${port} failed: ${error.code ?? error.message}`,
    );
  });
  return server;
}

async function probeFamily(
  config: TransparentProxyConfig,
  family: 4 | 6,
  read: OriginalDestinationReader,
  timeoutMs: number,
): Promise<string> {
  const target = chooseProbeTarget(config, family);
  const listenHost = family === 4 ? '127.0.0.1' : '::1';
  const server = await listen(listenHost, config.redirect.outbound.port);
  try {
    const landed = new Promise<string>((resolve) => {
      server.on('connection', (socket) => {
        const original = read(socket);
        socket.end(
          original.redirected
            ? `${original.address}|${original.port}\n`
            : `not-redirected|${original.reason}\n`,
        );
        socket.on('error', () => {});
        resolve(
          original.redirected
            ? `${original.address}:${original.port}`
            : `not redirected (${original.reason})`,
        );
      });
    });
    const connected = new Promise<void>((resolve, reject) => {
      const client = net.connect({ host: target.address, port: target.port });
      client.on('data', () => {});
      client.on('close', () => resolve());
      client.on('error', (error: NodeJS.ErrnoException) => {
        const hint =
          error.code === 'ENETUNREACH' ? ' (no route to it: validation needs a default route)' : '';
        reject(
          new ApplyError(
            `validation failed: connecting to ${target.address}:${target.port} failed: ${error.code}${hint}`,
          ),
        );
      });
    });
    const where = `${family === 6 ? `[${target.address}]` : target.address}:${target.port}`;
    const seen = await withTimeout(
      Promise.race([landed, connected.then(() => landed)]),
      timeoutMs,
      () =>
        new ApplyError(
          `validation failed: a connection to ${where} did not land on the outbound port ${config.redirect.outbound.port} within ${timeoutMs} ms: outbound TCP is not being redirected`,
        ),
    );
    const expected = `${target.address}:${target.port}`;
    if (seen !== expected) {
      throw new ApplyError(
        `validation failed: the connection to ${where} arrived with original destination ${seen}`,
      );
    }
    return `${family === 4 ? 'IPv4' : 'IPv6'}: a connection to ${where} landed on port ${config.redirect.outbound.port} with its original destination`;
  } finally {
    server.close();
  }
}

export async function validateTransparentProxy(
  config: TransparentProxyConfig,
  options: { ipv6: boolean; dataplaneUid: number; read: OriginalDestinationReader; timeoutMs?: number },
): Promise<string[]> {
  if (process.getuid?.() === options.dataplaneUid) {
    throw new ApplyError(
      `cannot validate as the dataplane UID ${options.dataplaneUid}: its traffic is never redirected`,
    );
  }
  const results = [await probeFamily(config, 4, options.read, options.timeoutMs ?? 3000)];
  if (options.ipv6) {
    try {
      results.push(await probeFamily(config, 6, options.read, options.timeoutMs ?? 3000));
    } catch (error) {
      // A host with IPv6 but no IPv6 route cannot make outbound IPv6 connections at all.
      if (!/ENETUNREACH/.test((error as Error).message)) throw error;
      results.push('IPv6: skipped, no IPv6 route to a TEST-NET address');
    }
  }
  return results;
}

// The embedded DNS server: UDP and TCP listeners on loopback, feeding the resolver.
//
// Loopback only, never 0.0.0.0 or ::. The capture rules REDIRECT the app's DNS packets to
// 127.0.0.1 / ::1, and conntrack turns our reply's source back into the nameserver the app asked only
// when the reply leaves from exactly that loopback address. A wildcard-bound UDP socket lets the
// kernel pick the reply's source address, which then may not match the connection, and the app
// drops the answer as coming from a stranger. Loopback also keeps the server from being an open
// resolver for the whole network.
import dgram from 'node:dgram';
import net from 'node:net';
import { createCache, type CacheOptions, type DnsCache } from './cache.js';
import { silentLogger, type DnsLogger } from './logger.js';
import { readResolvConf } from './resolv-conf.js';
import { createResolver, type DnsQueryEvent } from './resolver.js';
import { FrameReader, frame } from './tcp-frames.js';
import { createUpstream, formatServer, type UpstreamServer } from './upstream.js';
import type { VipAllocator } from './vip.js';
import { createZone, type Families, type Zone } from './zone.js';

export const DEFAULT_DNS_PORT = 15053;
export const DEFAULT_DNS_HOSTS: readonly string[] = ['127.0.0.1', '::1'];
export const DEFAULT_DNS_TTL = 30;

export interface DnsServerOptions {
  /** Default 15053; 0 picks a free port (the same one for every listener). */
  port?: number;
  /** Loopback addresses only. Default 127.0.0.1 and ::1 (::1 skipped with a warning when the host has no IPv6). */
  hosts?: readonly string[];
  /** TTL of local answers in seconds; default 30. */
  ttl?: number;
  /** The destination names, or a function returning the current ones (called per query; cheap when unchanged). */
  names: readonly string[] | (() => readonly string[]);
  /** Search suffixes of the original resolv.conf; default: those of `upstream.resolvConf`, else none. */
  searchSuffixes?: readonly string[];
  /** On Kubernetes: the pod's namespace (adds <name>.<ns>[.svc[.<clusterDomain>]]). */
  kubernetesNamespace?: string;
  clusterDomain?: string;
  /** The VIP allocator; the server keeps it in sync with `names` (see VipAllocator.sync). */
  vips: VipAllocator;
  /** Which families get addresses; a switched-off family gets NOERROR with no answer. Default both. */
  families?: Partial<Families>;
  /** Where to forward everything else: explicit servers, or the nameservers of a resolv.conf. */
  upstream: { servers: ReadonlyArray<string | UpstreamServer> } | { resolvConf: string };
  /** Per upstream server and attempt; default 2000 ms. */
  upstreamTimeoutMs?: number;
  /** Per query over all upstream servers; default 5000 ms. */
  upstreamTotalTimeoutMs?: number;
  /** Cache limits, or false for no cache. */
  cache?: CacheOptions | false;
  /** Queries handled at once (UDP and TCP together); beyond that, new ones are dropped. Default 1024. */
  maxInFlight?: number;
  /** Default 256. */
  maxTcpConnections?: number;
  /** Idle TCP connections are closed after this long; default 10000 ms. */
  tcpIdleTimeoutMs?: number;
  logger?: DnsLogger;
  onQuery?: (event: DnsQueryEvent) => void;
}

export interface DnsServerAddress {
  protocol: 'udp' | 'tcp';
  address: string;
  family: 'IPv4' | 'IPv6';
  port: number;
}

export interface DnsServer {
  readonly addresses: readonly DnsServerAddress[];
  readonly port: number;
  readonly upstreamServers: readonly UpstreamServer[];
  readonly searchSuffixes: readonly string[];
  /** The cache, when enabled (for tests and /config). */
  readonly cache: DnsCache | undefined;
  /** Stops listening, closes TCP connections and aborts upstream queries in flight. */
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  if (net.isIPv4(host)) return host.startsWith('127.');
  return net.isIPv6(host) && /^(0{0,4}:){2,7}0{0,3}1$|^::1$/.test(host);
}

const NO_IPV6 = new Set(['EADDRNOTAVAIL', 'EAFNOSUPPORT']);

interface Listener {
  info: DnsServerAddress;
  close(): void;
}

export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const log = (opts.logger ?? silentLogger).child({ component: 'dns' });
  const hostsDefaulted = opts.hosts === undefined;
  const hosts = [...(opts.hosts ?? DEFAULT_DNS_HOSTS)];
  if (hosts.length === 0) throw new Error('DNS server: no listen addresses (hosts is empty)');
  for (const h of hosts)
    if (!isLoopback(h))
      throw new Error(
        `DNS server: listen address "${h}" is not a loopback address; use 127.0.0.1 and/or ::1 (redirected DNS replies only reach the app from the loopback address, and anything else would serve the network)`,
      );
  const port = opts.port ?? DEFAULT_DNS_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`DNS server: port ${port} is not 0-65535`);
  const ttl = opts.ttl ?? DEFAULT_DNS_TTL;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff)
    throw new Error(`DNS server: ttl ${ttl} is not a number of seconds`);

  let servers: ReadonlyArray<string | UpstreamServer>;
  let searchSuffixes = opts.searchSuffixes;
  if ('resolvConf' in opts.upstream) {
    const conf = readResolvConf(opts.upstream.resolvConf);
    for (const line of conf.ignored)
      log.warn({ file: opts.upstream.resolvConf, line }, 'resolv.conf line ignored');
    servers = conf.nameservers;
    searchSuffixes ??= conf.search;
    if (servers.length === 0)
      log.warn(
        { file: opts.upstream.resolvConf },
        'no nameserver in resolv.conf: names that are not destinations get SERVFAIL',
      );
  } else servers = opts.upstream.servers;
  const upstream = createUpstream({
    servers,
    ...(opts.upstreamTimeoutMs !== undefined ? { timeoutMs: opts.upstreamTimeoutMs } : {}),
    ...(opts.upstreamTotalTimeoutMs !== undefined ? { totalTimeoutMs: opts.upstreamTotalTimeoutMs } : {}),
  });
  const cache = opts.cache === false ? undefined : createCache(opts.cache ?? {});

  // The zone is rebuilt (and the VIPs synced) only when the names change.
  const namesOf = typeof opts.names === 'function' ? opts.names : () => opts.names as readonly string[];
  let lastNames: readonly string[] | undefined;
  let lastKey = '';
  let zone: Zone | undefined;
  const currentZone = (): Zone => {
    const names = namesOf();
    if (names !== lastNames || !zone) {
      const key = [...names].sort().join('\n');
      if (key !== lastKey || !zone) {
        zone = createZone({
          names,
          searchSuffixes: searchSuffixes ?? [],
          ...(opts.kubernetesNamespace !== undefined
            ? { kubernetesNamespace: opts.kubernetesNamespace }
            : {}),
          ...(opts.clusterDomain !== undefined ? { clusterDomain: opts.clusterDomain } : {}),
        });
        try {
          opts.vips.sync(zone.names);
        } catch (e) {
          // A full VIP range: the names that got no VIP answer SERVFAIL, everything else still works.
          log.warn({ err: (e as Error).message }, 'dns: not every destination name got a VIP');
        }
        lastKey = key;
        log.debug({ names: zone.names.length }, 'dns zone updated');
      }
      lastNames = names;
    }
    return zone;
  };
  currentZone();

  const resolver = createResolver({
    zone: currentZone,
    vipFor: (name) => opts.vips.vipFor(name),
    families: { ipv4: opts.families?.ipv4 ?? true, ipv6: opts.families?.ipv6 ?? true },
    ttl,
    upstream,
    ...(cache ? { cache } : {}),
    logger: log,
    ...(opts.onQuery ? { onQuery: opts.onQuery } : {}),
  });

  const maxInFlight = opts.maxInFlight ?? 1024;
  let inFlight = 0;
  /** Hands `msg` to the resolver; `reply` gets the answer (undefined: send nothing). False if dropped. */
  const handle = (
    msg: Buffer,
    transport: 'udp' | 'tcp',
    reply: (response: Buffer | undefined) => void,
  ): boolean => {
    if (inFlight >= maxInFlight) {
      try {
        opts.onQuery?.({ source: 'error', rcode: 'DROPPED', type: 'NONE', transport });
      } catch {
        // the resolver logs hook failures; here the packet is dropped either way
      }
      log.debug({ transport, inFlight }, 'dns query dropped: too many in flight');
      return false;
    }
    const result = resolver.handle(msg, transport);
    if (!(result instanceof Promise)) {
      try {
        reply(result);
      } catch (e) {
        log.warn({ err: (e as Error).message, transport }, 'dns reply failed');
      }
      return true;
    }
    inFlight++;
    void result
      .then(reply)
      .catch((e: unknown) => log.warn({ err: (e as Error).message, transport }, 'dns reply failed'))
      .finally(() => inFlight--);
    return true;
  };

  const connections = new Set<net.Socket>();
  const idleMs = opts.tcpIdleTimeoutMs ?? 10_000;
  const PIPELINE = 16;
  const onConnection = (conn: net.Socket): void => {
    connections.add(conn);
    conn.setNoDelay(true);
    conn.setTimeout(idleMs, () => conn.destroy());
    const reader = new FrameReader();
    let pending = 0;
    let ended = false;
    // The client may half-close after its last query (allowHalfOpen): answer everything, then end.
    const maybeEnd = (): void => {
      if (ended && pending === 0 && !conn.destroyed) conn.end();
    };
    const replied = (response: Buffer | undefined): void => {
      pending--;
      if (response && !conn.destroyed && conn.writable) conn.write(frame(response));
      if (pending < PIPELINE && conn.isPaused()) conn.resume();
      maybeEnd();
    };
    conn.on('data', (chunk: Buffer) => {
      for (const msg of reader.push(chunk)) {
        pending++;
        if (!handle(msg, 'tcp', replied)) pending--;
        // A client pipelining faster than we answer waits (TCP back-pressure) instead of queueing.
        else if (pending >= PIPELINE) conn.pause();
      }
    });
    conn.on('end', () => {
      ended = true;
      maybeEnd();
    });
    conn.on('error', (e) => log.debug({ err: e.message }, 'dns tcp connection error'));
    conn.on('close', () => connections.delete(conn));
  };

  const bindAll = async (p: number): Promise<Listener[]> => {
    const listeners: Listener[] = [];
    let chosen = p;
    try {
      for (const host of hosts) {
        const v6 = net.isIPv6(host);
        const family = v6 ? 'IPv6' : 'IPv4';
        const udp = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
        try {
          await new Promise<void>((resolve, reject) => {
            udp.once('error', reject);
            udp.bind(chosen, host, () => {
              udp.off('error', reject);
              resolve();
            });
          });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? '';
          udp.close();
          if (v6 && hostsDefaulted && NO_IPV6.has(code)) {
            log.warn({ host, code }, 'no IPv6 on this host: DNS listens on IPv4 loopback only');
            continue;
          }
          throw Object.assign(
            new Error(`DNS server: cannot listen on udp ${host}:${chosen}: ${code || (e as Error).message}`),
            { code },
          );
        }
        chosen = udp.address().port;
        udp.on('error', (e) => log.warn({ err: e.message, host }, 'dns udp socket error'));
        udp.on('message', (msg, rinfo) => {
          handle(msg, 'udp', (response) => {
            if (!response) return;
            try {
              // No callback: a failed send surfaces as the socket's 'error' event (logged above).
              udp.send(response, rinfo.port, rinfo.address);
            } catch (e) {
              log.debug({ err: (e as Error).message }, 'dns udp send failed');
            }
          });
        });
        listeners.push({
          info: { protocol: 'udp', address: host, family, port: chosen },
          close: () => {
            try {
              udp.close();
            } catch {
              // already closed
            }
          },
        });
        const tcp = net.createServer({ allowHalfOpen: true }, onConnection);
        tcp.maxConnections = opts.maxTcpConnections ?? 256;
        try {
          await new Promise<void>((resolve, reject) => {
            tcp.once('error', reject);
            tcp.listen({ port: chosen, host, ipv6Only: v6, exclusive: true }, () => {
              tcp.off('error', reject);
              resolve();
            });
          });
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code ?? '';
          throw Object.assign(
            new Error(`DNS server: cannot listen on tcp ${host}:${chosen}: ${code || (e as Error).message}`),
            { code },
          );
        }
        tcp.on('error', (e) => log.warn({ err: e.message, host }, 'dns tcp server error'));
        listeners.push({
          info: { protocol: 'tcp', address: host, family, port: chosen },
          close: () => tcp.close(),
        });
      }
    } catch (e) {
      for (const l of listeners) l.close();
      throw e;
    }
    return listeners;
  };

  let listeners: Listener[] | undefined;
  // With port 0 the first socket picks the port and the others follow; if one of them finds it taken,
  // start over with another (bounded).
  for (let tries = 0; !listeners; tries++) {
    try {
      listeners = await bindAll(port);
    } catch (e) {
      if (port !== 0 || (e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || tries >= 20) {
        upstream.close();
        throw e;
      }
    }
  }
  if (listeners.length === 0) throw new Error('DNS server: no listener could be opened');
  const addresses = listeners.map((l) => l.info);
  log.info(
    {
      addresses: addresses.map(
        (a) => `${a.protocol}:${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
      ),
      upstream: upstream.servers.map(formatServer),
      searchSuffixes: searchSuffixes ?? [],
    },
    'dns listening',
  );

  let closing: Promise<void> | undefined;
  return {
    addresses,
    port: addresses[0]!.port,
    upstreamServers: upstream.servers,
    searchSuffixes: searchSuffixes ?? [],
    cache,
    close() {
      closing ??= (async () => {
        for (const l of listeners) l.close();
        for (const c of connections) c.destroy();
        upstream.close();
      })();
      return closing;
    },
  };
}

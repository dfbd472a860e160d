// The dataplane's services around the listeners: destination sources, VIPs and the embedded DNS,
// the authenticator, the HTTP and TCP destination handlers, metrics and the admin server.
import { BlockList, isIPv6 } from 'node:net';
import { startDnsServer, type DnsServer } from '../dns/server.js';
import { createVipAllocator, type VipAllocator } from '../dns/vip.js';
import { startAdminServer, type AdminServer } from './admin.js';
import { createAuthenticator } from './auth/authenticator.js';
import type { DataplaneConfig } from './config.js';
import { redactDestination } from './destinations/redact.js';
import { startDestinationSources, type DestinationSources } from './destinations/sources.js';
import { createConnectivityProxy, type DataplaneConnectivityProxy } from './egress/connectivity-proxy.js';
import { createEgressProxies, proxyForUrl } from './egress/egress-proxies.js';
import type { EgressContext } from './egress/types.js';
import { createHttpDestinationHandler, type HttpDestinationHandler } from './http/handler.js';
import type { Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createRouter, type VipLookup } from './router.js';
import { pipeTcpDestination } from './tcp-destination.js';

export interface Services {
  route: ReturnType<typeof createRouter>;
  metrics: Metrics;
  /** what is still missing before the dataplane is ready (empty: ready) */
  notReady(): string[];
  /** the /config document (secrets redacted) */
  config(): unknown;
  close(): Promise<void>;
}

function vipLookup(vips: VipAllocator): VipLookup {
  const ranges = new BlockList();
  const [v4, v4prefix] = vips.ipv4Cidr.split('/');
  const [v6, v6prefix] = vips.ipv6Cidr.split('/');
  ranges.addSubnet(v4!, Number(v4prefix), 'ipv4');
  ranges.addSubnet(v6!, Number(v6prefix), 'ipv6');
  return {
    inRange: (address) => ranges.check(address, isIPv6(address) ? 'ipv6' : 'ipv4'),
    nameFor: (address) => vips.nameFor(address),
  };
}

export async function startServices(
  config: DataplaneConfig,
  log: Logger,
  listeners: () => string[],
): Promise<Services> {
  const metrics = createMetrics();
  const closers: (() => Promise<void> | void)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c();
  };
  try {
    const sources: DestinationSources = startDestinationSources({
      files: config.destinations.files,
      envVar: config.destinations.env ?? false,
      logger: log.child({ component: 'destinations' }),
    });
    closers.push(() => sources.close());
    const registry = sources.registry;
    const vips = createVipAllocator({ ipv4Cidr: config.dns.vip.ipv4, ipv6Cidr: config.dns.vip.ipv6 });
    // VIPs exist from the start, not only once DNS was asked: an app may still hold a VIP from before
    // a dataplane restart (allocation is deterministic).
    vips.sync(registry.names());
    registry.onChange(() => vips.sync(registry.names()));

    const dns: DnsServer = await startDnsServer({
      port: config.dns.port,
      ttl: config.dns.ttl,
      names: () => registry.names(),
      vips,
      upstream: config.dns.upstream.servers
        ? { servers: config.dns.upstream.servers }
        : { resolvConf: config.dns.upstream.resolvConf },
      ...(config.dns.kubernetesNamespace ? { kubernetesNamespace: config.dns.kubernetesNamespace } : {}),
      logger: log.child({ component: 'dns' }),
      onQuery: metrics.dnsQuery,
    });
    closers.push(() => dns.close());

    const egressProxies = createEgressProxies(config.egressProxy);
    const authenticator = createAuthenticator({
      logger: log.child({ component: 'auth' }),
      // token services on the Internet are reached through the corporate proxy too
      tokenServiceProxy: (url) => proxyForUrl(egressProxies, url),
      metrics: {
        onTokenFetch: (e) => metrics.tokenFetch(e.destination, e.outcome, e.durationMs),
        onCacheHit: (e) => metrics.tokenCache(e.destination, 'hit'),
        onCacheMiss: (e) => metrics.tokenCache(e.destination, 'miss'),
      },
    });
    closers.push(() => authenticator.close());

    // Created once; the HTTP path and the TCP path share them (and the connectivity proxy's token cache).
    const connectivityProxy: DataplaneConnectivityProxy | undefined = config.connectivityProxy
      ? createConnectivityProxy(config.connectivityProxy, authenticator)
      : undefined;
    const egress: EgressContext = { ...(connectivityProxy ? { connectivityProxy } : {}), egressProxies };
    for (const warning of config.egressProxy.warnings) log.warn({ warning }, 'egress proxy setting ignored');
    const proxies = egressProxies.describe();
    if (connectivityProxy || Object.values(proxies).some((p) => typeof p === 'object' && !Array.isArray(p)))
      log.info(
        { connectivityProxy: connectivityProxy?.describe() ?? 'not configured', egressProxy: proxies },
        'proxies',
      );

    const http: HttpDestinationHandler = createHttpDestinationHandler({
      authenticator,
      logger: log.child({ component: 'http' }),
      metrics: {
        onRequest: (e) => metrics.request(e.destination, e.status, e.durationMs),
        onUpstreamError: (e) => metrics.upstreamError(e.destination, e.kind),
      },
      egress,
    });
    closers.push(() => http.close(2000));

    const route = createRouter(vipLookup(vips), registry, {
      http: (socket, destination) => http.handle(socket, destination),
      tcp: (socket, destination, logger) =>
        pipeTcpDestination(socket, destination, {
          logger,
          connectTimeoutMs: destination.connectTimeoutMs,
          ...egress,
          onUpstreamError: (e) => metrics.upstreamError(e.destination, e.kind),
        }),
    });

    const notReady = () => [
      ...(listeners().length === 0 ? ['listeners not open'] : []),
      ...(dns.addresses.length > 0 ? [] : ['dns not listening']),
      ...(sources.loaded() ? [] : ['destinations not loaded']),
    ];
    const configDocument = () => ({
      listeners: listeners(),
      passthrough: config.passthrough,
      dns: {
        listening: dns.addresses.map(
          (a) => `${a.protocol} ${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
        ),
        upstreams: dns.upstreamServers,
        searchSuffixes: dns.searchSuffixes,
        ttl: config.dns.ttl,
        vipRanges: { ipv4: vips.ipv4Cidr, ipv6: vips.ipv6Cidr },
      },
      connectivityProxy: connectivityProxy?.describe() ?? 'not configured',
      egressProxy: egressProxies.describe(),
      destinations: registry.list().map((d) => ({
        ...redactDestination(d),
        vip: vips.vipFor(d.name),
        source: registry.sourceOf(d.name),
      })),
      destinationErrors: registry.errors().map(String),
    });
    const admin: AdminServer = await startAdminServer(
      config.admin,
      { notReady, config: configDocument, metrics },
      log,
    );
    closers.push(() => admin.close());
    return { route, metrics, notReady, config: configDocument, close };
  } catch (error) {
    await close();
    throw error;
  }
}

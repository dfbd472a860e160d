// The dataplane's Prometheus metrics (prom-client, one registry per dataplane) and the small hooks
// the DNS server, HTTP handler and authenticator call to feed them.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createDnsQueryCounter } from '../dns/metrics.js';
import type { DnsQueryEvent } from '../dns/resolver.js';

export interface Metrics {
  registry: Registry;
  connection(direction: string, route: string): void;
  request(destination: string, status: number, durationMs: number): void;
  upstreamError(destination: string, kind: string): void;
  tokenFetch(destination: string, outcome: string, durationMs: number): void;
  tokenCache(destination: string, result: 'hit' | 'miss'): void;
  /** the DNS server's onQuery hook (detour_dns_queries_total, defined by dns/) */
  dnsQuery(event: DnsQueryEvent): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'detour_process_' });
  const connections = new Counter({
    name: 'detour_connections_total',
    help: 'Accepted connections by direction and route (destination, passthrough, refused, not-redirected)',
    labelNames: ['direction', 'route'],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'detour_http_requests_total',
    help: 'HTTP requests to destinations by destination and status',
    labelNames: ['destination', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'detour_http_request_duration_seconds',
    help: 'Time from request to the end of the response, by destination',
    labelNames: ['destination'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const upstreamErrors = new Counter({
    name: 'detour_upstream_errors_total',
    help: 'Upstream failures by destination and kind (refused, timeout, tls, reset, ...)',
    labelNames: ['destination', 'kind'],
    registers: [registry],
  });
  const tokenFetches = new Counter({
    name: 'detour_token_fetches_total',
    help: 'Token requests to token services by destination and outcome',
    labelNames: ['destination', 'outcome'],
    registers: [registry],
  });
  const tokenFetchSeconds = new Histogram({
    name: 'detour_token_fetch_duration_seconds',
    help: 'Token request duration by destination',
    labelNames: ['destination'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const tokenCache = new Counter({
    name: 'detour_token_cache_total',
    help: 'Token cache lookups by destination and result (hit, miss)',
    labelNames: ['destination', 'result'],
    registers: [registry],
  });
  const dnsQueries = createDnsQueryCounter(registry);
  return {
    registry,
    connection: (direction, route) => connections.inc({ direction, route }),
    request: (destination, status, durationMs) => {
      requests.inc({ destination, status: String(status) });
      latency.observe({ destination }, durationMs / 1000);
    },
    upstreamError: (destination, kind) => upstreamErrors.inc({ destination, kind }),
    tokenFetch: (destination, outcome, durationMs) => {
      tokenFetches.inc({ destination, outcome });
      tokenFetchSeconds.observe({ destination }, durationMs / 1000);
    },
    tokenCache: (destination, result) => tokenCache.inc({ destination, result }),
    dnsQuery: dnsQueries.onQuery,
  };
}

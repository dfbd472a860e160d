// A ready-made prom-client counter for the server's onQuery hook.
import { Counter, type Registry } from 'prom-client';
import type { DnsQueryEvent } from './resolver.js';

export const DNS_QUERIES_METRIC = 'detour_dns_queries_total';

/**
 * Registers `detour_dns_queries_total{source,rcode,type}` in `registry` (the default registry when
 * omitted) and returns it with the matching onQuery hook. All three labels have bounded values.
 */
export function createDnsQueryCounter(registry?: Registry): {
  counter: Counter<'source' | 'rcode' | 'type'>;
  onQuery: (event: DnsQueryEvent) => void;
} {
  const counter = new Counter({
    name: DNS_QUERIES_METRIC,
    help: 'DNS queries answered by the embedded DNS server, by source (local, cache, upstream, error), response code and query type',
    labelNames: ['source', 'rcode', 'type'] as const,
    registers: registry ? [registry] : undefined,
  });
  // One child per label combination, looked up by a flat key: prom-client hashes a label object on
  // every inc(), which costs more than answering a local query.
  const children = new Map<string, { inc(): void }>();
  return {
    counter,
    onQuery: (e) => {
      const key = `${e.source}|${e.rcode}|${e.type}`;
      let child = children.get(key);
      if (!child) {
        child = counter.labels(e.source, e.rcode, e.type);
        children.set(key, child);
      }
      child.inc();
    },
  };
}

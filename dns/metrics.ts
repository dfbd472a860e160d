// A ready-made prom-client counter for the server's onQuery hook.
import { Counter, type Registry } from 'prom-client';
import type { DnsQueryEvent } from './resolver.js';

export const DNS_QUERIES_METRIC = 'detour_dns_queries_total';

interface Tally {
  labels: { source: string; rcode: string; type: string };
  count: number;
  reported: number;
}

/**
 * Registers `detour_dns_queries_total{source,rcode,type}` in `registry` (the default registry when
 * omitted) and returns it with the matching onQuery hook. All three labels have bounded values.
 */
export function createDnsQueryCounter(registry?: Registry): {
  counter: Counter<'source' | 'rcode' | 'type'>;
  onQuery: (event: DnsQueryEvent) => void;
} {
  // Queries are tallied in plain numbers and handed to prom-client when it is scraped: its inc()
  // hashes the label set every time, which costs more than answering a local query.
  const tallies = new Map<string, Tally>();
  const counter: Counter<'source' | 'rcode' | 'type'> = new Counter({
    name: DNS_QUERIES_METRIC,
    help: 'DNS queries answered by the embedded DNS server, by source (local, cache, upstream, error), response code and query type',
    labelNames: ['source', 'rcode', 'type'] as const,
    registers: registry ? [registry] : undefined,
    collect() {
      for (const t of tallies.values()) {
        if (t.count === t.reported) continue;
        counter.inc(t.labels, t.count - t.reported);
        t.reported = t.count;
      }
    },
  });
  return {
    counter,
    onQuery: (e) => {
      const key = `${e.source}|${e.rcode}|${e.type}`;
      const tally = tallies.get(key);
      if (tally) tally.count++;
      else
        tallies.set(key, {
          labels: { source: e.source, rcode: e.rcode, type: e.type },
          count: 1,
          reported: 0,
        });
    },
  };
}

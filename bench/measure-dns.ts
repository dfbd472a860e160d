// DNS: dnsperf against the embedded DNS (the app's queries, redirected by the rules) and dnsmasq (the
// direct UID's queries), local names only; the dataplane's counter proves which server answered.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDnsperf } from './parse-dnsperf.js';
import {
  client,
  ms,
  row,
  sampled,
  wholeSeconds,
  type MeasureContext,
  type MeasureOutput,
} from './measure-kit.js';
import type { Row } from './report.js';
import { summarize } from './stats.js';
import type { PathSpec } from './world.js';

/** Sum of detour_dns_queries_total answered from the local zone. */
export function localDnsAnswers(metrics: string): number {
  let sum = 0;
  for (const m of metrics.matchAll(/^detour_dns_queries_total\{[^}]*source="local"[^}]*\} (\d+(?:\.\d+)?)/gm))
    sum += Number(m[1]);
  return sum;
}

export async function dns(ctx: MeasureContext): Promise<MeasureOutput> {
  const raw: Record<string, unknown> = {};
  const qps: Row[] = [];
  const p99: Row[] = [];
  const detour = ctx.world.paths.find((p) => p.name === 'detour')!;
  for (const s of ctx.world.dns.servers) {
    const asPath: PathSpec = {
      ...detour,
      name: detour.name,
      uid: s.uid,
      pids: s.name === 'detour' ? detour.pids : () => [],
    };
    const before = localDnsAnswers(await ctx.world.dataplaneMetrics());
    const out = join(ctx.world.clientDir, `dnsperf-${s.name}.txt`);
    const d = wholeSeconds(ctx.opts.durationS);
    const run = await sampled(asPath, async () => {
      const cmd = `exec dnsperf -s ${s.server} -p ${s.port} -d ${ctx.world.dns.queryFile} -l ${d} -t 2 -v > ${out} 2>&1`;
      await client(ctx, asPath, ['sh', '-c', cmd], d);
      return parseDnsperf(readFileSync(out, 'utf8'));
    });
    const answered = localDnsAnswers(await ctx.world.dataplaneMetrics()) - before;
    const r = run.result;
    // The same address answers both: the rules send the app's queries to the embedded DNS, the direct
    // UID's to dnsmasq. The dataplane's counter says which one really answered.
    if (r && s.name === 'detour' && answered < r.completed * 0.99)
      run.failure = `the embedded DNS answered ${answered} of ${r.completed} queries (not redirected?)`;
    if (r && s.name !== 'detour' && answered > r.completed * 0.01)
      run.failure = `the embedded DNS answered ${answered} queries meant for ${s.name}`;
    const latency = r ? summarize(r.latenciesUs) : undefined;
    raw[s.name] = r
      ? { ...r, latenciesUs: undefined, latencyUs: latency, answeredByDataplane: answered }
      : run.failure;
    qps.push(row(s.name, r?.queriesPerSecond ?? null, run, r?.errors, r?.sent));
    p99.push(row(s.name, latency ? ms(latency.p99) : null, run, r?.errors, r?.sent));
    ctx.log(
      `dns ${s.name}: ${r ? `${r.queriesPerSecond.toFixed(0)} q/s, p99 ${latency ? ms(latency.p99).toFixed(3) : '?'} ms, errors ${r.errors}` : run.failure}`,
    );
  }
  const section = `DNS: local names (dnsperf, ${ctx.world.dns.names.length} names, up to 100 queries in flight)`;
  const common = { section, peers: ['dnsmasq'] };
  return {
    raw,
    metrics: [
      {
        ...common,
        id: 'dns-qps',
        title: 'DNS queries/s (embedded DNS vs dnsmasq)',
        unit: 'queries/s',
        better: 'higher',
        digits: 0,
        rows: qps,
        target: { path: 'detour', op: '>=', factor: 0.5, of: 'dnsmasq' },
      },
      {
        ...common,
        id: 'dns-p99',
        title: 'DNS latency p99 at saturation',
        unit: 'ms',
        better: 'lower',
        digits: 3,
        rows: p99,
      },
    ],
  };
}

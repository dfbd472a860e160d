// The DNS server on its own, for tests and trying it out (the dataplane embeds it instead):
//   node dist/dns/run-standalone.js '{"names":["orders"],"upstream":{"resolvConf":"/etc/resolv.conf"}}'
//   node dist/dns/run-standalone.js --config dns.json
// Logs JSON lines (pino): "dns ready" with the addresses and VIPs, one "dns answered" line per
// query (source, rcode, type, transport). SIGTERM / SIGINT: close and exit 0.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { z } from 'zod';
import { startDnsServer } from './server.js';
import { createVipAllocator } from './vip.js';

const schema = z.strictObject({
  port: z.int().min(0).max(65535).optional(),
  hosts: z.array(z.string()).optional(),
  ttl: z.int().min(0).optional(),
  names: z.array(z.string()),
  searchSuffixes: z.array(z.string()).optional(),
  kubernetesNamespace: z.string().optional(),
  clusterDomain: z.string().optional(),
  vip: z.strictObject({ ipv4: z.string().optional(), ipv6: z.string().optional() }).optional(),
  families: z.strictObject({ ipv4: z.boolean().optional(), ipv6: z.boolean().optional() }).optional(),
  upstream: z.union([
    z.strictObject({ servers: z.array(z.string()) }),
    z.strictObject({ resolvConf: z.string() }),
  ]),
  upstreamTimeoutMs: z.int().min(1).optional(),
  upstreamTotalTimeoutMs: z.int().min(1).optional(),
  cache: z.boolean().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
});

function fail(message: string): never {
  process.stderr.write(`run-standalone: ${message}\n`);
  process.exit(2);
}

function loadConfig(argv: string[]): z.infer<typeof schema> {
  let text: string | undefined;
  let label = 'the command line';
  if (argv[0] === '--config' && argv[1]) {
    label = argv[1];
    try {
      text = readFileSync(argv[1], 'utf8');
    } catch (e) {
      fail(`cannot read ${argv[1]}: ${(e as Error).message}`);
    }
  } else if (argv.length === 1) text = argv[0];
  if (text === undefined) fail("usage: run-standalone.js '<json>' | --config <file.json>");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    fail(`${label}: not JSON: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(data);
  if (!parsed.success)
    fail(
      `${label}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}

const config = loadConfig(process.argv.slice(2));
const log = pino({
  level: config.logLevel ?? 'info',
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
});

try {
  const vips = createVipAllocator({
    ...(config.vip?.ipv4 ? { ipv4Cidr: config.vip.ipv4 } : {}),
    ...(config.vip?.ipv6 ? { ipv6Cidr: config.vip.ipv6 } : {}),
  });
  const server = await startDnsServer({
    ...(config.port !== undefined ? { port: config.port } : {}),
    ...(config.hosts ? { hosts: config.hosts } : {}),
    ...(config.ttl !== undefined ? { ttl: config.ttl } : {}),
    names: config.names,
    ...(config.searchSuffixes ? { searchSuffixes: config.searchSuffixes } : {}),
    ...(config.kubernetesNamespace ? { kubernetesNamespace: config.kubernetesNamespace } : {}),
    ...(config.clusterDomain ? { clusterDomain: config.clusterDomain } : {}),
    ...(config.families ? { families: config.families } : {}),
    vips,
    upstream: config.upstream,
    ...(config.upstreamTimeoutMs ? { upstreamTimeoutMs: config.upstreamTimeoutMs } : {}),
    ...(config.upstreamTotalTimeoutMs ? { upstreamTotalTimeoutMs: config.upstreamTotalTimeoutMs } : {}),
    ...(config.cache === false ? { cache: false as const } : {}),
    logger: log,
    onQuery: (e) => log.info(e, 'dns answered'),
  });
  log.info(
    { addresses: server.addresses, vips: vips.entries(), upstream: server.upstreamServers },
    'dns ready',
  );
  const stop = (signal: string): void => {
    log.info({ signal }, 'dns stopping');
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
} catch (e) {
  log.error({ err: (e as Error).message }, 'dns failed to start');
  process.exit(1);
}

// The public API of the embedded DNS server (what dataplane/ imports).
export {
  DEFAULT_DNS_HOSTS,
  DEFAULT_DNS_PORT,
  DEFAULT_DNS_TTL,
  startDnsServer,
  type DnsServer,
  type DnsServerAddress,
  type DnsServerOptions,
} from './server.js';
export {
  DEFAULT_VIP_IPV4_CIDR,
  DEFAULT_VIP_IPV6_CIDR,
  VipRangeError,
  createVipAllocator,
  normalizeVipName,
  type Vip,
  type VipAllocator,
  type VipRanges,
} from './vip.js';
export { parseResolvConf, readResolvConf, type ResolvConf } from './resolv-conf.js';
export { formatServer, parseUpstreamServer, type UpstreamServer } from './upstream.js';
export type { DnsQueryEvent, QuerySource } from './resolver.js';
export type { CacheOptions, DnsCache } from './cache.js';
export type { Families } from './zone.js';
export { silentLogger, type DnsLogger } from './logger.js';
export { DNS_QUERIES_METRIC, createDnsQueryCounter } from './metrics.js';

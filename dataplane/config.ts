// The dataplane's configuration: the detour.yaml schema (the part the dataplane reads so far), flag
// parsing, and precedence defaults < config file < flags. Everything here is pure except loadConfigFile.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, resolve } from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { createVipAllocator } from '../dns/vip.js';
import {
  type ConnectivityProxySettings,
  connectivityProxySchema,
  type EgressProxySettings,
  egressProxySchema,
  NO_EGRESS_PROXY,
  resolveConnectivityProxy,
  resolveEgressProxy,
} from './egress/config.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DnsConfig {
  port: number;
  /** TTL of answers for destination names, seconds */
  ttl: number;
  vip: { ipv4: string; ipv6: string };
  /** the ORIGINAL resolv.conf: its nameservers are the upstreams, its search list the suffixes */
  upstream: { resolvConf: string; servers?: string[] };
  /** Kubernetes: also answer <name>.<namespace>[.svc[.cluster.local]] */
  kubernetesNamespace?: string;
}

export interface DataplaneConfig {
  listeners: { outbound: { port: number }; inbound: { enabled: boolean; port: number } };
  dns: DnsConfig;
  admin: { address: string; port: number };
  destinations: { files: string[]; env?: string };
  /** false: refuse traffic that is not for a destination (today: all traffic). */
  passthrough: boolean;
  /** Drop to this user (name or uid) before listening; only from --user. */
  user?: string;
  logLevel: LogLevel;
  connectTimeoutMs: number;
  /** OnPremise destinations: the connectivity proxy (none: OnPremise destinations answer 502) */
  connectivityProxy?: ConnectivityProxySettings;
  /** Internet destinations: corporate proxies (config > HTTP_PROXY/HTTPS_PROXY/ALL_PROXY/NO_PROXY) */
  egressProxy: EgressProxySettings;
}

export const DEFAULTS: DataplaneConfig = {
  listeners: { outbound: { port: 15001 }, inbound: { enabled: true, port: 15006 } },
  dns: {
    port: 15053,
    ttl: 30,
    vip: { ipv4: '240.240.0.0/16', ipv6: '2001:2:0:240::/64' },
    upstream: { resolvConf: '/etc/resolv.conf' },
  },
  admin: { address: '127.0.0.1', port: 9901 },
  destinations: { files: [], env: 'destinations' },
  passthrough: true,
  logLevel: 'info',
  connectTimeoutMs: 10_000,
  egressProxy: NO_EGRESS_PROXY,
};

/** Bad input: the CLI prints the message as one line and exits 2. */
export class ConfigError extends Error {
  readonly exitCode = 2;
}

const PORT = 'expected an integer 1-65535';
const port = z.int({ error: PORT }).min(1, { error: PORT }).max(65535, { error: PORT });
const bool = z.boolean({ error: 'expected true or false' });
const mapping = { error: 'expected a mapping' };

const fileSchema = z.strictObject(
  {
    listeners: z
      .strictObject(
        {
          outbound: z.strictObject({ port: port.optional() }, mapping).nullish(),
          inbound: z.strictObject({ enabled: bool.optional(), port: port.optional() }, mapping).nullish(),
        },
        mapping,
      )
      .nullish(),
    passthrough: bool.optional(),
    dns: z
      .strictObject(
        {
          port: port.optional(),
          ttl: z.int({ error: 'expected whole seconds' }).min(0).max(86400).optional(),
          vip: z
            .strictObject({ ipv4: z.string().optional(), ipv6: z.string().optional() }, mapping)
            .nullish(),
          upstream: z
            .strictObject(
              {
                resolvConf: z.string().min(1).optional(),
                servers: z
                  .array(z.string().refine((s) => isIP(s) !== 0, 'expected an IP address'))
                  .optional(),
              },
              mapping,
            )
            .nullish(),
          kubernetesNamespace: z.string().optional(),
        },
        mapping,
      )
      .nullish(),
    admin: z
      .strictObject(
        {
          address: z
            .string()
            .refine((s) => isIP(s) !== 0, 'expected an IP address')
            .optional(),
          port: port.optional(),
        },
        mapping,
      )
      .nullish(),
    destinations: z
      .strictObject(
        {
          files: z.array(z.string().min(1)).optional(),
          env: z.string().min(1).optional(),
          // The SAP Destination service source arrives with a later issue.
          destinationService: z.unknown().optional(),
        },
        mapping,
      )
      .nullish(),
    connectivityProxy: connectivityProxySchema.nullish(),
    egressProxy: egressProxySchema.nullish(),
    // Parts of the DESIGN.md contract that later issues will own; accepted, not read yet.
    tenantMode: z.unknown().optional(),
  },
  mapping,
);

export type FileConfig = z.infer<typeof fileSchema>;

export interface FlagValues {
  outboundPort?: number;
  inboundPort?: number;
  inbound?: boolean;
  user?: string;
  logLevel?: LogLevel;
  connectTimeoutMs?: number;
  destinationFiles?: string[];
  dnsPort?: number;
  adminPort?: number;
  passthrough?: boolean;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
  if (issue.code === 'unrecognized_keys')
    return `${where}unknown key ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return `${where}${issue.message}`;
}

/** Parses and validates a detour.yaml text; `label` (the file name) starts every error message. */
export function parseConfigText(text: string, label: string): FileConfig {
  let data: unknown;
  try {
    data = YAML.parse(text) ?? {};
  } catch (error) {
    throw new ConfigError(`${label}: invalid YAML: ${firstLine(error)}`);
  }
  const result = fileSchema.safeParse(data);
  if (!result.success)
    throw new ConfigError(`${label}: ${result.error.issues.map(describeIssue).join('; ')}`);
  return result.data;
}

export function loadConfigFile(path: string): FileConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `${path}: cannot read: ${(error as NodeJS.ErrnoException).code ?? firstLine(error)}`,
    );
  }
  return parseConfigText(text, path);
}

export function parsePortFlag(flag: string, value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`${flag}: ${PORT}, got "${value}"`);
  return n;
}

export function parseLogLevelFlag(value: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new ConfigError(`--log-level: expected one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
}

export function parseTimeoutFlag(flag: string, value: string): number {
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw new ConfigError(`${flag}: expected a positive integer (ms), got "${value}"`);
  return n;
}

/** defaults < config file < flags. */
export function resolveConfig(
  file: FileConfig | undefined,
  flags: FlagValues,
  fileDir = '.',
  env: NodeJS.ProcessEnv = process.env,
): DataplaneConfig {
  const out = file?.listeners?.outbound;
  const inb = file?.listeners?.inbound;
  const dns = file?.dns;
  const d = DEFAULTS.dns;
  const config: DataplaneConfig = {
    listeners: {
      outbound: { port: flags.outboundPort ?? out?.port ?? DEFAULTS.listeners.outbound.port },
      inbound: {
        enabled: flags.inbound ?? inb?.enabled ?? DEFAULTS.listeners.inbound.enabled,
        port: flags.inboundPort ?? inb?.port ?? DEFAULTS.listeners.inbound.port,
      },
    },
    dns: {
      port: flags.dnsPort ?? dns?.port ?? d.port,
      ttl: dns?.ttl ?? d.ttl,
      vip: { ipv4: dns?.vip?.ipv4 ?? d.vip.ipv4, ipv6: dns?.vip?.ipv6 ?? d.vip.ipv6 },
      upstream: {
        resolvConf: dns?.upstream?.resolvConf ?? d.upstream.resolvConf,
        ...(dns?.upstream?.servers ? { servers: dns.upstream.servers } : {}),
      },
      ...(dns?.kubernetesNamespace ? { kubernetesNamespace: dns.kubernetesNamespace } : {}),
    },
    admin: {
      address: file?.admin?.address ?? DEFAULTS.admin.address,
      port: flags.adminPort ?? file?.admin?.port ?? DEFAULTS.admin.port,
    },
    destinations: {
      // Files named in detour.yaml are relative to it; --destinations to the working directory.
      files: [
        ...(file?.destinations?.files ?? []).map((f) => resolve(fileDir, f)),
        ...(flags.destinationFiles ?? []).map((f) => resolve(f)),
      ],
      env: file?.destinations?.env ?? DEFAULTS.destinations.env,
    },
    passthrough: flags.passthrough ?? file?.passthrough ?? DEFAULTS.passthrough,
    logLevel: flags.logLevel ?? DEFAULTS.logLevel,
    connectTimeoutMs: flags.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    egressProxy: resolveEgressProxy(file?.egressProxy, env),
  };
  if (flags.user !== undefined) config.user = flags.user;
  if (file?.connectivityProxy) {
    try {
      config.connectivityProxy = resolveConnectivityProxy(file.connectivityProxy, fileDir);
    } catch (error) {
      throw new ConfigError((error as Error).message);
    }
  }
  return validateResolved(config);
}

function validateResolved(config: DataplaneConfig): DataplaneConfig {
  const { outbound, inbound } = config.listeners;
  if (inbound.enabled && inbound.port === outbound.port) {
    throw new ConfigError(`listeners: outbound and inbound port are both ${outbound.port}; they must differ`);
  }
  if (config.dns.port === outbound.port) {
    throw new ConfigError(
      `dns.port and listeners.outbound.port are both ${config.dns.port}; they must differ`,
    );
  }
  try {
    createVipAllocator({ ipv4Cidr: config.dns.vip.ipv4, ipv6Cidr: config.dns.vip.ipv6 });
  } catch (error) {
    throw new ConfigError(`dns.vip: ${(error as Error).message}`);
  }
  return config;
}

/** The folder of a config file, against which the relative paths inside it are resolved. */
export function configDir(path: string): string {
  return dirname(resolve(path));
}

function firstLine(error: unknown): string {
  return (String((error as Error)?.message ?? error).split('\n')[0] ?? '').replace(/:\s*$/, '');
}

// The dataplane's configuration: the detour.yaml schema (the part the dataplane reads so far), flag
// parsing, and precedence defaults < config file < flags. Everything here is pure except loadConfigFile.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DataplaneConfig {
  listeners: { outbound: { port: number }; inbound: { enabled: boolean; port: number } };
  /** false: refuse traffic that is not for a destination (today: all traffic). */
  passthrough: boolean;
  /** Drop to this user (name or uid) before listening; only from --user. */
  user?: string;
  logLevel: LogLevel;
  connectTimeoutMs: number;
}

export const DEFAULTS: DataplaneConfig = {
  listeners: { outbound: { port: 15001 }, inbound: { enabled: true, port: 15006 } },
  passthrough: true,
  logLevel: 'info',
  connectTimeoutMs: 10_000,
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
    // Parts of the DESIGN.md contract that other dataplane modules will own; accepted, not read yet.
    dns: z.unknown().optional(),
    admin: z.unknown().optional(),
    destinations: z.unknown().optional(),
    connectivityProxy: z.unknown().optional(),
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
export function resolveConfig(file: FileConfig | undefined, flags: FlagValues): DataplaneConfig {
  const out = file?.listeners?.outbound;
  const inb = file?.listeners?.inbound;
  const config: DataplaneConfig = {
    listeners: {
      outbound: { port: flags.outboundPort ?? out?.port ?? DEFAULTS.listeners.outbound.port },
      inbound: {
        enabled: flags.inbound ?? inb?.enabled ?? DEFAULTS.listeners.inbound.enabled,
        port: flags.inboundPort ?? inb?.port ?? DEFAULTS.listeners.inbound.port,
      },
    },
    passthrough: file?.passthrough ?? DEFAULTS.passthrough,
    logLevel: flags.logLevel ?? DEFAULTS.logLevel,
    connectTimeoutMs: flags.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
  };
  if (flags.user !== undefined) config.user = flags.user;
  return validateResolved(config);
}

function validateResolved(config: DataplaneConfig): DataplaneConfig {
  const { outbound, inbound } = config.listeners;
  if (inbound.enabled && inbound.port === outbound.port) {
    throw new ConfigError(`listeners: outbound and inbound port are both ${outbound.port}; they must differ`);
  }
  return config;
}

function firstLine(error: unknown): string {
  return (String((error as Error)?.message ?? error).split('\n')[0] ?? '').replace(/:\s*$/, '');
}

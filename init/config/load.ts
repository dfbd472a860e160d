// Builds the transparent-proxy config from its sources, in order of precedence:
// defaults < YAML files (--config, repeatable, later files win) < DETOUR_TRANSPARENT_PROXY_* env vars < flags.
// Every error names the source (file, env var or flag) and the field, and exits 2 (UsageError).
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../errors.js';
import { FIELDS, PARSERS, envName } from './fields.js';
import { defaults, partialConfigSchema, setPath, getPath, type TransparentProxyConfig } from './schema.js';

export interface ConfigSources {
  files?: string[];
  env?: Record<string, string | undefined>;
  /** flag values keyed by field path (raw strings/booleans as commander gives them) */
  flags?: Record<string, unknown>;
}

type Partial = Record<string, unknown>;

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => (where ? `${where}.${k}` : k));
    const known = FIELDS.map((f) => f.path).filter((p) => !where || p.startsWith(`${where}.`));
    return `unknown field ${keys.map((k) => `"${k}"`).join(', ')}; known fields here: ${known.join(', ')}`;
  }
  if (issue.code === 'invalid_type' && issue.expected === 'object') {
    return `${where || '(top level)'}: expected a mapping of fields`;
  }
  return `${where}: ${issue.message}`;
}

function fromFile(file: string): Partial {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(
      `${file}: cannot read config file: ${(error as NodeJS.ErrnoException).code ?? error}`,
    );
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new UsageError(`${file}: invalid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  if (document === null || document === undefined) return {};
  const result = partialConfigSchema.safeParse(document);
  if (!result.success) throw new UsageError(`${file}: ${describeIssue(result.error.issues[0]!)}`);
  return result.data as Partial;
}

function fromValues(values: Record<string, unknown>, nameOf: (path: string) => string): Partial {
  const partial: Partial = {};
  for (const field of FIELDS) {
    const raw = values[field.path];
    if (raw === undefined) continue;
    try {
      setPath(partial, field.path, PARSERS[field.kind](raw));
    } catch (error) {
      throw new UsageError(`${nameOf(field.path)}: ${(error as Error).message}`);
    }
  }
  return partial;
}

function fromEnv(env: Record<string, string | undefined>): Partial {
  const values: Record<string, unknown> = {};
  for (const field of FIELDS) {
    const value = env[envName(field.path)];
    if (value !== undefined && value !== '') values[field.path] = value;
  }
  return fromValues(values, envName);
}

export function flagName(path: string): string {
  const field = FIELDS.find((f) => f.path === path);
  return field?.flag ? `--${field.flag}` : path;
}

function merge(target: Partial, source: Partial): void {
  for (const [key, value] of Object.entries(source)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      merge((target[key] ??= {}) as Partial, value as Partial);
    } else {
      target[key] = value;
    }
  }
}

function checkDnsModes(partial: Partial, source: string): void {
  if (
    getPath(partial, 'redirect.dns.enabled') === true &&
    getPath(partial, 'redirect.dns.captureAll') === true
  ) {
    const what =
      source === 'flags'
        ? '--redirect-dns and --redirect-all-dns-traffic'
        : `${source}: redirect.dns.enabled and redirect.dns.captureAll`;
    throw new UsageError(
      `${what} are mutually exclusive: use one (all DNS traffic, or only to the resolv.conf nameservers)`,
    );
  }
}

function checkPorts(config: TransparentProxyConfig): void {
  const { outbound, inbound, dns } = config.redirect;
  const used: [string, number, boolean][] = [
    ['redirect.outbound.port', outbound.port, true],
    ['redirect.inbound.port', inbound.port, inbound.enabled],
    ['redirect.dns.port', dns.port, dns.enabled || dns.captureAll],
  ];
  const active = used.filter(([, , on]) => on);
  for (let i = 0; i < active.length; i++) {
    for (let j = i + 1; j < active.length; j++) {
      if (active[i]![1] === active[j]![1]) {
        throw new UsageError(
          `${active[i]![0]} and ${active[j]![0]} are both ${active[i]![1]}: each listener needs its own port`,
        );
      }
    }
  }
}

export function loadConfig(sources: ConfigSources): TransparentProxyConfig {
  const config = defaults() as unknown as Partial;
  const layers: [string, Partial][] = [
    ...(sources.files ?? []).map((file): [string, Partial] => [file, fromFile(file)]),
    ['environment', fromEnv(sources.env ?? {})],
    ['flags', fromValues(sources.flags ?? {}, flagName)],
  ];
  for (const [source, layer] of layers) {
    checkDnsModes(layer, source);
    merge(config, layer);
  }
  const resolved = config as unknown as TransparentProxyConfig;
  // A layer that turns on capture of all DNS overrides an earlier layer's resolv.conf-only capture.
  if (resolved.redirect.dns.captureAll) resolved.redirect.dns.enabled = true;
  checkPorts(resolved);
  return resolved;
}

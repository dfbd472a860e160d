// The resolved transparent-proxy config (every field present), and the zod schema that validates a
// partial config (a YAML file, or the values from env vars or flags) built from the field table.
import { z } from 'zod';
import { FIELDS, PARSERS, type Field } from './fields.js';
import type { Cidr, PortRange, UidPortExclusion } from './values.js';

export interface TransparentProxyConfig {
  dataplaneUser: string;
  ipFamilyMode: 'dualstack' | 'ipv4';
  backend: 'auto' | 'iptables-legacy' | 'iptables-nft' | 'nftables';
  redirect: {
    outbound: {
      port: number;
      excludePorts: PortRange[];
      includePorts: PortRange[];
      excludeIPs: Cidr[];
      excludePortsForUIDs: UidPortExclusion[];
    };
    inbound: { enabled: boolean; port: number; excludePorts: PortRange[]; excludeIPs: Cidr[] };
    dns: {
      enabled: boolean;
      captureAll: boolean;
      port: number;
      skipConntrackZoneSplit: boolean;
      resolvConfPath: string;
    };
  };
  dropInvalidPackets: boolean;
  log: { enabled: boolean; level: string };
  wait: number;
  retry: { maxRetries: number; sleepBetweenRetries: number };
  dryRun: boolean;
  verbose: boolean;
  validate: boolean;
}

function fieldSchema(field: Field) {
  const parse = PARSERS[field.kind];
  return z.unknown().transform((value, ctx) => {
    try {
      return parse(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });
}

type Tree = { [key: string]: Tree | Field };

function fieldTree(): Tree {
  const root: Tree = {};
  for (const field of FIELDS) {
    const parts = field.path.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Tree;
    node[parts[parts.length - 1]!] = field;
  }
  return root;
}

function toSchema(tree: Tree): z.ZodType {
  const shape: Record<string, z.ZodType> = {};
  for (const [key, node] of Object.entries(tree)) {
    shape[key] = ('kind' in node ? fieldSchema(node as Field) : toSchema(node as Tree)).optional();
  }
  return z.strictObject(shape);
}

/** Validates one partial config source; unknown keys are errors. */
export const partialConfigSchema = toSchema(fieldTree());

export function defaults(): TransparentProxyConfig {
  const config: Record<string, unknown> = {};
  for (const field of FIELDS) setPath(config, field.path, structuredClone(field.default));
  return config as unknown as TransparentProxyConfig;
}

export function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
  node[parts[parts.length - 1]!] = value;
}

export function getPath(source: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], source);
}

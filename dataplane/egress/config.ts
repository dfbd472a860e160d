// The `connectivityProxy` and `egressProxy` sections of detour.yaml: schema (zod, used by
// ../config.ts) and resolution into settings. Resolution reads the connectivity service key file and
// the proxy environment variables; everything else is pure.
import { resolve } from 'node:path';
import { z } from 'zod';
import { parseNoProxy, splitNoProxy } from './no-proxy.js';
import { parseProxyUrl, ProxyUrlError } from './proxy-url.js';
import { loadConnectivityServiceKey, type ConnectivityServiceKey } from './service-key.js';
import type { EgressProxy } from './types.js';

export const CONNECTIVITY_PROXY_DEFAULT_PORTS = { http: 20003, socks5: 20004 } as const;

const PORT = 'expected an integer 1-65535';
const port = z.int({ error: PORT }).min(1, { error: PORT }).max(65535, { error: PORT });
const bool = z.boolean({ error: 'expected true or false' });
const mapping = { error: 'expected a mapping' };

export const connectivityProxySchema = z
  .strictObject(
    {
      host: z.string().min(1).optional(),
      httpPort: port.optional(),
      socks5Port: port.optional(),
      /** a connectivity service key (JSON), relative to the config file */
      serviceKey: z.string().min(1).optional(),
      /** no proxy authorization (a proxy that trusts this workload, e.g. a sidecar or a test stand-in) */
      trusted: bool.optional(),
    },
    mapping,
  )
  .superRefine((value, ctx) => {
    if (value.serviceKey !== undefined && value.trusted === true)
      ctx.addIssue({
        code: 'custom',
        message: 'serviceKey and trusted: true exclude each other (trusted means no proxy authorization)',
      });
    else if (value.serviceKey === undefined && value.trusted !== true)
      ctx.addIssue({
        code: 'custom',
        message:
          'set serviceKey (a connectivity service key: tokens for Proxy-Authorization) or trusted: true (no proxy authorization)',
      });
    else if (value.trusted === true && value.host === undefined)
      ctx.addIssue({ code: 'custom', path: ['host'], message: 'required with trusted: true' });
  });

const proxyUrl = z.string().superRefine((value, ctx) => {
  try {
    parseProxyUrl(value);
  } catch (error) {
    if (!(error instanceof ProxyUrlError)) throw error;
    ctx.addIssue({ code: 'custom', message: error.message });
  }
});

export const egressProxySchema = z.strictObject(
  {
    /** an HTTP proxy: http targets in absolute form, https targets (and TCP without socks5) via CONNECT */
    http: proxyUrl.optional(),
    /** a SOCKS5 proxy: TCP targets (and HTTP targets without http) */
    socks5: proxyUrl.optional(),
    /** targets that go direct; replaces NO_PROXY from the environment */
    noProxy: z
      .array(z.string())
      .superRefine((entries, ctx) => {
        for (const problem of parseNoProxy(entries).problems)
          ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    /** read HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY (default true); the config's values win */
    fromEnvironment: bool.optional(),
  },
  mapping,
);

export type ConnectivityProxyFileConfig = z.infer<typeof connectivityProxySchema>;
export type EgressProxyFileConfig = z.infer<typeof egressProxySchema>;

export type ConnectivityProxyAuth =
  | { kind: 'trusted' }
  | { kind: 'serviceKey'; file: string; clientId: string; clientSecret: string; tokenUrl: string };

export interface ConnectivityProxySettings {
  host: string;
  httpPort: number;
  socks5Port: number;
  auth: ConnectivityProxyAuth;
}

/** Which proxy each kind of target uses (undefined: direct), and the NO_PROXY entries. */
export interface EgressProxySettings {
  http?: EgressProxy;
  https?: EgressProxy;
  tcp?: EgressProxy;
  noProxy: string[];
  /** where each came from, for /config: `config`, or the environment variable's name */
  sources: { http?: string; https?: string; tcp?: string; noProxy?: string };
  /** environment entries that were skipped (unusable URL or NO_PROXY entry); logged at start */
  warnings: string[];
}

export const NO_EGRESS_PROXY: EgressProxySettings = { noProxy: [], sources: {}, warnings: [] };

/** Resolves `connectivityProxy`: the service key file (relative to fileDir) fills in what the section leaves out. */
export function resolveConnectivityProxy(
  section: ConnectivityProxyFileConfig,
  fileDir: string,
  loadKey: (path: string) => ConnectivityServiceKey = loadConnectivityServiceKey,
): ConnectivityProxySettings {
  let key: ConnectivityServiceKey | undefined;
  let keyFile: string | undefined;
  if (section.serviceKey !== undefined) {
    keyFile = resolve(fileDir, section.serviceKey);
    try {
      key = loadKey(keyFile);
    } catch (error) {
      throw new Error(`connectivityProxy.serviceKey: ${(error as Error).message}`);
    }
  }
  const host = section.host ?? key?.proxyHost;
  if (host === undefined)
    throw new Error(
      `connectivityProxy.host: required (the service key ${keyFile ?? ''} has no "onpremise_proxy_host")`,
    );
  return {
    host,
    httpPort: section.httpPort ?? key?.httpPort ?? CONNECTIVITY_PROXY_DEFAULT_PORTS.http,
    socks5Port: section.socks5Port ?? key?.socks5Port ?? CONNECTIVITY_PROXY_DEFAULT_PORTS.socks5,
    auth:
      key && keyFile
        ? {
            kind: 'serviceKey',
            file: keyFile,
            clientId: key.clientId,
            clientSecret: key.clientSecret,
            tokenUrl: key.tokenUrl,
          }
        : { kind: 'trusted' },
  };
}

/** The first set variable of the lower-case then upper-case name (curl's order). */
function fromEnv(env: NodeJS.ProcessEnv, name: string): { name: string; value: string } | undefined {
  for (const n of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[n];
    if (value !== undefined && value.trim() !== '') return { name: n, value };
  }
  return undefined;
}

/**
 * Resolves `egressProxy`, config > environment. From the config: HTTP targets use `http` (else
 * `socks5`), TCP targets use `socks5` (else `http`, by CONNECT). From the environment (unless
 * `fromEnvironment: false`), for what the config leaves unset: http targets HTTP_PROXY, https targets
 * HTTPS_PROXY, TCP targets ALL_PROXY, each falling back to ALL_PROXY (TCP: to HTTPS_PROXY).
 * `noProxy` from the config replaces NO_PROXY.
 */
export function resolveEgressProxy(
  section: EgressProxyFileConfig | undefined | null,
  env: NodeJS.ProcessEnv,
): EgressProxySettings {
  const settings: EgressProxySettings = { noProxy: [], sources: {}, warnings: [] };
  const http = section?.http !== undefined ? parseProxyUrl(section.http) : undefined;
  const socks5 = section?.socks5 !== undefined ? parseProxyUrl(section.socks5) : undefined;
  const fromConfig = { http: http ?? socks5, https: http ?? socks5, tcp: socks5 ?? http };
  const useEnv = section?.fromEnvironment !== false;

  const envProxy = (name: string): { name: string; proxy: EgressProxy } | undefined => {
    const found = fromEnv(env, name);
    if (!found) return undefined;
    try {
      return { name: found.name, proxy: parseProxyUrl(found.value) };
    } catch (error) {
      settings.warnings.push(`${found.name} ignored: ${(error as Error).message}`);
      return undefined;
    }
  };
  const env_ = useEnv
    ? { http: envProxy('http_proxy'), https: envProxy('https_proxy'), all: envProxy('all_proxy') }
    : { http: undefined, https: undefined, all: undefined };
  const fromEnvironment = {
    http: env_.http ?? env_.all,
    https: env_.https ?? env_.all,
    tcp: env_.all ?? env_.https,
  };
  for (const scheme of ['http', 'https', 'tcp'] as const) {
    const configured = fromConfig[scheme];
    const environment = fromEnvironment[scheme];
    if (configured) {
      settings[scheme] = configured;
      settings.sources[scheme] = 'config';
    } else if (environment) {
      settings[scheme] = environment.proxy;
      settings.sources[scheme] = environment.name;
    }
  }

  if (section?.noProxy !== undefined) {
    settings.noProxy = parseNoProxy(section.noProxy).noProxy.entries.slice();
    settings.sources.noProxy = 'config';
  } else if (useEnv) {
    const found = fromEnv(env, 'no_proxy');
    if (found) {
      const parsed = parseNoProxy(splitNoProxy(found.value));
      settings.noProxy = parsed.noProxy.entries.slice();
      settings.sources.noProxy = found.name;
      for (const problem of parsed.problems)
        settings.warnings.push(`${found.name}: entry ${problem} ignored`);
    }
  }
  return settings;
}

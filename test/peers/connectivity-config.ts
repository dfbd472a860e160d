// Configuration of the connectivity proxy stand-in and the Cloud Connector behind it: which token
// clients it accepts, which Cloud Connector locations exist (connected or not), and each location's
// access control (virtual host:port → internal host:port, protocol, allowed URL paths). Pure: parsing
// with errors that name the field, and the two look-ups both proxy ports share.
import type { Jwk } from './jwt.js';

export type SystemProtocol = 'http' | 'tcp';

/** One Cloud Connector access-control entry ("system mapping"). */
export interface SystemMapping {
  virtualHost: string;
  virtualPort: number;
  internalHost: string;
  internalPort: number;
  /** 'http' systems are reachable through the HTTP port, 'tcp' ones through SOCKS5; default 'http' */
  protocol?: SystemProtocol;
  /** HTTP only: allowed URL paths, each with all its sub-paths; default ['/'] (everything) */
  paths?: string[];
}

export interface LocationConfig {
  /** whether a Cloud Connector is connected for this location; default true */
  connected?: boolean;
  systems: SystemMapping[];
}

export interface ConnectivityProxyOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** HTTP proxy port; default 0 (ephemeral). SAP's is 20003 */
  httpPort?: number;
  /** SOCKS5 port; default 0 (ephemeral). SAP's is 20004 */
  socksPort?: number;
  /** GET /_peer/stats, PUT /_peer/locations/<id>; default: none (in-process API only) */
  adminPort?: number;
  /** the token service's JSON Web Key Set (fetched on first use, refetched for unknown kids) */
  jwksUrl?: string;
  /** or the keys themselves */
  keys?: Jwk[];
  /** client ids whose tokens are accepted (the connectivity service key's clientid) */
  clientIds: string[];
  /** location id → location; '' is the default location (no SAP-Connectivity-SCC-Location_ID) */
  locations: Record<string, LocationConfig>;
  /**
   * Where a SOCKS5 client learns that its JWT is not accepted: 'subnegotiation' (default) answers the
   * 0x80 sub-negotiation with 01 01 and closes; 'connect' accepts it (01 00) and answers the CONNECT
   * with 0x05, SAP's "authentication failure" reply code.
   */
  socksAuthFailure?: 'subnegotiation' | 'connect';
  /**
   * SAP's "trusted environment" operational mode: requests without Proxy-Authorization are accepted
   * (a token that is sent is still checked), and SOCKS5 also offers method 0x00 (no authentication,
   * default location) to clients that do not offer 0x80. Default false.
   */
  trusted?: boolean;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

function port(v: unknown, field: string, allowZero: boolean): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < (allowZero ? 0 : 1) || v > 65535)
    throw new ConfigError(
      `${field} must be a port number (${allowZero ? 0 : 1}-65535), got ${JSON.stringify(v)}`,
    );
  return v;
}

function nonEmptyString(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw new ConfigError(`${field} must be a non-empty string`);
  return v;
}

function parseSystem(raw: unknown, field: string): SystemMapping {
  if (!isObject(raw)) throw new ConfigError(`${field} must be an object`);
  const protocol = raw.protocol ?? 'http';
  if (protocol !== 'http' && protocol !== 'tcp')
    throw new ConfigError(`${field}.protocol must be "http" or "tcp", got ${JSON.stringify(raw.protocol)}`);
  const system: SystemMapping = {
    virtualHost: nonEmptyString(raw.virtualHost, `${field}.virtualHost`).toLowerCase(),
    virtualPort: port(raw.virtualPort, `${field}.virtualPort`, false),
    internalHost: nonEmptyString(raw.internalHost, `${field}.internalHost`),
    internalPort: port(raw.internalPort, `${field}.internalPort`, false),
    protocol,
  };
  if (raw.paths !== undefined) {
    if (protocol !== 'http') throw new ConfigError(`${field}.paths only applies to http systems`);
    if (!Array.isArray(raw.paths) || raw.paths.some((p) => typeof p !== 'string' || !p.startsWith('/')))
      throw new ConfigError(`${field}.paths must be a list of paths starting with "/"`);
    system.paths = raw.paths as string[];
  }
  return system;
}

/** Validates a configuration (e.g. parsed JSON); throws ConfigError naming the field. */
export function parseOptions(raw: unknown): ConnectivityProxyOptions {
  if (!isObject(raw)) throw new ConfigError('config must be a JSON object');
  if (
    !Array.isArray(raw.clientIds) ||
    raw.clientIds.length === 0 ||
    raw.clientIds.some((c) => typeof c !== 'string')
  )
    throw new ConfigError('config.clientIds must list the accepted client ids (strings)');
  if ((raw.jwksUrl === undefined) === (raw.keys === undefined))
    throw new ConfigError('config needs exactly one of jwksUrl (the token service JWKS) or keys');
  if (raw.jwksUrl !== undefined && !/^https?:\/\//.test(String(raw.jwksUrl)))
    throw new ConfigError('config.jwksUrl must be an http(s) URL');
  if (raw.keys !== undefined && !Array.isArray(raw.keys))
    throw new ConfigError('config.keys must be a list of JWKs');
  if (!isObject(raw.locations) || Object.keys(raw.locations).length === 0)
    throw new ConfigError('config.locations must map location ids ("" = default) to locations');
  const locations: Record<string, LocationConfig> = {};
  for (const [id, loc] of Object.entries(raw.locations)) {
    const field = `config.locations[${JSON.stringify(id)}]`;
    if (!isObject(loc)) throw new ConfigError(`${field} must be an object`);
    if (loc.connected !== undefined && typeof loc.connected !== 'boolean')
      throw new ConfigError(`${field}.connected must be true or false`);
    if (!Array.isArray(loc.systems)) throw new ConfigError(`${field}.systems must be a list`);
    locations[id] = {
      connected: loc.connected ?? true,
      systems: loc.systems.map((s, i) => parseSystem(s, `${field}.systems[${i}]`)),
    };
  }
  if (
    raw.socksAuthFailure !== undefined &&
    raw.socksAuthFailure !== 'subnegotiation' &&
    raw.socksAuthFailure !== 'connect'
  )
    throw new ConfigError('config.socksAuthFailure must be "subnegotiation" or "connect"');
  const options: ConnectivityProxyOptions = {
    clientIds: raw.clientIds as string[],
    locations,
  };
  if (raw.host !== undefined) options.host = nonEmptyString(raw.host, 'config.host');
  for (const f of ['httpPort', 'socksPort', 'adminPort'] as const)
    if (raw[f] !== undefined) options[f] = port(raw[f], `config.${f}`, true);
  if (raw.jwksUrl !== undefined) options.jwksUrl = String(raw.jwksUrl);
  if (raw.keys !== undefined) options.keys = raw.keys as Jwk[];
  if (raw.trusted !== undefined) {
    if (typeof raw.trusted !== 'boolean') throw new ConfigError('config.trusted must be true or false');
    options.trusted = raw.trusted;
  }
  if (raw.socksAuthFailure !== undefined) options.socksAuthFailure = raw.socksAuthFailure as 'connect';
  return options;
}

export type LocationLookup =
  { ok: true; location: LocationConfig } | { ok: false; reason: 'unknown' | 'disconnected' };

/** The Cloud Connector for a location id ('' = the default location). */
export function resolveLocation(locations: Record<string, LocationConfig>, id: string): LocationLookup {
  const location = Object.hasOwn(locations, id) ? locations[id] : undefined;
  if (!location) return { ok: false, reason: 'unknown' };
  if (location.connected === false) return { ok: false, reason: 'disconnected' };
  return { ok: true, location };
}

export type SystemLookup =
  | { ok: true; system: SystemMapping }
  | { ok: false; reason: 'no-mapping' | 'wrong-protocol' | 'path-denied' };

/** The access-control entry for a virtual host:port (and URL path, for http), or why there is none. */
export function resolveSystem(
  location: LocationConfig,
  host: string,
  virtualPort: number,
  protocol: SystemProtocol,
  path = '/',
): SystemLookup {
  const h = host.toLowerCase();
  const system = location.systems.find((s) => s.virtualHost === h && s.virtualPort === virtualPort);
  if (!system) return { ok: false, reason: 'no-mapping' };
  if ((system.protocol ?? 'http') !== protocol) return { ok: false, reason: 'wrong-protocol' };
  if (protocol === 'http' && !pathAllowed(system.paths ?? ['/'], path))
    return { ok: false, reason: 'path-denied' };
  return { ok: true, system };
}

/** Whether `path` (query ignored) is one of `allowed` or below one of them. */
export function pathAllowed(allowed: readonly string[], path: string): boolean {
  const p = path.split('?')[0] ?? '';
  return allowed.some((a) => {
    if (a === '/' || p === a) return true;
    const base = a.endsWith('/') ? a : `${a}/`;
    return p.startsWith(base);
  });
}

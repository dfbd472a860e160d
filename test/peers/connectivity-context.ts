// What the connectivity proxy stand-in's ports share: the token check against the token service's
// keys, the Cloud Connector locations (whose `connected` flag tests may flip), and the counters.
import type { ConnectivityProxyOptions, LocationConfig } from './connectivity-config.js';
import { clientIdOf, type JwtClaims, JwtError, KeySet } from './jwt.js';

export interface ConnectivityProxyStats {
  /** HTTP requests received on the proxy port */
  requests: number;
  /** of those, forwarded to a backend */
  forwarded: number;
  byStatus: Record<string, number>;
  /** forwarded HTTP requests and successful SOCKS5 CONNECTs per location id ('' = default) */
  byLocation: Record<string, number>;
  /** forwarded HTTP requests per propagated principal ('' = none) */
  byPrincipal: Record<string, number>;
  /** client connections that carried requests of more than one identity */
  violations: number;
  /** SOCKS5 connections accepted */
  socksSessions: number;
  /** SOCKS5 CONNECT replies by SAP name (SUCCESS, FORBIDDEN, ...) */
  socksReplies: Record<string, number>;
}

export interface ProxyContext {
  options: ConnectivityProxyOptions;
  /** the locations, copied from the options (setConnected changes this copy) */
  locations: Record<string, LocationConfig>;
  stats: ConnectivityProxyStats;
  /** verifies any JWT against the token service's keys; throws JwtError */
  verify(token: string): Promise<JwtClaims>;
  /** the proxy token's claims, or why it is not accepted */
  authenticate(token: string | undefined): Promise<JwtClaims | string>;
}

/** Backend connections that take longer than this count as unreachable. */
export const BACKEND_CONNECT_TIMEOUT_MS = 5000;

export function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

export function createContext(options: ConnectivityProxyOptions): ProxyContext {
  const keys = new KeySet(options.jwksUrl ? { url: options.jwksUrl } : { keys: options.keys ?? [] });
  const accepted = new Set(options.clientIds);
  return {
    options,
    locations: structuredClone(options.locations),
    stats: {
      requests: 0,
      forwarded: 0,
      byStatus: {},
      byLocation: {},
      byPrincipal: {},
      violations: 0,
      socksSessions: 0,
      socksReplies: {},
    },
    verify: (token) => keys.verify(token),
    async authenticate(token) {
      if (!token) return options.trusted ? {} : 'no Bearer token';
      try {
        const claims = await keys.verify(token);
        const clientId = clientIdOf(claims);
        if (!clientId || !accepted.has(clientId))
          return `token was issued to client ${JSON.stringify(clientId ?? null)}, which is not a connectivity service client`;
        return claims;
      } catch (error) {
        if (error instanceof JwtError) return error.message;
        return `token service keys unavailable: ${(error as Error).message}`;
      }
    },
  };
}

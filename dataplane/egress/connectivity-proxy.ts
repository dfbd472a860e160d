// The ConnectivityProxy object: where the connectivity proxy is and the token for its
// Proxy-Authorization. Tokens come from the dataplane's authenticator (its cache: single-flight,
// refreshed before expiry, a still-valid token served while the token service is down), asked for a
// synthetic OAuth2ClientCredentials destination built from the connectivity service key.
import type { Authenticator } from '../auth/types.js';
import type { Destination } from '../destinations/types.js';
import type { ConnectivityProxySettings } from './config.js';
import type { ConnectivityProxy } from './types.js';

/** Token requests to the connectivity service's token service. */
const TOKEN_CONNECT_TIMEOUT_MS = 10_000;
const TOKEN_READ_TIMEOUT_MS = 30_000;

/**
 * The name the connectivity proxy's token goes by in logs, metrics and token errors. Not a valid
 * destination name (`$`), so it can never collide with one.
 */
export const CONNECTIVITY_PROXY_TOKEN_NAME = '$connectivity-proxy';

export interface DataplaneConnectivityProxy extends ConnectivityProxy {
  readonly trusted: boolean;
  /** for /config: no secrets */
  describe(): Record<string, unknown>;
}

type ServiceKeyAuth = Extract<ConnectivityProxySettings['auth'], { kind: 'serviceKey' }>;

function tokenDestination(key: ServiceKeyAuth, tenant: string | undefined): Destination {
  return {
    name: tenant ? `${CONNECTIVITY_PROXY_TOKEN_NAME}@${tenant}` : CONNECTIVITY_PROXY_TOKEN_NAME,
    type: 'HTTP',
    proxyType: 'Internet',
    authentication: 'OAuth2ClientCredentials',
    headers: [],
    queries: [],
    tokenServiceURL: key.tokenUrl,
    clientId: key.clientId,
    clientSecret: key.clientSecret,
    trustAll: false,
    connectTimeoutMs: TOKEN_CONNECT_TIMEOUT_MS,
    readTimeoutMs: TOKEN_READ_TIMEOUT_MS,
    properties: {},
  };
}

export function createConnectivityProxy(
  settings: ConnectivityProxySettings,
  authenticator: Authenticator,
): DataplaneConnectivityProxy {
  const auth = settings.auth;
  // Dedicated mode: one tenant, the key's own. The parameter is kept for the shared (multitenant) mode,
  // where each tenant gets its own token (its own cache entry through the destination name).
  const destinations = new Map<string, Destination>();
  const destinationFor = (key: ServiceKeyAuth, tenant: string | undefined): Destination => {
    let d = destinations.get(tenant ?? '');
    if (!d) {
      d = tokenDestination(key, tenant);
      destinations.set(tenant ?? '', d);
    }
    return d;
  };
  return {
    host: settings.host,
    httpPort: settings.httpPort,
    socks5Port: settings.socks5Port,
    trusted: auth.kind === 'trusted',
    async token(tenant?: string, options?: { rejected?: string }): Promise<string | undefined> {
      if (auth.kind === 'trusted') return undefined;
      const rejected = options?.rejected;
      const result = await authenticator.authenticate(
        destinationFor(auth, tenant),
        rejected === undefined
          ? undefined
          : { forceRefresh: true, rejected: { headers: [['authorization', `Bearer ${rejected}`]] } },
      );
      const value = result.headers.find(([name]) => name.toLowerCase() === 'authorization')?.[1];
      return value?.replace(/^Bearer /, '');
    },
    describe() {
      return {
        host: settings.host,
        httpPort: settings.httpPort,
        socks5Port: settings.socks5Port,
        authentication:
          auth.kind === 'trusted'
            ? 'trusted (no proxy authorization)'
            : { serviceKey: auth.file, clientId: auth.clientId, tokenService: auth.tokenUrl },
      };
    },
  };
}

// createAuthenticator: what a request to a destination needs to be authenticated, per Authentication
// type. Headers replace the app's headers of the same name; `tls` is for the upstream connection.
import type { Logger } from 'pino';
import type { Destination } from '../destinations/types.js';
import type { EgressProxy } from '../egress/types.js';
import { basicAuthorization } from './basic.js';
import { keyStoreCredentials } from './client-certificate.js';
import { type AuthMetrics, OAuthTokens } from './oauth.js';
import { type Clock, DEFAULT_LIFETIME_POLICY, systemClock } from './token-cache.js';
import { createUndiciTokenFetch, type TokenFetch } from './token-http.js';
import { grantFor } from './token-request.js';
import {
  AuthConfigError,
  type AuthenticateOptions,
  type Authenticator,
  type AuthResult,
  type TlsClientCredentials,
} from './types.js';

export type { AuthMetrics, CacheEvent, TokenFetchEvent } from './oauth.js';
export type { Clock } from './token-cache.js';
export type { TokenFetch, TokenHttpRequest } from './token-http.js';
export type { TokenHttpResponse } from './token-response.js';

export interface AuthenticatorOptions {
  logger: Logger;
  metrics?: AuthMetrics;
  /** for tests: the cache's notion of now (ms) */
  clock?: Clock;
  /** for tests: the token transport (default: undici) */
  fetch?: TokenFetch;
  /** extra CAs (PEM) trusted for https token services, on top of Node's default CAs */
  tokenServiceCa?: (string | Buffer)[];
  /** corporate proxy for a token service URL (egressProxy / HTTPS_PROXY and NO_PROXY) */
  tokenServiceProxy?: (url: URL) => EgressProxy | undefined;
  /** refresh this long before expiry (capped at 10% of the token's lifetime); default 60 000 */
  tokenRefreshMarginMs?: number;
  /** lifetime of a token without expires_in (and not a JWT with exp); default 300 000 */
  defaultTokenLifetimeMs?: number;
  /** see TokenCacheOptions.forceRefreshGraceMs; default 1000 */
  forceRefreshGraceMs?: number;
  /** token requests when the destination has no usable timeouts; defaults 10 000 and 30 000 */
  defaultConnectTimeoutMs?: number;
  defaultReadTimeoutMs?: number;
}

export interface DataplaneAuthenticator extends Authenticator {
  /** closes the token service connections */
  close(): Promise<void>;
}

export function createAuthenticator(options: AuthenticatorOptions): DataplaneAuthenticator {
  const transport = options.fetch
    ? undefined
    : createUndiciTokenFetch({
        ...(options.tokenServiceCa ? { ca: options.tokenServiceCa } : {}),
        ...(options.tokenServiceProxy ? { proxyFor: options.tokenServiceProxy } : {}),
      });
  const oauth = new OAuthTokens({
    logger: options.logger,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    clock: options.clock ?? systemClock,
    fetch: options.fetch ?? transport!.fetch,
    lifetime: {
      marginMs: options.tokenRefreshMarginMs ?? DEFAULT_LIFETIME_POLICY.marginMs,
      defaultLifetimeMs: options.defaultTokenLifetimeMs ?? DEFAULT_LIFETIME_POLICY.defaultLifetimeMs,
    },
    ...(options.forceRefreshGraceMs !== undefined
      ? { forceRefreshGraceMs: options.forceRefreshGraceMs }
      : {}),
    defaultConnectTimeoutMs: options.defaultConnectTimeoutMs ?? 10_000,
    defaultReadTimeoutMs: options.defaultReadTimeoutMs ?? 30_000,
  });
  // Parsed key stores, per key store object (a reloaded destination brings a new object).
  const keyStores = new WeakMap<object, TlsClientCredentials>();

  return {
    async authenticate(destination: Destination, authOptions?: AuthenticateOptions): Promise<AuthResult> {
      switch (destination.authentication) {
        case 'NoAuthentication':
          return { headers: [] };
        case 'BasicAuthentication': {
          if (!destination.user || destination.user.includes(':')) {
            throw new AuthConfigError(
              `destination "${destination.name}" (BasicAuthentication): property User is ${destination.user ? "not usable (it contains ':', which HTTP Basic cannot carry)" : 'missing'}`,
            );
          }
          return {
            headers: [['authorization', basicAuthorization(destination.user, destination.password ?? '')]],
          };
        }
        case 'OAuth2ClientCredentials':
        case 'OAuth2Password': {
          const token = await oauth.token(destination, grantFor(destination)!, authOptions);
          return { headers: [['authorization', `Bearer ${token}`]] };
        }
        case 'PrincipalPropagation':
          // the user's JWT comes with each request (see ../onprem/request.ts)
          return { headers: [] };
        case 'OAuth2TechnicalUserPropagation': {
          const token = await oauth.token(destination, 'client_credentials', authOptions);
          return { headers: [['sap-connectivity-technical-authentication', `Bearer ${token}`]] };
        }
        case 'ClientCertificateAuthentication': {
          const store = destination.keyStore;
          let tls = store ? keyStores.get(store) : undefined;
          if (!tls) {
            tls = keyStoreCredentials(destination);
            if (store) keyStores.set(store, tls);
          }
          return { headers: [], tls };
        }
        default:
          throw new AuthConfigError(
            `destination "${(destination as Destination).name}": Authentication ${String((destination as Destination).authentication)} is not supported by the dataplane`,
          );
      }
    },
    close: async () => {
      await transport?.close();
    },
  };
}

// What authenticating a request to a destination yields: headers to add, and/or TLS client
// credentials for the upstream connection.
import type { Destination } from '../destinations/types.js';

export interface TlsClientCredentials {
  pfx?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  passphrase?: string;
}

export interface AuthResult {
  /** e.g. [['authorization', 'Bearer ...']]; replaces any header of the same name from the app */
  headers: [string, string][];
  tls?: TlsClientCredentials;
}

export interface AuthenticateOptions {
  /** the upstream rejected the cached token with 401: fetch a new one (once) */
  forceRefresh?: boolean;
  /**
   * With forceRefresh: the AuthResult whose token the upstream rejected. When the cache already holds
   * a different (newer) token, that one is returned without a fetch, so many requests rejected with
   * the same stale token cause one refetch, not one each.
   */
  rejected?: AuthResult;
}

export interface Authenticator {
  authenticate(destination: Destination, options?: AuthenticateOptions): Promise<AuthResult>;
}

/**
 * The token service failed or answered without a usable token. The HTTP layer turns it into a 502
 * with `x-error-origin: Token Service` (SAP transparent proxy semantics). The message never contains
 * a secret (no client secret, password or token).
 */
export class TokenServiceError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'TokenServiceError';
  }
}

/**
 * The destination's authentication settings cannot be used (a required property is missing, the key
 * store cannot be read or its password is wrong). The HTTP layer answers 502 like for an invalid
 * destination. The message names the destination and the property, never a secret.
 */
export class AuthConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthConfigError';
  }
}

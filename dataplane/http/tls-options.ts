// TLS settings for connections to a destination's target: whom to trust (TrustStore, TrustAll, or the
// default CAs) and which client certificate to present (from the authenticator's AuthResult.tls).
import { createHash } from 'node:crypto';
import tls from 'node:tls';
import type { TlsClientCredentials } from '../auth/types.js';
import type { Destination } from '../destinations/types.js';
import { trustStoreCertificates } from './trust-store.js';

export interface UpstreamTls {
  /** Built once per connection key: parsing CA lists per connection would cost milliseconds each. */
  secureContext: tls.SecureContext;
  rejectUnauthorized: boolean;
}

let defaults: string[] | undefined;

/**
 * Node's bundled Mozilla CAs plus NODE_EXTRA_CA_CERTS plus the operating system's store, so a
 * corporate CA installed on the host or in the image is trusted as the "system CAs" implies.
 */
export function defaultCertificates(): string[] {
  if (!defaults) {
    const get = (type: 'default' | 'system'): string[] => {
      try {
        return tls.getCACertificates(type);
      } catch {
        return [];
      }
    };
    defaults = [...new Set([...get('default'), ...get('system')])];
  }
  return defaults;
}

/**
 * TrustAll: no verification at all (SAP's meaning; for tests and broken targets only). A TrustStore
 * replaces the default CAs (only its certificates are trusted, as with SAP). Otherwise the defaults.
 * The client certificate comes from the authenticator (ClientCertificateAuthentication).
 * Throws (TrustStoreError, or Node's error for an unusable key store) when the material is unusable.
 */
export function upstreamTls(destination: Destination, credentials?: TlsClientCredentials): UpstreamTls {
  const options: tls.SecureContextOptions = {};
  if (!destination.trustAll)
    options.ca = destination.trustStore
      ? trustStoreCertificates(destination.trustStore)
      : defaultCertificates();
  if (credentials?.pfx) options.pfx = credentials.pfx;
  if (credentials?.cert) options.cert = credentials.cert;
  if (credentials?.key) options.key = credentials.key;
  if (credentials?.passphrase !== undefined) options.passphrase = credentials.passphrase;
  return { secureContext: tls.createSecureContext(options), rejectUnauthorized: !destination.trustAll };
}

/**
 * A digest of everything that decides how a connection to the destination's target is made: a change
 * (new URL origin, timeouts, trust settings, client certificate) means new connections. Never logged
 * raw; only this hash is kept.
 */
export function connectionKey(
  destination: Destination,
  credentials?: TlsClientCredentials,
  via?: string,
): string {
  const h = createHash('sha256');
  const part = (label: string, value: string | Buffer | undefined): void => {
    h.update(label).update('\0');
    if (value !== undefined) h.update(value);
    h.update('\0');
  };
  part('origin', destination.url?.origin);
  part('connect', String(destination.connectTimeoutMs));
  part('trustAll', String(destination.trustAll));
  part('trustStore', destination.trustStore?.content);
  part('trustStorePassword', destination.trustStore?.password);
  part('pfx', credentials?.pfx);
  part('cert', credentials?.cert);
  part('key', credentials?.key);
  part('passphrase', credentials?.passphrase);
  if (via !== undefined) part('via', via);
  return h.digest('hex');
}

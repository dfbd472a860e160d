// ClientCertificateAuthentication: the destination's key store as TLS client credentials.
// PKCS#12 (.p12/.pfx) is handed to TLS as-is; a PEM key store is split into its certificate chain and
// private key. Both are checked once with tls.createSecureContext, so a wrong password or a key that
// does not match the certificate is reported here, naming the destination, instead of as an obscure
// handshake failure later.
import path from 'node:path';
import tls from 'node:tls';
import type { Destination, KeyStore } from '../destinations/types.js';
import { errorText } from './error-text.js';
import { isPrivateKeyLabel, splitPem } from './pem.js';
import { AuthConfigError, type TlsClientCredentials } from './types.js';

type KeyStoreFormat = 'pkcs12' | 'pem';

export function keyStoreFormat(keyStore: KeyStore): KeyStoreFormat | 'jks' {
  const ext = path.extname(keyStore.location).toLowerCase();
  if (ext === '.p12' || ext === '.pfx') return 'pkcs12';
  if (ext === '.pem' || ext === '.crt' || ext === '.key') return 'pem';
  if (ext === '.jks') return 'jks';
  // Unknown extension: PEM is text starting with a BEGIN line, anything else is taken as PKCS#12.
  return keyStore.content.subarray(0, 64).toString('latin1').includes('-----BEGIN ') ? 'pem' : 'pkcs12';
}

/** The key store as TLS client credentials; throws AuthConfigError (never containing the password). */
export function keyStoreCredentials(destination: Destination): TlsClientCredentials {
  const where = `destination "${destination.name}"`;
  const keyStore = destination.keyStore;
  if (!keyStore) {
    throw new AuthConfigError(
      `${where}: ClientCertificateAuthentication needs a key store (properties KeyStoreLocation and KeyStorePassword)`,
    );
  }
  const format = keyStoreFormat(keyStore);
  const store = `key store ${keyStore.location}`;
  let credentials: TlsClientCredentials;
  if (format === 'jks') {
    throw new AuthConfigError(
      `${where}: ${store} is a Java key store, which is not supported; convert it to PKCS#12 (keytool -importkeystore -deststoretype PKCS12) or PEM`,
    );
  } else if (format === 'pkcs12') {
    credentials = { pfx: keyStore.content };
  } else {
    const blocks = splitPem(keyStore.content.toString('utf8'));
    const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
    const key = blocks.find((b) => isPrivateKeyLabel(b.label));
    if (certs.length === 0 || !key) {
      const missing = certs.length === 0 ? 'CERTIFICATE' : 'PRIVATE KEY';
      throw new AuthConfigError(
        `${where}: ${store} has no ${missing} block; a PEM key store needs the certificate and its private key`,
      );
    }
    credentials = {
      cert: Buffer.from(certs.map((b) => b.text).join('')),
      key: Buffer.from(key.text),
    };
  }
  if (keyStore.password !== undefined && keyStore.password !== '') credentials.passphrase = keyStore.password;
  try {
    tls.createSecureContext(credentials);
  } catch (error) {
    throw new AuthConfigError(`${where}: ${store} cannot be used: ${describeTlsError(error, credentials)}`);
  }
  return credentials;
}

function describeTlsError(error: unknown, credentials: TlsClientCredentials): string {
  const message = errorText(error);
  const hint =
    /mac verify failure|bad decrypt|bad password/i.test(message) ||
    (credentials.passphrase === undefined && /PEM_read_bio|PKCS12|decrypt/i.test(message))
      ? ' (wrong or missing KeyStorePassword?)'
      : '';
  // OpenSSL messages never contain the passphrase; strip anything after a newline all the same.
  return `${message.split('\n')[0]}${hint}`;
}

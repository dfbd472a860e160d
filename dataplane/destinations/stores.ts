// Key stores (client certificate + key) and trust stores (CA certificates) of a destination: where the
// content comes from, which formats work, and a load-time check that the content really opens, so a wrong
// KeyStorePassword is reported when the file is loaded rather than on the first request.
import { X509Certificate } from 'node:crypto';
import { extname, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { quote } from './errors.js';
import type { Certificate } from './shapes.js';
import type { KeyStore, TrustStore } from './types.js';

export type StoreFormat = 'pkcs12' | 'pem';

export interface StoreContext {
  /** folder that relative locations are resolved against (the destinations file's folder) */
  baseDir?: string;
  /** reads a key / trust store file; without it, stores must come in `certificates` */
  readFile?: (path: string) => Buffer;
}

/** [property, message] */
type Problem = [string, string];

/**
 * The key store format by the location's extension: .p12/.pfx are PKCS#12 (use as `pfx` + `passphrase`),
 * .pem holds the certificate and private key (use as `cert` and `key`, `passphrase` for an encrypted key).
 */
export function keyStoreFormat(location: string): StoreFormat | undefined {
  const ext = extname(location).toLowerCase();
  if (ext === '.p12' || ext === '.pfx') return 'pkcs12';
  if (ext === '.pem') return 'pem';
  return undefined;
}

const TRUST_STORE_EXTENSIONS = ['.pem', '.crt', '.cer', '.der'];

function findContent(
  location: string,
  property: string,
  certificates: Certificate[],
  ctx: StoreContext,
): Buffer | Problem {
  const certificate = certificates.find((c) => c.name === location);
  if (certificate) return certificate.content;
  const notFound = `${quote(location)} not found: no certificate of that name came with the destination`;
  if (!ctx.readFile) return [property, notFound];
  const path = resolve(ctx.baseDir ?? '.', location);
  try {
    return ctx.readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    return [property, `${notFound}, and the file ${path} cannot be read (${code})`];
  }
}

export function loadKeyStore(
  location: string,
  password: string | undefined,
  certificates: Certificate[],
  ctx: StoreContext,
): KeyStore | Problem {
  const P = 'KeyStoreLocation';
  const ext = extname(location).toLowerCase();
  if (ext === '.jks')
    return [
      P,
      `Java key stores (.jks) are not supported; convert it to PKCS#12 and point KeyStoreLocation at the .p12: ` +
        `keytool -importkeystore -srckeystore ${location} -destkeystore client.p12 -deststoretype PKCS12`,
    ];
  const format = keyStoreFormat(location);
  if (!format) return [P, `unknown key store format ${quote(ext || location)}; expected .p12, .pfx or .pem`];
  const content = findContent(location, P, certificates, ctx);
  if (!Buffer.isBuffer(content)) return content;
  const problem =
    format === 'pkcs12' ? checkPkcs12(location, content, password) : checkPem(location, content, password);
  if (problem) return problem;
  return { location, content, ...(password !== undefined ? { password } : {}) };
}

function checkPkcs12(location: string, content: Buffer, password: string | undefined): Problem | undefined {
  try {
    createSecureContext({ pfx: content, ...(password !== undefined ? { passphrase: password } : {}) });
    return undefined;
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    if (code === 'ERR_CRYPTO_UNSUPPORTED_OPERATION')
      return [
        'KeyStoreLocation',
        `${quote(location)} uses legacy encryption (e.g. RC2) that OpenSSL 3 does not load; re-export it: ` +
          `openssl pkcs12 -legacy -in old.p12 -nodes -out tmp.pem && openssl pkcs12 -export -in tmp.pem -out ${location}`,
      ];
    if (/mac verify/i.test(message))
      return password === undefined
        ? ['KeyStorePassword', `required: ${quote(location)} is password-protected`]
        : ['KeyStorePassword', `does not open ${quote(location)} (wrong password)`];
    return ['KeyStoreLocation', `${quote(location)} is not a readable PKCS#12 file`];
  }
}

function checkPem(location: string, content: Buffer, password: string | undefined): Problem | undefined {
  const text = content.toString('latin1');
  if (!text.includes('-----BEGIN CERTIFICATE-----') || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text))
    return ['KeyStoreLocation', `${quote(location)} must contain a certificate and its private key (PEM)`];
  try {
    createSecureContext({
      cert: content,
      key: content,
      ...(password !== undefined ? { passphrase: password } : {}),
    });
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (code === 'ERR_OSSL_BAD_DECRYPT')
      return password === undefined
        ? ['KeyStorePassword', `required: the private key in ${quote(location)} is encrypted`]
        : ['KeyStorePassword', `does not decrypt the private key in ${quote(location)} (wrong password)`];
    if (code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH')
      return [
        'KeyStoreLocation',
        `the certificate and the private key in ${quote(location)} do not belong together`,
      ];
    return [
      'KeyStoreLocation',
      `${quote(location)} cannot be used as a client certificate (${code || 'invalid'})`,
    ];
  }
}

/**
 * Trust stores are CA certificates in PEM (.pem/.crt/.cer) or DER (.der/.cer); the content is always
 * returned as PEM, ready for `tls.connect({ ca })`.
 */
export function loadTrustStore(
  location: string,
  password: string | undefined,
  certificates: Certificate[],
  ctx: StoreContext,
): TrustStore | Problem {
  const P = 'TrustStoreLocation';
  const ext = extname(location).toLowerCase();
  if (ext === '.jks')
    return [
      P,
      `Java trust stores (.jks) are not supported; export the CA certificates to PEM: ` +
        `keytool -exportcert -rfc -keystore ${location} -alias <alias> -file truststore.pem`,
    ];
  if (ext === '.p12' || ext === '.pfx')
    return [
      P,
      `PKCS#12 trust stores are not supported; export the CA certificates to PEM: ` +
        `openssl pkcs12 -in ${location} -nokeys -out truststore.pem`,
    ];
  if (!TRUST_STORE_EXTENSIONS.includes(ext))
    return [P, `unknown trust store format ${quote(ext || location)}; expected .pem, .crt, .cer or .der`];
  const found = findContent(location, P, certificates, ctx);
  if (!Buffer.isBuffer(found)) return found;
  let content: Buffer;
  try {
    if (found.toString('latin1').includes('-----BEGIN CERTIFICATE-----')) {
      new X509Certificate(found);
      content = found;
    } else {
      content = Buffer.from(new X509Certificate(found).toString());
    }
  } catch {
    return [P, `${quote(location)} holds no readable X.509 certificate (PEM or DER)`];
  }
  return { location, content, ...(password !== undefined ? { password } : {}) };
}

// ClientCertificateAuthentication: PKCS#12 and PEM key stores (openssl-made) become TLS client
// credentials that a real TLS server requiring a client certificate accepts; broken key stores give
// AuthConfigError naming the destination, never the password.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { createAuthenticator } from '../../dataplane/auth/authenticator.js';
import { keyStoreFormat } from '../../dataplane/auth/client-certificate.js';
import { AuthConfigError, type TlsClientCredentials } from '../../dataplane/auth/types.js';
import type { Destination, KeyStore } from '../../dataplane/destinations/types.js';
import { destination, makeCerts, memoryLogger, type TestCerts } from './auth-helpers.js';

let certs: TestCerts;
let server: tls.Server;
let port: number;
const { logger, lines } = memoryLogger();
const auth = createAuthenticator({ logger });
const messages: string[] = [];

beforeAll(async () => {
  certs = makeCerts();
  // answers with the CN of the client certificate it verified against the test CA
  server = tls.createServer(
    {
      cert: certs.serverCert,
      key: certs.serverKey,
      ca: certs.caPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => socket.end(`hello ${String(socket.getPeerCertificate().subject?.CN)}`),
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await auth.close();
  certs.remove();
});

function withKeyStore(location: string, content: Buffer | string, password?: string): Destination {
  const keyStore: KeyStore = { location, content: Buffer.from(content) };
  if (password !== undefined) keyStore.password = password;
  return destination({ authentication: 'ClientCertificateAuthentication', keyStore });
}

/** Connects to the test server with the credentials; resolves with what it said or the error code. */
function handshake(credentials: TlsClientCredentials | undefined): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ca: certs.caPem,
      servername: undefined,
      ...credentials,
    });
    let data = '';
    socket.on('data', (c: Buffer) => (data += c.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
  });
}

async function configError(d: Destination): Promise<string> {
  try {
    await auth.authenticate(d);
  } catch (error) {
    expect(error).toBeInstanceOf(AuthConfigError);
    messages.push((error as Error).message);
    return (error as Error).message;
  }
  throw new Error('expected AuthConfigError');
}

describe('key stores that work', () => {
  test('PKCS#12 (.p12) with its password → pfx + passphrase, accepted by an mTLS server', async () => {
    const result = await auth.authenticate(withKeyStore('client.p12', certs.clientP12, certs.p12Password));
    expect(result.headers).toEqual([]);
    expect(result.tls?.pfx?.equals(certs.clientP12)).toBe(true);
    expect(result.tls?.passphrase).toBe(certs.p12Password);
    expect(await handshake(result.tls)).toBe('hello detour-client');
  });

  test('.pfx is PKCS#12 too', async () => {
    const result = await auth.authenticate(withKeyStore('Client.PFX', certs.clientP12, certs.p12Password));
    expect(result.tls?.pfx).toBeDefined();
  });

  test('PEM with certificate chain and unencrypted key → cert + key', async () => {
    const pem = `${certs.clientKey}${certs.clientCert}${certs.caPem}`;
    const result = await auth.authenticate(withKeyStore('client.pem', pem));
    expect(result.tls?.key?.toString()).toContain('PRIVATE KEY');
    expect(result.tls?.cert?.toString().match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(result.tls?.passphrase).toBeUndefined();
    expect(await handshake(result.tls)).toBe('hello detour-client');
  });

  test('PEM with an encrypted key and KeyStorePassword', async () => {
    const pem = `${certs.clientCert}${certs.clientKeyEncrypted}`;
    const result = await auth.authenticate(withKeyStore('client.pem', pem, certs.pemKeyPassword));
    expect(result.tls?.passphrase).toBe(certs.pemKeyPassword);
    expect(await handshake(result.tls)).toBe('hello detour-client');
  });

  test('without credentials the server refuses (the handshake check can fail)', async () => {
    expect(await handshake(undefined)).not.toContain('hello');
  });

  test('the parsed key store is reused for the same destination object', async () => {
    const d = withKeyStore('client.p12', certs.clientP12, certs.p12Password);
    const a = await auth.authenticate(d);
    const b = await auth.authenticate(d);
    expect(b.tls).toBe(a.tls);
  });
});

describe('key stores that do not', () => {
  test('no key store', async () => {
    expect(await configError(destination({ authentication: 'ClientCertificateAuthentication' }))).toBe(
      'destination "orders": ClientCertificateAuthentication needs a key store (properties KeyStoreLocation and KeyStorePassword)',
    );
  });

  test('wrong PKCS#12 password', async () => {
    const message = await configError(withKeyStore('client.p12', certs.clientP12, 'wrong-Ks-Pw-1'));
    expect(message).toMatch(
      /^destination "orders": key store client\.p12 cannot be used: .+\(wrong or missing KeyStorePassword\?\)$/,
    );
  });

  test('encrypted PEM key without a password', async () => {
    const message = await configError(
      withKeyStore('client.pem', `${certs.clientCert}${certs.clientKeyEncrypted}`),
    );
    expect(message).toMatch(/^destination "orders": key store client\.pem cannot be used: /);
  });

  test('PEM key that does not match the certificate', async () => {
    const message = await configError(withKeyStore('client.pem', `${certs.clientCert}${certs.otherKey}`));
    expect(message).toMatch(/cannot be used: .*key values mismatch/);
  });

  test('PEM without a key, or without a certificate', async () => {
    expect(await configError(withKeyStore('client.pem', certs.clientCert))).toBe(
      'destination "orders": key store client.pem has no PRIVATE KEY block; a PEM key store needs the certificate and its private key',
    );
    expect(await configError(withKeyStore('client.pem', certs.clientKey))).toContain(
      'has no CERTIFICATE block',
    );
  });

  test('a Java key store is refused with a conversion hint', async () => {
    expect(await configError(withKeyStore('client.jks', Buffer.from([0xfe, 0xed, 0xfe, 0xed])))).toContain(
      'is a Java key store, which is not supported; convert it to PKCS#12',
    );
  });

  test('garbage in a .p12', async () => {
    expect(await configError(withKeyStore('client.p12', 'not a key store', 'x'))).toMatch(/cannot be used: /);
  });

  test('no message or log line contains a key store password', () => {
    const text = [...messages, ...lines].join('\n');
    expect(messages.length).toBeGreaterThanOrEqual(7);
    for (const secret of [certs.p12Password, certs.pemKeyPassword, 'wrong-Ks-Pw-1'])
      expect(text).not.toContain(secret);
  });
});

test('keyStoreFormat: by extension, else by content', () => {
  const ks = (location: string, content: string): KeyStore => ({ location, content: Buffer.from(content) });
  expect(keyStoreFormat(ks('a.P12', ''))).toBe('pkcs12');
  expect(keyStoreFormat(ks('a.pem', ''))).toBe('pem');
  expect(keyStoreFormat(ks('a.jks', ''))).toBe('jks');
  expect(keyStoreFormat(ks('a.bin', '-----BEGIN CERTIFICATE-----\n'))).toBe('pem');
  expect(keyStoreFormat(ks('a.bin', '\u0030\u0082'))).toBe('pkcs12');
});

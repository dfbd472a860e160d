import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import type { TlsClientCredentials } from '../../dataplane/auth/types.js';
import type { Destination } from '../../dataplane/destinations/types.js';
import { trustStoreCertificates } from '../../dataplane/http/index.js';
import { startEchoUpstream, type EchoUpstream } from '../peers/echo-upstream.js';
import { destination, fakeAuth, request, startProxy, type Proxy } from './http-harness.js';

// Certificates made with openssl in a temp dir: a server CA and server cert (127.0.0.1, localhost),
// a client CA and a client cert (PEM and p12), and trust stores in every supported format.
let dir = '';
const file = (name: string): Buffer => readFileSync(join(dir, name));
const KS_PASS = 'ks-pass-9';
const TS_PASS = 'ts-pass-7';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

function issue(name: string, ca: string, cn: string, ext?: string): void {
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    ...(ext ? ['-extfile', ext] : []),
  );
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'detour-http-tls-'));
  for (const ca of ['ca', 'client-ca'])
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${ca}.key`,
      '-out',
      `${ca}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=detour test ${ca}`,
    );
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:localhost\\n" > server.ext'], {
    cwd: dir,
  });
  issue('server', 'ca', 'localhost', 'server.ext');
  issue('client', 'client-ca', 'orders-client');
  openssl(
    'pkcs12',
    '-export',
    '-inkey',
    'client.key',
    '-in',
    'client.pem',
    '-out',
    'client.p12',
    '-passout',
    `pass:${KS_PASS}`,
  );
  openssl(
    'pkcs12',
    '-export',
    '-nokeys',
    '-in',
    'ca.pem',
    '-out',
    'trust-aes.p12',
    '-passout',
    `pass:${TS_PASS}`,
  );
  openssl(
    'pkcs12',
    '-export',
    '-nokeys',
    '-in',
    'ca.pem',
    '-out',
    'trust-3des.p12',
    '-certpbe',
    'PBE-SHA1-3DES',
    '-passout',
    `pass:${TS_PASS}`,
  );
  openssl(
    'pkcs12',
    '-export',
    '-nokeys',
    '-in',
    'ca.pem',
    '-out',
    'trust-plain.p12',
    '-certpbe',
    'NONE',
    '-passout',
    `pass:${TS_PASS}`,
  );
  openssl('x509', '-in', 'ca.pem', '-outform', 'DER', '-out', 'ca.der');
  try {
    openssl(
      'pkcs12',
      '-export',
      '-legacy',
      '-nokeys',
      '-in',
      'ca.pem',
      '-out',
      'trust-rc2.p12',
      '-passout',
      `pass:${TS_PASS}`,
    );
    legacyP12 = true;
  } catch {
    legacyP12 = false; // this openssl has no legacy provider: nothing to test against
  }
}, 30_000);
let legacyP12 = false;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function httpsUpstream(requestCert = false): Promise<EchoUpstream> {
  const u = await startEchoUpstream({
    tls: {
      key: file('server.key'),
      cert: file('server.pem'),
      ...(requestCert ? { ca: file('client-ca.pem'), requestCert: true } : {}),
    },
  });
  cleanups.push(() => u.close());
  return u;
}

async function proxyFor(d: Destination, tls?: TlsClientCredentials): Promise<Proxy> {
  const auth = fakeAuth(async () => ({ headers: [], ...(tls ? { tls } : {}) }));
  const p = await startProxy(d, { authenticator: auth.authenticator });
  cleanups.push(() => p.close());
  return p;
}

const trustStore = (name: string, password?: string) => ({
  location: name,
  content: file(name),
  ...(password ? { password } : {}),
});

describe('TLS to the target', () => {
  test('TrustStore (PEM) trusts the target; SNI is the host name; Host rewritten', async () => {
    const up = await httpsUpstream();
    const p = await proxyFor(
      destination({ url: new URL(`https://localhost:${up.port}/api`), trustStore: trustStore('ca.pem') }),
    );
    const res = await request(p.port, '/x');
    expect(res.status).toBe(200);
    expect(up.requests[0]).toMatchObject({ path: '/api/x', sni: 'localhost' });
    expect(up.lastHeader('host')).toEqual([`localhost:${up.port}`]);
  });

  test.each([
    ['trust-aes.p12', TS_PASS],
    ['trust-3des.p12', TS_PASS],
    ['trust-plain.p12', TS_PASS],
    ['ca.der', undefined],
  ])('TrustStore %s works', async (name, password) => {
    const up = await httpsUpstream();
    const p = await proxyFor(
      destination({ url: new URL(up.origin), trustStore: trustStore(name, password) }),
    );
    expect((await request(p.port, '/')).status).toBe(200);
  });

  test('without TrustStore the default CAs apply: a private CA is refused with 503 (tls)', async () => {
    const up = await httpsUpstream();
    const p = await proxyFor(destination({ url: new URL(up.origin) }));
    const res = await request(p.port, '/');
    expect(res.status).toBe(503);
    expect(res.headers['x-error-origin']).toBe('Upstream');
    expect(res.headers['x-error-message']).toMatch(/TLS with destination 'orders'/);
    expect(p.lines.find((l) => l.msg === 'http request')).toMatchObject({ errorKind: 'tls' });
  });

  test('TrustAll accepts any certificate', async () => {
    const up = await httpsUpstream();
    const p = await proxyFor(destination({ url: new URL(up.origin), trustAll: true }));
    expect((await request(p.port, '/')).status).toBe(200);
  });

  test('a trust store with the wrong password: 502, Destination Service, no password in the message', async () => {
    const up = await httpsUpstream();
    const p = await proxyFor(
      destination({ url: new URL(up.origin), trustStore: trustStore('trust-aes.p12', 'wrong-pass-1') }),
    );
    const res = await request(p.port, '/');
    expect([res.status, res.headers['x-error-origin']]).toEqual([502, 'Destination Service']);
    expect(res.headers['x-error-message']).toContain('TrustStorePassword');
    expect(JSON.stringify(res.headers) + res.body + p.logText()).not.toContain('wrong-pass-1');
  });

  test('mTLS: the client certificate from AuthResult.tls (PEM) is presented', async () => {
    const up = await httpsUpstream(true);
    const d = destination({
      url: new URL(up.origin),
      authentication: 'ClientCertificateAuthentication',
      trustStore: trustStore('ca.pem'),
    });
    const p = await proxyFor(d, { cert: file('client.pem'), key: file('client.key') });
    expect((await request(p.port, '/')).status).toBe(200);
    expect(up.requests[0]?.clientCertCN).toBe('orders-client');
  });

  test('mTLS with a p12 key store and passphrase; without a certificate the target refuses (503)', async () => {
    const up = await httpsUpstream(true);
    const d = destination({ url: new URL(up.origin), trustStore: trustStore('ca.pem') });
    const withCert = await proxyFor(d, { pfx: file('client.p12'), passphrase: KS_PASS });
    expect((await request(withCert.port, '/')).status).toBe(200);
    expect(up.requests[0]?.clientCertCN).toBe('orders-client');
    const without = await proxyFor(d);
    const res = await request(without.port, '/');
    expect(res.status).toBe(503);
    expect(JSON.stringify(res.headers) + res.body + withCert.logText()).not.toContain(KS_PASS);
  });

  test('WebSocket to an https target (wss upstream) with the trust store', async () => {
    const up = await httpsUpstream();
    const p = await proxyFor(destination({ url: new URL(up.origin), trustStore: trustStore('ca.pem') }));
    const ws = new WebSocket(`ws://127.0.0.1:${p.port}/ws`);
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send('over tls');
      ws.onmessage = (e) => {
        resolve(String(e.data));
        ws.close();
      };
      ws.onerror = () => reject(new Error('websocket error'));
    });
    expect(echoed).toBe('over tls');
  });
});

describe('trustStoreCertificates', () => {
  const caPem = () => new X509Certificate(file('ca.pem')).fingerprint256;

  test.each(['ca.pem', 'ca.der', 'trust-aes.p12', 'trust-3des.p12', 'trust-plain.p12'])('%s', (name) => {
    const pems = trustStoreCertificates(trustStore(name, TS_PASS));
    expect(pems.map((p) => new X509Certificate(p).fingerprint256)).toEqual([caPem()]);
  });

  test('an RC2-encrypted (legacy) p12 is refused with how to re-export it', () => {
    if (!legacyP12) return;
    expect(() => trustStoreCertificates(trustStore('trust-rc2.p12', TS_PASS))).toThrow(
      /trust-rc2\.p12: .*legacy RC2.*-certpbe AES-256-CBC/,
    );
  });

  test('JKS and garbage are refused with a message naming the location', () => {
    expect(() =>
      trustStoreCertificates({ location: 'trust.jks', content: Buffer.from([0xfe, 0xed, 0xfe, 0xed]) }),
    ).toThrow(/trust\.jks: JKS is not supported/);
    expect(() => trustStoreCertificates({ location: 'x.p12', content: Buffer.from('garbage') })).toThrow(
      /x\.p12/,
    );
  });
});

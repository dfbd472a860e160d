// Shared by the auth-*.test.ts files: destinations, an in-memory logger, test certificates (openssl),
// and tiny loopback HTTP servers.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import type { Destination } from '../../dataplane/destinations/types.js';

export function destination(overrides: Partial<Destination> = {}): Destination {
  return {
    name: 'orders',
    type: 'HTTP',
    proxyType: 'Internet',
    authentication: 'NoAuthentication',
    url: new URL('https://orders.example.test/api'),
    headers: [],
    queries: [],
    trustAll: false,
    connectTimeoutMs: 2000,
    readTimeoutMs: 2000,
    properties: {},
    ...overrides,
  };
}

export function memoryLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(s) });
  return { logger, lines };
}

/** A fake clock the cache reads; starts at the real time. */
export function fakeClock(start = Date.now()) {
  let now = start;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

export interface TestCerts {
  dir: string;
  caPem: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** PKCS#12 with client key, cert and CA, protected by `p12Password` */
  clientP12: Buffer;
  p12Password: string;
  /** the client key encrypted with `pemKeyPassword` (PKCS#8) */
  clientKeyEncrypted: string;
  pemKeyPassword: string;
  /** a second, unrelated key (for mismatch tests) */
  otherKey: string;
  remove(): void;
}

/** A CA, a server certificate for 127.0.0.1, and a client certificate (CN detour-client), EC P-256. */
export function makeCerts(): TestCerts {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'detour-auth-'));
  const f = (name: string) => path.join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=detour test CA',
  );
  const leaf = (name: string, cn: string, ext: string) => {
    writeFileSync(f(`${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\n`);
    ssl('req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    ssl(
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
    );
  };
  leaf('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth');
  leaf('client', 'detour-client', 'extendedKeyUsage=clientAuth');
  const p12Password = 'p12-Secret-7781';
  ssl(
    'pkcs12',
    '-export',
    '-in',
    f('client.pem'),
    '-inkey',
    f('client.key'),
    '-certfile',
    f('ca.pem'),
    '-out',
    f('client.p12'),
    '-passout',
    `pass:${p12Password}`,
  );
  const pemKeyPassword = 'pem-Secret-5512';
  ssl(
    'pkey',
    '-in',
    f('client.key'),
    '-aes256',
    '-passout',
    `pass:${pemKeyPassword}`,
    '-out',
    f('client-enc.key'),
  );
  ssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', f('other.key'));
  const read = (name: string) => readFileSync(f(name), 'utf8');
  return {
    dir,
    caPem: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
    clientP12: readFileSync(f('client.p12')),
    p12Password,
    clientKeyEncrypted: read('client-enc.key'),
    pemKeyPassword,
    otherKey: read('other.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A loopback HTTP server answering every request with `handler`; returns its base URL. */
export async function startHttp(
  handler: http.RequestListener,
): Promise<{ url: string; requests: () => number; stop: () => Promise<void> }> {
  let count = 0;
  const server = http.createServer((req, res) => {
    count++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => count,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

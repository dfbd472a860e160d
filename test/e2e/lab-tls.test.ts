// The lab's nginx as an HTTPS upstream that requires a client certificate (for mTLS destinations).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { join } from 'node:path';
import { createCa, issueCertificate, type IssuedCertificate } from '../lab/certs.js';
import { cleanupStaleLabs, createLab, type Lab } from '../lab/lab.js';

let lab: Lab;
let ca: { cert: string; key: string };
let client: IssuedCertificate;

beforeAll(async () => {
  cleanupStaleLabs();
  lab = await createLab();
  const dir = join(lab.dir, 'pki');
  ca = createCa(dir);
  const server = issueCertificate(ca, dir, 'upstream.example.test', {
    altNames: ['upstream.example.test', lab.addr.serverV4],
  });
  client = issueCertificate(ca, dir, 'detour-client', { client: true, password: 'p12-password' });
  await lab.startHttpServer({
    port: 8443,
    body: 'mtls',
    tls: { cert: server.cert, key: server.key, clientCa: ca.cert },
  });
}, 60000);

afterAll(async () => {
  await lab?.destroy();
}, 60000);

describe('lab nginx with TLS and client certificates', () => {
  const curl = (args: string[]) =>
    lab.run(
      'app',
      ['curl', '-sS', '--max-time', '5', '--cacert', ca.cert, ...args, `https://${lab.addr.serverV4}:8443/`],
      {
        reject: false,
      },
    );

  test('a client certificate signed by the CA is accepted and named in the response', async () => {
    const r = await curl(['--cert', client.cert, '--key', client.key]);
    expect(r.stdout.trim()).toBe(
      `mtls from ${lab.addr.serverV4}:8443 to ${lab.addr.appV4} client CN=detour-client`,
    );
  });

  test('the PKCS#12 form works too', async () => {
    const r = await curl(['--cert-type', 'P12', '--cert', `${client.p12}:${client.password}`]);
    expect(r.stdout).toContain('client CN=detour-client');
  });

  test('without a client certificate nginx refuses', async () => {
    const r = await curl([]);
    expect(r.stdout).toContain('400 No required SSL certificate was sent');
  });
});

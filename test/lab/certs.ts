// Test certificates made with the openssl CLI: a CA, server certificates for names/addresses, and
// client certificates as PEM and PKCS#12. Everything is written below `dir`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CertificateAuthority {
  cert: string;
  key: string;
}

export interface IssuedCertificate {
  cert: string;
  key: string;
  /** cert + key in one PEM file */
  pem: string;
  /** PKCS#12 with `password` */
  p12: string;
  password: string;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: 'pipe' });

export function createCa(dir: string, name = 'detour test CA'): CertificateAuthority {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, 'ca.crt');
  const key = join(dir, 'ca.key');
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

/** A certificate signed by `ca`; `altNames` are DNS names or IP addresses (server certificates). */
export function issueCertificate(
  ca: CertificateAuthority,
  dir: string,
  name: string,
  options: { altNames?: string[]; client?: boolean; password?: string } = {},
): IssuedCertificate {
  mkdirSync(dir, { recursive: true });
  const base = join(dir, name.replace(/[^A-Za-z0-9.-]/g, '_'));
  const key = `${base}.key`;
  const csr = `${base}.csr`;
  const cert = `${base}.crt`;
  const ext = `${base}.ext`;
  const san = (options.altNames ?? []).map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(
    ext,
    [
      `extendedKeyUsage=${options.client ? 'clientAuth' : 'serverAuth'}`,
      ...(san ? [`subjectAltName=${san}`] : []),
    ].join('\n') + '\n',
  );
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      key,
      '-out',
      csr,
    ],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      ext,
      '-out',
      cert,
    ],
    dir,
  );
  const pem = `${base}.pem`;
  execFileSync('sh', ['-c', `cat "${cert}" "${key}" > "${pem}"`]);
  const password = options.password ?? 'changeit';
  const p12 = `${base}.p12`;
  openssl(
    ['pkcs12', '-export', '-in', cert, '-inkey', key, '-passout', `pass:${password}`, '-out', p12],
    dir,
  );
  return { cert, key, pem, p12, password };
}

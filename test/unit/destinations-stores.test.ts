// Key stores and trust stores: generated with openssl into a temporary folder (no fixtures with keys in
// the repository). Passwords are compared as booleans so a failing test never prints one.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DestinationParseError,
  keyStoreFormat,
  parseDestination,
  type ParseContext,
} from '../../dataplane/destinations/parse.js';

const P12_PASSWORD = 'p12-test-pass';
const KEY_PASSWORD = 'pem-key-test-pass';
let dir: string;
let ctx: ParseContext;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'detour-destinations-stores-'));
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'client.key',
    '-out',
    'client.crt',
    '-days',
    '1',
    '-subj',
    '/CN=client',
  );
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'other.key',
    '-out',
    'other.crt',
    '-days',
    '1',
    '-subj',
    '/CN=other',
  );
  openssl(
    'pkcs12',
    '-export',
    '-in',
    'client.crt',
    '-inkey',
    'client.key',
    '-out',
    'client.p12',
    '-passout',
    `pass:${P12_PASSWORD}`,
  );
  openssl(
    'pkcs12',
    '-export',
    '-in',
    'client.crt',
    '-inkey',
    'client.key',
    '-out',
    'client.pfx',
    '-passout',
    'pass:',
  );
  openssl(
    'pkcs12',
    '-export',
    '-legacy',
    '-in',
    'client.crt',
    '-inkey',
    'client.key',
    '-out',
    'legacy.p12',
    '-passout',
    `pass:${P12_PASSWORD}`,
  );
  openssl(
    'pkey',
    '-in',
    'client.key',
    '-aes256',
    '-passout',
    `pass:${KEY_PASSWORD}`,
    '-out',
    'client-enc.key',
  );
  openssl('x509', '-in', 'other.crt', '-outform', 'der', '-out', 'ca.der');
  const text = (f: string) => readFileSync(join(dir, f), 'utf8');
  writeFileSync(join(dir, 'client.pem'), text('client.crt') + text('client.key'));
  writeFileSync(join(dir, 'client-enc.pem'), text('client.crt') + text('client-enc.key'));
  writeFileSync(join(dir, 'mismatch.pem'), text('client.crt') + text('other.key'));
  writeFileSync(join(dir, 'cert-only.pem'), text('client.crt'));
  writeFileSync(join(dir, 'ca.pem'), text('other.crt') + text('client.crt'));
  writeFileSync(join(dir, 'garbage.p12'), 'not a key store');
  writeFileSync(join(dir, 'garbage.pem'), 'not a certificate');
  ctx = { source: 'destinations.yaml', baseDir: dir, readFile: (p) => readFileSync(p) };
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const base = {
  Name: 'mtls',
  URL: 'https://mtls.example.test',
  Authentication: 'ClientCertificateAuthentication',
};

function problems(raw: Record<string, unknown>, context: ParseContext = ctx): string[] {
  try {
    parseDestination(raw, context);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(DestinationParseError);
    return (error as DestinationParseError).errors.map(String);
  }
}

const file = (name: string) => readFileSync(join(dir, name));
const prefix = 'destinations.yaml: destination "mtls": ';

describe('key stores from files next to the destinations file', () => {
  test('PKCS#12: content and password are carried', () => {
    const d = parseDestination(
      { ...base, KeyStoreLocation: 'client.p12', KeyStorePassword: P12_PASSWORD },
      ctx,
    );
    expect(d.keyStore?.location).toBe('client.p12');
    expect(d.keyStore?.content.equals(file('client.p12'))).toBe(true);
    expect(d.keyStore?.password === P12_PASSWORD).toBe(true);
    expect(keyStoreFormat('client.p12')).toBe('pkcs12');
    expect(keyStoreFormat('CLIENT.PFX')).toBe('pkcs12');
    expect(keyStoreFormat('client.pem')).toBe('pem');
    expect(keyStoreFormat('client.jks')).toBeUndefined();
  });

  test('PKCS#12 without a password, and an absolute location', () => {
    const d = parseDestination(
      { ...base, KeyStoreLocation: join(dir, 'client.pfx') },
      { ...ctx, baseDir: '/nonexistent' },
    );
    expect(d.keyStore?.content.equals(file('client.pfx'))).toBe(true);
    expect(d.keyStore?.password).toBeUndefined();
  });

  test('PEM with certificate and key; an encrypted key with its password', () => {
    const d = parseDestination({ ...base, KeyStoreLocation: 'client.pem' }, ctx);
    expect(d.keyStore?.content.equals(file('client.pem'))).toBe(true);
    const enc = parseDestination(
      { ...base, KeyStoreLocation: 'client-enc.pem', KeyStorePassword: KEY_PASSWORD },
      ctx,
    );
    expect(enc.keyStore?.content.equals(file('client-enc.pem'))).toBe(true);
    expect(enc.keyStore?.password === KEY_PASSWORD).toBe(true);
  });

  test('a key store is loaded for any authentication type that names one (e.g. mTLS to the token service)', () => {
    const d = parseDestination(
      {
        Name: 'mtls',
        URL: 'https://mtls.example.test',
        Authentication: 'OAuth2ClientCredentials',
        tokenServiceURL: 'https://auth.example.test/oauth/token',
        clientId: 'c',
        clientSecret: 's',
        KeyStoreLocation: 'client.pem',
      },
      ctx,
    );
    expect(d.keyStore?.content.equals(file('client.pem'))).toBe(true);
  });

  const cases: [Record<string, string>, string][] = [
    [
      { KeyStoreLocation: 'client.p12', KeyStorePassword: 'wrong' },
      'KeyStorePassword: does not open "client.p12" (wrong password)',
    ],
    [{ KeyStoreLocation: 'client.p12' }, 'KeyStorePassword: required: "client.p12" is password-protected'],
    [
      { KeyStoreLocation: 'garbage.p12', KeyStorePassword: 'x' },
      'KeyStoreLocation: "garbage.p12" is not a readable PKCS#12 file',
    ],
    [
      { KeyStoreLocation: 'legacy.p12', KeyStorePassword: P12_PASSWORD },
      'KeyStoreLocation: "legacy.p12" uses legacy encryption (e.g. RC2) that OpenSSL 3 does not load; re-export it: openssl pkcs12 -legacy -in old.p12 -nodes -out tmp.pem && openssl pkcs12 -export -in tmp.pem -out legacy.p12',
    ],
    [
      { KeyStoreLocation: 'cert-only.pem' },
      'KeyStoreLocation: "cert-only.pem" must contain a certificate and its private key (PEM)',
    ],
    [
      { KeyStoreLocation: 'garbage.pem' },
      'KeyStoreLocation: "garbage.pem" must contain a certificate and its private key (PEM)',
    ],
    [
      { KeyStoreLocation: 'mismatch.pem' },
      'KeyStoreLocation: the certificate and the private key in "mismatch.pem" do not belong together',
    ],
    [
      { KeyStoreLocation: 'client-enc.pem' },
      'KeyStorePassword: required: the private key in "client-enc.pem" is encrypted',
    ],
    [
      { KeyStoreLocation: 'client-enc.pem', KeyStorePassword: 'wrong' },
      'KeyStorePassword: does not decrypt the private key in "client-enc.pem" (wrong password)',
    ],
    [
      { KeyStoreLocation: 'client.jks', KeyStorePassword: 'x' },
      'KeyStoreLocation: Java key stores (.jks) are not supported; convert it to PKCS#12 and point KeyStoreLocation at the .p12: keytool -importkeystore -srckeystore client.jks -destkeystore client.p12 -deststoretype PKCS12',
    ],
    [
      { KeyStoreLocation: 'client.key' },
      'KeyStoreLocation: unknown key store format ".key"; expected .p12, .pfx or .pem',
    ],
    [
      { KeyStoreLocation: 'client' },
      'KeyStoreLocation: unknown key store format "client"; expected .p12, .pfx or .pem',
    ],
  ];
  // titled by the message, not the input: inputs hold passwords
  test.each(cases.map(([props, message]) => ({ props, message })))('$message', ({ props, message }) => {
    expect(problems({ ...base, ...props })).toEqual([prefix + message]);
  });

  test('a missing file names the path it looked at', () => {
    expect(problems({ ...base, KeyStoreLocation: 'missing.p12', KeyStorePassword: 'x' })).toEqual([
      `${prefix}KeyStoreLocation: "missing.p12" not found: no certificate of that name came with the destination, and the file ${join(dir, 'missing.p12')} cannot be read (ENOENT)`,
    ]);
  });

  test('without a file reader, stores must come with the destination', () => {
    expect(problems({ ...base, KeyStoreLocation: 'client.p12' }, { source: 'destinations.yaml' })).toEqual([
      `${prefix}KeyStoreLocation: "client.p12" not found: no certificate of that name came with the destination`,
    ]);
  });

  test('no message contains a password', () => {
    const lines = [
      ...problems({ ...base, KeyStoreLocation: 'client.p12', KeyStorePassword: 'wrong-secret-value' }),
      ...problems({ ...base, KeyStoreLocation: 'client-enc.pem', KeyStorePassword: 'wrong-secret-value' }),
    ];
    expect(lines).toHaveLength(2);
    expect(lines.some((l) => l.includes('wrong-secret-value') || l.includes(P12_PASSWORD))).toBe(false);
  });
});

describe('trust stores', () => {
  test('PEM (several CA certificates) is carried as is', () => {
    const d = parseDestination(
      { Name: 'ts', URL: 'https://ts.example.test', TrustStoreLocation: 'ca.pem' },
      ctx,
    );
    expect(d.trustStore?.content.equals(file('ca.pem'))).toBe(true);
    expect(d.keyStore).toBeUndefined();
  });

  test('DER is converted to PEM', () => {
    const d = parseDestination(
      { Name: 'ts', URL: 'https://ts.example.test', TrustStoreLocation: 'ca.der' },
      ctx,
    );
    expect(d.trustStore?.content.toString()).toBe(readFileSync(join(dir, 'other.crt'), 'utf8'));
  });

  test.each([
    [
      'truststore.jks',
      'TrustStoreLocation: Java trust stores (.jks) are not supported; export the CA certificates to PEM: keytool -exportcert -rfc -keystore truststore.jks -alias <alias> -file truststore.pem',
    ],
    [
      'client.p12',
      'TrustStoreLocation: PKCS#12 trust stores are not supported; export the CA certificates to PEM: openssl pkcs12 -in client.p12 -nokeys -out truststore.pem',
    ],
    ['garbage.pem', 'TrustStoreLocation: "garbage.pem" holds no readable X.509 certificate (PEM or DER)'],
    ['ca.txt', 'TrustStoreLocation: unknown trust store format ".txt"; expected .pem, .crt, .cer or .der'],
  ])('%s', (location, message) => {
    expect(problems({ Name: 'ts', URL: 'https://ts.example.test', TrustStoreLocation: location })).toEqual([
      `destinations.yaml: destination "ts": ${message}`,
    ]);
  });
});

describe('stores that come with the destination (Find API and SDK certificates)', () => {
  test('Find API: destinationConfiguration + certificates (base64), no file access', () => {
    const d = parseDestination(
      {
        owner: { SubaccountId: 'x', InstanceId: null },
        destinationConfiguration: {
          ...base,
          KeyStoreLocation: 'client.p12',
          KeyStorePassword: P12_PASSWORD,
          TrustStoreLocation: 'ca.pem',
        },
        certificates: [
          { Name: 'client.p12', Content: file('client.p12').toString('base64'), Type: 'CERTIFICATE' },
          { Name: 'ca.pem', Content: file('ca.pem').toString('base64'), Type: 'CERTIFICATE' },
        ],
        authTokens: [{ type: 'Bearer', value: 'ignored' }],
      },
      { source: 'destination service' },
    );
    expect(d.name).toBe('mtls');
    expect(d.keyStore?.content.equals(file('client.p12'))).toBe(true);
    expect(d.keyStore?.password === P12_PASSWORD).toBe(true);
    expect(d.trustStore?.content.equals(file('ca.pem'))).toBe(true);
    expect(Object.keys(d.properties)).not.toContain('certificates');
    expect(Object.keys(d.properties)).not.toContain('owner');
  });

  test('a certificate of the same name wins over a file', () => {
    const d = parseDestination(
      {
        ...base,
        KeyStoreLocation: 'client.pem',
        certificates: [{ Name: 'client.pem', Content: file('client-enc.pem').toString('base64') }],
        KeyStorePassword: KEY_PASSWORD,
      },
      ctx,
    );
    expect(d.keyStore?.content.equals(file('client-enc.pem'))).toBe(true);
  });

  test('SDK: keyStoreName + certificates, trustStoreCertificate', () => {
    const d = parseDestination(
      {
        name: 'mtls',
        url: 'https://mtls.example.test',
        authentication: 'ClientCertificateAuthentication',
        keyStoreName: 'client.pem',
        certificates: [
          { name: 'client.pem', content: file('client.pem').toString('base64'), type: 'CERTIFICATE' },
        ],
        trustStoreCertificate: {
          name: 'ca.der',
          content: file('ca.der').toString('base64'),
          type: 'CERTIFICATE',
        },
      },
      { source: 'environment variable "destinations"' },
    );
    expect(d.keyStore?.content.equals(file('client.pem'))).toBe(true);
    expect(d.trustStore?.content.toString()).toContain('-----BEGIN CERTIFICATE-----');
    expect(d.properties['TrustStoreLocation']).toBe('ca.der');
  });

  test('bad certificates entries', () => {
    expect(
      problems(
        {
          ...base,
          KeyStoreLocation: 'client.pem',
          certificates: [{ Name: 'client.pem', Content: '%%%' }, { Content: 'AA==' }, 'x'],
        },
        { source: 'destinations.yaml' },
      ),
    ).toEqual([
      `${prefix}certificates[0].Content: expected base64 content`,
      `${prefix}certificates[1].Name: required`,
      `${prefix}certificates[2]: expected a mapping with Name, Content and Type`,
      `${prefix}KeyStoreLocation: "client.pem" not found: no certificate of that name came with the destination`,
    ]);
    expect(problems({ destinationConfiguration: 'x' })).toEqual([
      'destinations.yaml: destinationConfiguration: expected a mapping of destination properties',
      'destinations.yaml: Name: required',
      'destinations.yaml: URL: required for HTTP destinations',
    ]);
  });
});

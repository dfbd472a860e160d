import { describe, expect, test } from '@jest/globals';
import { parseDestination } from '../../dataplane/destinations/parse.js';
import {
  REDACTED,
  SECRET_PROPERTY,
  isSecretProperty,
  redactDestination,
  secretValues,
} from '../../dataplane/destinations/redact.js';

const ctx = { source: 'destinations.yaml' };

const destination = parseDestination(
  {
    Name: 'orders',
    URL: 'https://orders.example.test/api',
    Authentication: 'OAuth2Password',
    tokenServiceURL: 'https://auth.example.test/oauth/token',
    tokenServiceUser: 'token-user',
    tokenServicePassword: 'tsp-value-1',
    clientId: 'orders-client',
    clientSecret: 'client secret+value/2',
    User: 'alice',
    Password: 'password-value-3',
    KeyStorePassword: 'ksp-value-4',
    TrustStorePassword: 'tsp-value-5',
    'URL.headers.Authorization': 'Bearer header-value-6',
    'URL.headers.x-api-key': 'apikey-value-7',
    'URL.headers.Cookie': 'session=cookie-value-8',
    'URL.headers.x-auth-token': 'token-value-9',
    'URL.headers.x-api-version': '2',
    'URL.queries.access_token': 'query-token-10',
    'URL.queries.sap-client': '100',
    'custom.dbPassword': 'custom-value-11',
    'custom.signingSecret': 'custom-value-12',
    Description: 'orders service',
  },
  ctx,
);

const SECRETS = [
  'tsp-value-1',
  'client secret+value/2',
  'password-value-3',
  'ksp-value-4',
  'tsp-value-5',
  'header-value-6',
  'apikey-value-7',
  'cookie-value-8',
  'token-value-9',
  'query-token-10',
  'custom-value-11',
  'custom-value-12',
];

describe('redactDestination', () => {
  test('keeps every property, replaces secrets', () => {
    const redacted = redactDestination(destination);
    expect(Object.keys(redacted)).toEqual(Object.keys(destination.properties));
    expect(redacted).toMatchObject({
      Name: 'orders',
      URL: 'https://orders.example.test/api',
      Authentication: 'OAuth2Password',
      tokenServiceURL: 'https://auth.example.test/oauth/token',
      tokenServiceUser: 'token-user',
      clientId: 'orders-client',
      User: 'alice',
      'URL.headers.x-api-version': '2',
      'URL.queries.sap-client': '100',
      Description: 'orders service',
      Password: REDACTED,
      clientSecret: REDACTED,
      tokenServicePassword: REDACTED,
      KeyStorePassword: REDACTED,
      TrustStorePassword: REDACTED,
      'URL.headers.Authorization': REDACTED,
      'URL.headers.x-api-key': REDACTED,
      'URL.headers.Cookie': REDACTED,
      'URL.headers.x-auth-token': REDACTED,
      'URL.queries.access_token': REDACTED,
      'custom.dbPassword': REDACTED,
      'custom.signingSecret': REDACTED,
    });
  });

  test('no secret value appears anywhere in its JSON', () => {
    const json = JSON.stringify(redactDestination(destination));
    const leaked = SECRETS.filter((s) => json.includes(s));
    expect(leaked).toHaveLength(0);
  });

  test('key store content is never part of it', () => {
    const withStore = {
      ...destination,
      keyStore: { location: 'client.p12', content: Buffer.from('KEYSTORE-BYTES') },
    };
    const json = JSON.stringify(redactDestination(withStore));
    expect(json.includes('KEYSTORE-BYTES')).toBe(false);
    expect(json.includes(Buffer.from('KEYSTORE-BYTES').toString('base64'))).toBe(false);
  });

  test.each([
    ...SECRET_PROPERTY.map((p) => [p, true] as const),
    ['URL.headers.Proxy-Authorization', true],
    ['URL.headers.apikey', true],
    ['URL.headers.Set-Cookie', true],
    ['URL.queries.key', true],
    ['URL.queries.sig', true],
    ['tokenServiceURL.headers.x-client-credential', true],
    ['Authentication', false],
    ['tokenServiceURL', false],
    ['tokenServiceUser', false],
    ['tokenServiceURLType', false],
    ['KeyStoreLocation', false],
    ['TrustStoreLocation', false],
    ['clientId', false],
    ['URL.headers.x-api-version', false],
    ['URL.queries.sap-client', false],
    ['CloudConnectorLocationId', false],
  ])('%s secret: %s', (name, secret) => {
    expect(isSecretProperty(name)).toBe(secret);
  });
});

describe('secretValues', () => {
  test('lists every secret, plus Basic credentials as sent on the wire', () => {
    const values = secretValues(destination);
    expect(SECRETS.filter((s) => !values.some((v) => v.includes(s)))).toHaveLength(0);
    const basic = Buffer.from('alice:password-value-3').toString('base64');
    const clientBasic = Buffer.from('orders-client:client+secret%2Bvalue%2F2').toString('base64');
    expect(values.includes(basic)).toBe(true);
    expect(values.includes(clientBasic)).toBe(true);
    expect(values.includes('orders-client')).toBe(false);
    expect(values.includes('alice')).toBe(false);
  });

  test('a destination without secrets has none', () => {
    expect(secretValues(parseDestination({ Name: 'a', URL: 'https://a.example.test' }, ctx))).toEqual([]);
  });
});

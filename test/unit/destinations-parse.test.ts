import { describe, expect, test } from '@jest/globals';
import {
  DestinationParseError,
  isLoopbackHost,
  parseDestination,
  parseDestinations,
  type ParseContext,
} from '../../dataplane/destinations/parse.js';
import type { Destination } from '../../dataplane/destinations/types.js';

const ctx: ParseContext = { source: 'destinations.yaml' };

/** The full error lines for one destination (empty when it is valid). */
function problems(raw: unknown, context: ParseContext = ctx): string[] {
  try {
    parseDestination(raw, context);
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(DestinationParseError);
    return (error as DestinationParseError).errors.map(String);
  }
}

function parse(raw: Record<string, unknown>): Destination {
  return parseDestination(raw, ctx);
}

const http = { Name: 'orders', Type: 'HTTP', URL: 'https://orders.example.test/api' };

describe('a valid HTTP destination', () => {
  test('the DESIGN.md example parses to the Destination the dataplane uses', () => {
    const d = parse({
      Name: 'orders',
      Type: 'HTTP',
      URL: 'https://orders.example.test/api',
      ProxyType: 'Internet',
      Authentication: 'OAuth2ClientCredentials',
      tokenServiceURL: 'https://auth.example.test/oauth/token',
      clientId: 'orders-client',
      clientSecret: 's3cret',
      scope: 'read write',
      'URL.headers.x-api-version': '2',
      'URL.headers.X-Tenant': 't1',
      'URL.queries.sap-client': '100',
      'URL.connectionTimeoutInSeconds': '5',
      'URL.socketReadTimeoutInSeconds': '120',
      Description: 'the orders service',
      'custom.property': 'kept',
    });
    expect(d).toMatchObject({
      name: 'orders',
      type: 'HTTP',
      proxyType: 'Internet',
      authentication: 'OAuth2ClientCredentials',
      tokenServiceURL: 'https://auth.example.test/oauth/token',
      clientId: 'orders-client',
      scope: 'read write',
      headers: [
        ['x-api-version', '2'],
        ['X-Tenant', 't1'],
      ],
      queries: [['sap-client', '100']],
      trustAll: false,
      connectTimeoutMs: 5000,
      readTimeoutMs: 120_000,
    });
    expect(d.clientSecret === 's3cret').toBe(true);
    expect(d.url?.href).toBe('https://orders.example.test/api');
    expect(d.properties['Description']).toBe('the orders service');
    expect(d.properties['custom.property']).toBe('kept');
    expect(d.address).toBeUndefined();
  });

  test('defaults: Type HTTP, ProxyType Internet, NoAuthentication, SAP transparent proxy timeouts 30 s / 30 s', () => {
    const d = parse({ Name: 'plain', URL: 'http://plain.example.test' });
    expect(d).toMatchObject({
      type: 'HTTP',
      proxyType: 'Internet',
      authentication: 'NoAuthentication',
      headers: [],
      queries: [],
      trustAll: false,
      connectTimeoutMs: 30_000,
      readTimeoutMs: 30_000,
    });
  });

  test('a schemeless URL means http', () => {
    expect(parse({ Name: 'a', URL: 'orders.example.test:8080/api' }).url?.href).toBe(
      'http://orders.example.test:8080/api',
    );
    expect(parse({ Name: 'a', URL: 'orders.example.test' }).url?.href).toBe('http://orders.example.test/');
  });

  test('YAML-typed values are taken as text: TrustAll true, numbers, false', () => {
    const d = parse({ ...http, TrustAll: true, 'URL.headers.x-v': 2, 'URL.connectionTimeoutInSeconds': 7 });
    expect(d.trustAll).toBe(true);
    expect(d.headers).toEqual([['x-v', '2']]);
    expect(d.connectTimeoutMs).toBe(7000);
    expect(parse({ ...http, TrustAll: 'FALSE' }).trustAll).toBe(false);
    expect(parse({ ...http, TrustAll: 'True' }).trustAll).toBe(true);
  });

  test('BasicAuthentication, OAuth2Password, OnPremise with a location id', () => {
    expect(parse({ ...http, Authentication: 'BasicAuthentication', User: 'u', Password: 'p' })).toMatchObject(
      {
        authentication: 'BasicAuthentication',
        user: 'u',
      },
    );
    const d = parse({
      ...http,
      URL: 'http://erp.corp:44300/sap',
      ProxyType: 'OnPremise',
      CloudConnectorLocationId: 'loc1',
      Authentication: 'OAuth2Password',
      tokenServiceURL: 'auth.example.test/oauth/token',
      tokenServiceUser: 'tsu',
      tokenServicePassword: 'tsp',
      clientId: 'c',
      clientSecret: 's',
      User: 'u',
      Password: 'p',
    });
    expect(d).toMatchObject({
      proxyType: 'OnPremise',
      locationId: 'loc1',
      authentication: 'OAuth2Password',
      tokenServiceURL: 'http://auth.example.test/oauth/token',
      tokenServiceUser: 'tsu',
      user: 'u',
    });
  });

  test('PrincipalPropagation and OAuth2TechnicalUserPropagation (OnPremise only)', () => {
    const onPremise = { Name: 'erp', URL: 'http://erp.corp:44300', ProxyType: 'OnPremise' };
    expect(parse({ ...onPremise, Authentication: 'PrincipalPropagation' })).toMatchObject({
      authentication: 'PrincipalPropagation',
      proxyType: 'OnPremise',
    });
    expect(
      parse({
        ...onPremise,
        Authentication: 'OAuth2TechnicalUserPropagation',
        tokenServiceURL: 'https://auth.example.test/oauth/token',
        clientId: 'c',
        clientSecret: 's',
      }),
    ).toMatchObject({ authentication: 'OAuth2TechnicalUserPropagation', clientId: 'c' });
  });

  test('empty values count as not set', () => {
    expect(parse({ ...http, Description: '', ProxyType: '' }).proxyType).toBe('Internet');
  });
});

describe('TCP destinations', () => {
  test('Address tcp://host:port, or host:port', () => {
    expect(parse({ Name: 'db', Type: 'TCP', Address: 'tcp://db.example.test:5432' }).address).toEqual({
      host: 'db.example.test',
      port: 5432,
    });
    expect(parse({ Name: 'db', Type: 'TCP', Address: '198.51.100.7:5432' }).address).toEqual({
      host: '198.51.100.7',
      port: 5432,
    });
    const v6 = parse({
      Name: 'db',
      Type: 'TCP',
      Address: 'tcp://[2001:db8::7]:5432',
      ProxyType: 'OnPremise',
    });
    expect(v6.address).toEqual({ host: '2001:db8::7', port: 5432 });
    expect(v6.url).toBeUndefined();
  });

  test.each([
    ['', 'destinations.yaml: destination "db": Address: required for TCP destinations'],
    ['tcp://db.example.test', 'destinations.yaml: destination "db": Address: expected tcp://host:port'],
    ['tcp://db.example.test:0', 'destinations.yaml: destination "db": Address: port must be 1-65535'],
    ['tcp://db.example.test:65536', 'destinations.yaml: destination "db": Address: port must be 1-65535'],
    [
      'tcp://db.example.test:5432/x',
      'destinations.yaml: destination "db": Address: expected tcp://host:port',
    ],
    [
      'http://db.example.test:5432',
      'destinations.yaml: destination "db": Address: scheme "http" is not supported; expected tcp://host:port',
    ],
    [
      'tcp://127.0.0.1:5432',
      'destinations.yaml: destination "db": Address: loopback targets are not allowed (127.0.0.1)',
    ],
    [
      'tcp://[::1]:5432',
      'destinations.yaml: destination "db": Address: loopback targets are not allowed ([::1])',
    ],
    [
      'localhost:5432',
      'destinations.yaml: destination "db": Address: loopback targets are not allowed (localhost)',
    ],
  ])('Address %j', (address, message) => {
    expect(problems({ Name: 'db', Type: 'TCP', Address: address })).toEqual([message]);
  });

  test('TCP destinations take no authentication', () => {
    expect(
      problems({
        Name: 'db',
        Type: 'TCP',
        Address: 'db.example.test:1',
        Authentication: 'BasicAuthentication',
        User: 'u',
        Password: 'p',
      }),
    ).toEqual([
      'destinations.yaml: destination "db": Authentication: TCP destinations take no authentication (got BasicAuthentication)',
    ]);
  });
});

describe('validation messages name the source, the destination and the property', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ URL: 'http://a.example.test' }, 'destinations.yaml: Name: required'],
    [{ Name: '', URL: 'http://a.example.test' }, 'destinations.yaml: Name: required'],
    [
      { Name: 'or ders', URL: 'http://a.example.test' },
      'destinations.yaml: destination "or ders": Name: must contain only letters, digits, "_" and "-"',
    ],
    [
      { Name: 'orders.v2', URL: 'http://a.example.test' },
      'destinations.yaml: destination "orders.v2": Name: must contain only letters, digits, "_" and "-"',
    ],
    [
      { Name: 'x'.repeat(201), URL: 'http://a.example.test' },
      `destinations.yaml: destination "${'x'.repeat(80)}...": Name: must be at most 200 characters (has 201)`,
    ],
    [
      { ...http, Type: 'RFC' },
      'destinations.yaml: destination "orders": Type: not supported by the dataplane: RFC; expected HTTP or TCP',
    ],
    [
      { ...http, Type: 'http' },
      'destinations.yaml: destination "orders": Type: expected HTTP or TCP, got "http"',
    ],
    [
      { ...http, ProxyType: 'PrivateLink' },
      'destinations.yaml: destination "orders": ProxyType: not supported by the dataplane yet: PrivateLink',
    ],
    [
      { ...http, ProxyType: 'internet' },
      'destinations.yaml: destination "orders": ProxyType: expected Internet or OnPremise, got "internet"',
    ],
    [{ Name: 'orders' }, 'destinations.yaml: destination "orders": URL: required for HTTP destinations'],
    [
      { Name: 'orders', URL: 'ftp://files.example.test/' },
      'destinations.yaml: destination "orders": URL: scheme "ftp" is not supported; use http or https',
    ],
    [
      { Name: 'orders', URL: 'http://exa mple.test/' },
      'destinations.yaml: destination "orders": URL: not a valid URL',
    ],
    [
      { Name: 'orders', URL: 'https://me:hunter2@orders.example.test/' },
      'destinations.yaml: destination "orders": URL: must not contain a user name or password; use User and Password with BasicAuthentication',
    ],
    [
      { Name: 'orders', URL: 'http://127.0.0.1:8080/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (127.0.0.1)',
    ],
    [
      { Name: 'orders', URL: 'http://127.1/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (127.0.0.1)',
    ],
    [
      { Name: 'orders', URL: 'http://2130706433/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (127.0.0.1)',
    ],
    [
      { Name: 'orders', URL: 'http://127.9.9.9/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (127.9.9.9)',
    ],
    [
      { Name: 'orders', URL: 'https://localhost/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (localhost)',
    ],
    [
      { Name: 'orders', URL: 'LOCALHOST.:80' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (localhost.)',
    ],
    [
      { Name: 'orders', URL: 'http://api.localhost/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (api.localhost)',
    ],
    [
      { Name: 'orders', URL: 'http://[::1]:8080/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed ([::1])',
    ],
    [
      { Name: 'orders', URL: 'http://[::ffff:127.0.0.1]/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed ([::ffff:7f00:1])',
    ],
    [
      { Name: 'orders', URL: 'http://0.0.0.0/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (0.0.0.0)',
    ],
    [
      { Name: 'orders', URL: 'http://0/' },
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (0.0.0.0)',
    ],
    [
      { ...http, Authentication: 'PrincipalPropagation' },
      'destinations.yaml: destination "orders": Authentication: PrincipalPropagation requires ProxyType OnPremise (got Internet)',
    ],
    [
      {
        ...http,
        URL: 'http://erp.corp:44300',
        ProxyType: 'OnPremise',
        Authentication: 'OAuth2TechnicalUserPropagation',
        tokenServiceURL: 'https://auth.example.test/oauth/token',
        clientId: 'c',
      },
      'destinations.yaml: destination "orders": clientSecret: required for OAuth2TechnicalUserPropagation',
    ],
    [
      { ...http, ProxyType: 'OnPremise' },
      'destinations.yaml: destination "orders": URL: OnPremise URLs must be http:// (the connectivity proxy takes plain HTTP; the Cloud Connector originates TLS to the backend when its access control says HTTPS)',
    ],
    [
      { ...http, Authentication: 'OAuth2SAMLBearerAssertion' },
      'destinations.yaml: destination "orders": Authentication: not supported by the dataplane yet: OAuth2SAMLBearerAssertion',
    ],
    [
      { ...http, Authentication: 'Basic' },
      'destinations.yaml: destination "orders": Authentication: unknown authentication type "Basic"; expected one of NoAuthentication, BasicAuthentication, OAuth2ClientCredentials, OAuth2Password, ClientCertificateAuthentication, PrincipalPropagation, OAuth2TechnicalUserPropagation',
    ],
    [
      { ...http, TrustAll: 'yes' },
      'destinations.yaml: destination "orders": TrustAll: expected "true" or "false"',
    ],
    [
      { ...http, 'URL.connectionTimeoutInSeconds': '0' },
      'destinations.yaml: destination "orders": URL.connectionTimeoutInSeconds: expected a whole number of seconds from 1 to 300',
    ],
    [
      { ...http, 'URL.connectionTimeoutInSeconds': '301' },
      'destinations.yaml: destination "orders": URL.connectionTimeoutInSeconds: expected a whole number of seconds from 1 to 300',
    ],
    [
      { ...http, 'URL.connectionTimeoutInSeconds': '1.5' },
      'destinations.yaml: destination "orders": URL.connectionTimeoutInSeconds: expected a whole number of seconds from 1 to 300',
    ],
    [
      { ...http, 'URL.socketReadTimeoutInSeconds': '-1' },
      'destinations.yaml: destination "orders": URL.socketReadTimeoutInSeconds: expected a whole number of seconds from 1 to 43200',
    ],
    [
      { ...http, 'URL.socketReadTimeoutInSeconds': '43201' },
      'destinations.yaml: destination "orders": URL.socketReadTimeoutInSeconds: expected a whole number of seconds from 1 to 43200',
    ],
    [
      { ...http, 'URL.headers.bad header': 'x' },
      'destinations.yaml: destination "orders": URL.headers.bad header: not a valid HTTP header name',
    ],
    [
      { ...http, 'URL.headers.': 'x' },
      'destinations.yaml: destination "orders": URL.headers.: not a valid HTTP header name',
    ],
    [
      { ...http, 'URL.headers.Host': 'x' },
      'destinations.yaml: destination "orders": URL.headers.Host: this header is set by the dataplane and cannot be configured',
    ],
    [
      { ...http, 'URL.headers.Transfer-Encoding': 'x' },
      'destinations.yaml: destination "orders": URL.headers.Transfer-Encoding: this header is set by the dataplane and cannot be configured',
    ],
    [
      { ...http, 'URL.headers.x-a': 'a\r\nInjected: 1' },
      'destinations.yaml: destination "orders": URL.headers.x-a: the value must not contain line breaks or NUL',
    ],
    [
      { ...http, 'URL.queries.': 'x' },
      'destinations.yaml: destination "orders": URL.queries.: the query parameter name is empty',
    ],
    [
      { ...http, Description: ['a'] },
      'destinations.yaml: destination "orders": Description: expected a text value, got a list',
    ],
    [
      { ...http, Password: { a: 1 } },
      'destinations.yaml: destination "orders": Password: expected a text value, got a mapping',
    ],
    [
      { ...http, User: null },
      'destinations.yaml: destination "orders": User: expected a text value, got no value',
    ],
    [
      { ...http, tokenServiceURL: 'ftp://auth.example.test' },
      'destinations.yaml: destination "orders": tokenServiceURL: scheme "ftp" is not supported; use http or https',
    ],
    [
      { ...http, tokenServiceURL: 'https://c:s@auth.example.test' },
      'destinations.yaml: destination "orders": tokenServiceURL: must not contain a user name or password; use clientId/clientSecret or tokenServiceUser/tokenServicePassword',
    ],
  ];
  // titled by the expected message: the inputs hold (fake) secrets that test output should not show
  test.each(cases.map(([raw, message]) => ({ raw, message })))('$message', ({ raw, message }) => {
    expect(problems(raw)).toEqual([message]);
  });

  test.each([
    ['BasicAuthentication', {}, ['User', 'Password']],
    ['BasicAuthentication', { User: 'u' }, ['Password']],
    ['OAuth2ClientCredentials', {}, ['tokenServiceURL', 'clientId', 'clientSecret']],
    [
      'OAuth2ClientCredentials',
      { tokenServiceURL: 'https://a.example.test', clientId: 'c' },
      ['clientSecret'],
    ],
    [
      'OAuth2Password',
      { tokenServiceURL: 'https://a.example.test', clientId: 'c', clientSecret: 's' },
      ['User', 'Password'],
    ],
    ['OAuth2Password', {}, ['tokenServiceURL', 'clientId', 'clientSecret', 'User', 'Password']],
    ['ClientCertificateAuthentication', {}, ['KeyStoreLocation']],
  ])('%s with %j needs %j', (authentication, given, missing) => {
    expect(problems({ ...http, Authentication: authentication, ...given })).toEqual(
      missing.map((p) => `destinations.yaml: destination "orders": ${p}: required for ${authentication}`),
    );
  });

  test('every problem of a destination is reported, not just the first', () => {
    expect(
      problems({
        Name: 'a b',
        URL: 'http://localhost/',
        TrustAll: 'maybe',
        Authentication: 'BasicAuthentication',
      }),
    ).toEqual([
      'destinations.yaml: destination "a b": Name: must contain only letters, digits, "_" and "-"',
      'destinations.yaml: destination "a b": URL: loopback targets are not allowed (localhost)',
      'destinations.yaml: destination "a b": User: required for BasicAuthentication',
      'destinations.yaml: destination "a b": Password: required for BasicAuthentication',
      'destinations.yaml: destination "a b": TrustAll: expected "true" or "false"',
    ]);
  });

  test('an entry that is not a mapping', () => {
    expect(problems('orders', { ...ctx, index: 3 })).toEqual([
      'destinations.yaml: entry 3: expected a mapping of destination properties, got a string',
    ]);
    expect(problems(null, { ...ctx, index: 1 })).toEqual([
      'destinations.yaml: entry 1: expected a mapping of destination properties, got no value',
    ]);
  });

  test('error objects carry source, destination, property and message separately', () => {
    try {
      parseDestination({ Name: 'orders', URL: 'http://127.0.0.1/' }, ctx);
      throw new Error('expected a DestinationParseError');
    } catch (error) {
      const [e] = (error as DestinationParseError).errors;
      expect({ ...e }).toEqual({
        source: 'destinations.yaml',
        destination: 'orders',
        property: 'URL',
        message: 'loopback targets are not allowed (127.0.0.1)',
        index: undefined,
      });
      expect(JSON.stringify({ e })).toBe(
        JSON.stringify({
          e: 'destinations.yaml: destination "orders": URL: loopback targets are not allowed (127.0.0.1)',
        }),
      );
    }
  });

  test('no message contains a secret value', () => {
    const secret = 'hunter2-do-not-print';
    const lines = [
      ...problems({ Name: 'orders', URL: `https://me:${secret}@orders.example.test/` }),
      ...problems({ ...http, Password: { value: secret } }),
      ...problems({ ...http, 'URL.headers.authorization': `Bearer ${secret}\n` }),
      ...problems({ ...http, Authentication: 'OAuth2ClientCredentials', clientSecret: secret }),
      ...problems({ ...http, tokenServiceURL: `https://c:${secret}@auth.example.test` }),
    ];
    expect(lines.length).toBeGreaterThanOrEqual(5);
    expect(lines.join('\n').includes(secret)).toBe(false);
  });
});

describe('isLoopbackHost', () => {
  test.each([
    ['localhost', true],
    ['a.localhost', true],
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['0.0.0.0', true],
    ['[::1]', true],
    ['::', true],
    ['[::ffff:7f00:1]', true],
    ['128.0.0.1', false],
    ['198.51.100.1', false],
    ['[2001:db8::1]', false],
    ['localhost.example.test', false],
    ['orders', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopbackHost(host)).toBe(expected);
  });
});

describe('parseDestinations', () => {
  test('a bad destination is reported and skipped; the others load', () => {
    const { destinations, errors } = parseDestinations(
      [
        http,
        { Name: 'bad', URL: 'http://localhost/' },
        { Name: 'billing', URL: 'https://billing.example.test' },
      ],
      ctx,
    );
    expect(destinations.map((d) => d.name)).toEqual(['orders', 'billing']);
    expect(errors.map(String)).toEqual([
      'destinations.yaml: destination "bad": URL: loopback targets are not allowed (localhost)',
    ]);
    expect(errors[0]?.index).toBe(2);
  });

  test('a duplicate name is an error for the later one; the first stays', () => {
    const { destinations, errors } = parseDestinations(
      [http, { ...http, URL: 'https://other.example.test' }],
      ctx,
    );
    expect(destinations.map((d) => d.url?.host)).toEqual(['orders.example.test']);
    expect(errors.map(String)).toEqual([
      'destinations.yaml: destination "orders": Name: defined more than once; the first one is used',
    ]);
  });

  test('names that differ only in case are rejected (DNS is case-insensitive)', () => {
    const { destinations, errors } = parseDestinations([http, { ...http, Name: 'Orders' }], ctx);
    expect(destinations.map((d) => d.name)).toEqual(['orders']);
    expect(errors.map(String)).toEqual([
      'destinations.yaml: destination "Orders": Name: differs only in case from "orders"; names must be unique ignoring case because DNS names are case-insensitive',
    ]);
  });

  test('`{ destinations: [...] }` is accepted; anything else is one error', () => {
    expect(parseDestinations({ destinations: [http] }, ctx).destinations).toHaveLength(1);
    expect(parseDestinations({ Name: 'orders' }, ctx).errors.map(String)).toEqual([
      'destinations.yaml: expected a list of destinations (or a mapping with a "destinations" list), got a mapping',
    ]);
    expect(parseDestinations('x', ctx).errors.map(String)).toEqual([
      'destinations.yaml: expected a list of destinations (or a mapping with a "destinations" list), got a string',
    ]);
    expect(parseDestinations([], ctx)).toEqual({ destinations: [], errors: [] });
  });
});

describe('the SAP Cloud SDK shape (the `destinations` environment variable)', () => {
  test('camelCase fields map to the same Destination as SAP properties', () => {
    const sdk = parse({
      name: 'orders',
      url: 'https://orders.example.test/api',
      type: 'HTTP',
      proxyType: 'Internet',
      authentication: 'OAuth2Password',
      username: 'u',
      password: 'p',
      tokenServiceUrl: 'https://auth.example.test/oauth/token',
      tokenServiceUser: 'tsu',
      tokenServicePassword: 'tsp',
      clientId: 'c',
      clientSecret: 's',
      isTrustingAllCertificates: true,
      cloudConnectorLocationId: 'loc',
      headers: { 'x-api-version': '2' },
      queryParameters: { 'sap-client': '100' },
      sapClient: '100',
      originalProperties: { ignored: true },
      authTokens: [],
    });
    const sap = parse({
      Name: 'orders',
      URL: 'https://orders.example.test/api',
      Type: 'HTTP',
      ProxyType: 'Internet',
      Authentication: 'OAuth2Password',
      User: 'u',
      Password: 'p',
      tokenServiceURL: 'https://auth.example.test/oauth/token',
      tokenServiceUser: 'tsu',
      tokenServicePassword: 'tsp',
      clientId: 'c',
      clientSecret: 's',
      TrustAll: 'true',
      CloudConnectorLocationId: 'loc',
      'URL.headers.x-api-version': '2',
      'URL.queries.sap-client': '100',
      'sap-client': '100',
    });
    expect(sdk).toEqual(sap);
  });

  test("the SDK's authentication fallback: user and password → BasicAuthentication, else NoAuthentication", () => {
    expect(
      parse({ name: 'a', url: 'https://a.example.test', username: 'u', password: 'p' }).authentication,
    ).toBe('BasicAuthentication');
    expect(parse({ name: 'a', url: 'https://a.example.test' }).authentication).toBe('NoAuthentication');
  });

  test('SDK shape errors use SAP property names', () => {
    expect(problems({ name: 'orders', url: 'http://localhost:4004' })).toEqual([
      'destinations.yaml: destination "orders": URL: loopback targets are not allowed (localhost)',
    ]);
    expect(problems({ name: 'orders', url: 'https://a.example.test', headers: 'x' })).toEqual([
      'destinations.yaml: destination "orders": headers: expected a mapping of names to values',
    ]);
  });
});

// The connectivity proxy stand-in's pure parts: SAP's SOCKS5 0x80 frames (built by hand here, byte
// for byte), the HTTP request-line checks and header handling, location and access-control look-ups,
// config parsing, and JWT verification.
import { describe, expect, test } from '@jest/globals';
import crypto from 'node:crypto';
import {
  ConfigError,
  parseOptions,
  pathAllowed,
  resolveLocation,
  resolveSystem,
  type LocationConfig,
} from '../peers/connectivity-config.js';
import { backendHeaders, bearerToken, checkProxyRequest } from '../peers/connectivity-http.js';
import {
  buildConnectRequest,
  buildJwtAuthFrame,
  buildReply,
  MAX_JWT_BYTES,
  parseConnectRequest,
  parseGreeting,
  parseJwtAuthFrame,
  replyName,
  SOCKS_REPLY,
} from '../peers/connectivity-socks5.js';
import { clientIdOf, decodeJwt, type Jwk, KeySet, verifyJwt } from '../peers/jwt.js';

const JWT_155 = `eyJhbGciOiJSUzI1NiJ9.${'a'.repeat(155 - 21 - 1 - 10)}.${'s'.repeat(10)}`;

/** Every proper prefix of a complete frame must ask for more bytes. */
function expectNeedsMoreForPrefixes(parse: (b: Buffer) => { kind: string }, frame: Buffer): void {
  for (let n = 0; n < frame.length; n++) expect(parse(frame.subarray(0, n)).kind).toBe('more');
}

describe('SOCKS5 0x80 sub-negotiation frame', () => {
  test('known-good: 155-character JWT, no location id → 161 bytes', () => {
    expect(JWT_155).toHaveLength(155);
    const byHand = Buffer.concat([Buffer.from([0x01, 0, 0, 0, 155]), Buffer.from(JWT_155), Buffer.from([0])]);
    expect(byHand).toHaveLength(161);
    expect(buildJwtAuthFrame(JWT_155)).toEqual(byHand);
    expect(parseJwtAuthFrame(byHand)).toEqual({ kind: 'ok', length: 161, jwt: JWT_155, locationId: '' });
  });

  test('known-good: with location id cloud-sdk-js → 177 bytes ending 10 + Y2xvdWQtc2RrLWpz', () => {
    const byHand = Buffer.concat([
      Buffer.from([0x01, 0, 0, 0, 155]),
      Buffer.from(JWT_155),
      Buffer.from([0x10]),
      Buffer.from('Y2xvdWQtc2RrLWpz'),
    ]);
    expect(byHand).toHaveLength(177);
    const built = buildJwtAuthFrame(JWT_155, 'cloud-sdk-js');
    expect(built).toEqual(byHand);
    expect(built.subarray(-17).toString('latin1')).toBe('\x10Y2xvdWQtc2RrLWpz');
    expect(parseJwtAuthFrame(byHand)).toMatchObject({ kind: 'ok', length: 177, locationId: 'cloud-sdk-js' });
    expectNeedsMoreForPrefixes(parseJwtAuthFrame, byHand);
  });

  test('bytes after the frame are not consumed', () => {
    const frame = Buffer.concat([buildJwtAuthFrame('x.y.z', 'loc'), Buffer.from([0x05, 0x01])]);
    expect(parseJwtAuthFrame(frame)).toMatchObject({ kind: 'ok', length: frame.length - 2, jwt: 'x.y.z' });
  });

  test('rejects: wrong version, JWT length 0, oversized length, location id not base64', () => {
    const frame = buildJwtAuthFrame('a.b.c');
    expect(parseJwtAuthFrame(Buffer.concat([Buffer.from([0x02]), frame.subarray(1)]))).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('version 0x02'),
    });
    expect(parseJwtAuthFrame(Buffer.from([0x01, 0, 0, 0, 0, 0]))).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('length is 0'),
    });
    const huge = Buffer.from([0x01, 0, 0, 0, 0]);
    huge.writeUInt32BE(MAX_JWT_BYTES + 1, 1);
    expect(parseJwtAuthFrame(huge)).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('exceeds'),
    });
    const raw = Buffer.concat([
      Buffer.from([0x01, 0, 0, 0, 5]),
      Buffer.from('a.b.c'),
      Buffer.from([3]),
      Buffer.from('a!b'),
    ]);
    expect(parseJwtAuthFrame(raw)).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('base64'),
    });
  });
});

describe('SOCKS5 greeting and request', () => {
  test('greeting: methods, incomplete, not SOCKS5, no methods', () => {
    expect(parseGreeting(Buffer.from([0x05, 0x01, 0x80]))).toEqual({
      kind: 'ok',
      length: 3,
      methods: [0x80],
    });
    expect(parseGreeting(Buffer.from([0x05, 0x02, 0x00, 0x80]))).toEqual({
      kind: 'ok',
      length: 4,
      methods: [0, 0x80],
    });
    expectNeedsMoreForPrefixes(parseGreeting, Buffer.from([0x05, 0x02, 0x00, 0x80]));
    expect(parseGreeting(Buffer.from([0x04, 0x01, 0x00]))).toMatchObject({ kind: 'error' });
    expect(parseGreeting(Buffer.from([0x05, 0x00]))).toMatchObject({ kind: 'error' });
  });

  test('CONNECT by IPv4, domain name and IPv6', () => {
    const v4 = Buffer.from([0x05, 0x01, 0x00, 0x01, 203, 0, 113, 2, 0x15, 0x38]);
    expect(buildConnectRequest('203.0.113.2', 5432)).toEqual(v4);
    expect(parseConnectRequest(v4)).toEqual({
      kind: 'ok',
      length: 10,
      command: 1,
      addressType: 1,
      host: '203.0.113.2',
      port: 5432,
    });
    expectNeedsMoreForPrefixes(parseConnectRequest, v4);
    const domain = Buffer.concat([
      Buffer.from([0x05, 0x01, 0x00, 0x03, 11]),
      Buffer.from('db.internal'),
      Buffer.from([0x15, 0x38]),
    ]);
    expect(buildConnectRequest('db.internal', 5432)).toEqual(domain);
    expect(parseConnectRequest(domain)).toMatchObject({
      kind: 'ok',
      length: domain.length,
      host: 'db.internal',
      port: 5432,
    });
    expectNeedsMoreForPrefixes(parseConnectRequest, domain);
    const v6 = Buffer.concat([
      Buffer.from([0x05, 0x01, 0x00, 0x04]),
      Buffer.alloc(15),
      Buffer.from([1, 0, 80]),
    ]);
    expect(parseConnectRequest(v6)).toMatchObject({
      kind: 'ok',
      addressType: 4,
      host: '0:0:0:0:0:0:0:1',
      port: 80,
    });
  });

  test('request errors: version, reserved byte, unknown address type, empty domain', () => {
    expect(parseConnectRequest(Buffer.from([0x04, 1, 0, 1, 1, 2, 3, 4, 0, 80]))).toMatchObject({
      kind: 'error',
    });
    expect(parseConnectRequest(Buffer.from([0x05, 1, 1, 1, 1, 2, 3, 4, 0, 80]))).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('reserved'),
    });
    expect(parseConnectRequest(Buffer.from([0x05, 1, 0, 0x09, 1]))).toMatchObject({
      kind: 'error',
      message: expect.stringContaining('address type'),
    });
    expect(parseConnectRequest(Buffer.from([0x05, 1, 0, 3, 0, 0, 80]))).toMatchObject({ kind: 'error' });
  });

  test('replies carry the code and an IPv4 bound address; names follow SAP', () => {
    expect(buildReply(SOCKS_REPLY.NETWORK_UNREACHABLE)).toEqual(Buffer.from([5, 3, 0, 1, 0, 0, 0, 0, 0, 0]));
    expect(buildReply(0, { address: '203.0.113.1', port: 40000 })).toEqual(
      Buffer.from([5, 0, 0, 1, 203, 0, 113, 1, 0x9c, 0x40]),
    );
    expect(replyName(0x02)).toBe('FORBIDDEN');
    expect(replyName(0x05)).toBe('CONNECTION_REFUSED');
    expect(replyName(0x42)).toBe('UNKNOWN_0x42');
  });
});

describe('HTTP proxy request checks', () => {
  test('CONNECT and https:// → 405 with the reason', () => {
    expect(checkProxyRequest('CONNECT', 'erp.internal:443')).toMatchObject({ ok: false, status: 405 });
    const https = checkProxyRequest('GET', 'https://erp.internal/x');
    expect(https).toMatchObject({ ok: false, status: 405, message: expect.stringContaining('https://') });
  });

  test('origin-form, garbage and user info → 400', () => {
    expect(checkProxyRequest('GET', '/path')).toMatchObject({ ok: false, status: 400 });
    expect(checkProxyRequest('GET', 'http://')).toMatchObject({ ok: false, status: 400 });
    expect(checkProxyRequest('GET', 'http://u:p@erp.internal/')).toMatchObject({ ok: false, status: 400 });
  });

  test('absolute http:// → host, port (default 80), path with query', () => {
    expect(checkProxyRequest('GET', 'http://ERP.internal/a/b?c=1')).toEqual({
      ok: true,
      host: 'erp.internal',
      port: 80,
      path: '/a/b?c=1',
    });
    expect(checkProxyRequest('POST', 'http://10.0.0.1:8000')).toEqual({
      ok: true,
      host: '10.0.0.1',
      port: 8000,
      path: '/',
    });
    expect(checkProxyRequest('GET', 'http://[2001:db8::1]:81/')).toMatchObject({
      ok: true,
      host: '2001:db8::1',
      port: 81,
    });
  });

  test('bearer tokens', () => {
    expect(bearerToken('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(bearerToken('bearer  abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  test('backend headers: proxy and SAP headers dropped, Host internal, principal added', () => {
    const out = backendHeaders(
      {
        host: 'erp.internal',
        'proxy-authorization': 'Bearer x',
        'sap-connectivity-authentication': 'Bearer y',
        'sap-connectivity-scc-location_id': 'loc',
        'x-onprem-principal': 'mallory',
        connection: 'keep-alive, x-hop',
        'x-hop': '1',
        accept: 'application/json',
        authorization: 'Basic keep-me',
      },
      { host: '203.0.113.2', port: 8080 },
      { name: 'alice', type: 'user', tenant: 't1' },
    );
    expect(out).toEqual({
      host: '203.0.113.2:8080',
      accept: 'application/json',
      authorization: 'Basic keep-me',
      'x-onprem-principal': 'alice',
      'x-onprem-principal-type': 'user',
      'x-onprem-tenant': 't1',
    });
    expect(backendHeaders({}, { host: '2001:db8::2', port: 80 }).host).toBe('[2001:db8::2]');
  });
});

describe('locations and access control', () => {
  const loc: LocationConfig = {
    systems: [
      {
        virtualHost: 'erp.internal',
        virtualPort: 80,
        internalHost: '203.0.113.2',
        internalPort: 8000,
        paths: ['/sap/opu', '/x/'],
      },
      {
        virtualHost: 'db.internal',
        virtualPort: 5432,
        internalHost: '203.0.113.2',
        internalPort: 5432,
        protocol: 'tcp',
      },
    ],
  };
  const locations = { '': loc, off: { connected: false, systems: [] } };

  test('location: default, unknown, disconnected', () => {
    expect(resolveLocation(locations, '')).toEqual({ ok: true, location: loc });
    expect(resolveLocation(locations, 'nowhere')).toEqual({ ok: false, reason: 'unknown' });
    expect(resolveLocation(locations, 'off')).toEqual({ ok: false, reason: 'disconnected' });
    expect(resolveLocation(locations, 'constructor')).toEqual({ ok: false, reason: 'unknown' });
  });

  test('system: by virtual host and port, protocol, path', () => {
    expect(resolveSystem(loc, 'ERP.internal', 80, 'http', '/sap/opu/odata?x')).toMatchObject({ ok: true });
    expect(resolveSystem(loc, 'erp.internal', 81, 'http', '/sap/opu')).toEqual({
      ok: false,
      reason: 'no-mapping',
    });
    expect(resolveSystem(loc, 'erp.internal', 80, 'http', '/sap/opux')).toEqual({
      ok: false,
      reason: 'path-denied',
    });
    expect(resolveSystem(loc, 'erp.internal', 80, 'tcp')).toEqual({ ok: false, reason: 'wrong-protocol' });
    expect(resolveSystem(loc, 'db.internal', 5432, 'tcp')).toMatchObject({
      ok: true,
      system: { internalPort: 5432 },
    });
    expect(resolveSystem(loc, 'db.internal', 5432, 'http', '/')).toEqual({
      ok: false,
      reason: 'wrong-protocol',
    });
  });

  test('paths: the path itself and everything below it', () => {
    expect(pathAllowed(['/'], '/anything')).toBe(true);
    expect(pathAllowed(['/a'], '/a')).toBe(true);
    expect(pathAllowed(['/a'], '/a/b')).toBe(true);
    expect(pathAllowed(['/a'], '/ab')).toBe(false);
    expect(pathAllowed(['/a/'], '/a/b?q')).toBe(true);
  });
});

describe('config parsing', () => {
  const good = { keys: [], clientIds: ['cp'], locations: { '': { systems: [] } } };

  test('accepts a minimal config and fills defaults', () => {
    expect(parseOptions(good)).toEqual({
      keys: [],
      clientIds: ['cp'],
      locations: { '': { connected: true, systems: [] } },
    });
  });

  test.each([
    [{ ...good, clientIds: [] }, 'config.clientIds'],
    [{ ...good, keys: undefined }, 'exactly one of jwksUrl'],
    [{ ...good, jwksUrl: 'ftp://x' }, 'exactly one of jwksUrl'],
    [{ ...good, locations: {} }, 'config.locations'],
    [{ ...good, httpPort: 70000 }, 'config.httpPort'],
    [{ ...good, socksAuthFailure: 'never' }, 'config.socksAuthFailure'],
    [{ ...good, trusted: 'yes' }, 'config.trusted'],
    [{ ...good, locations: { x: { connected: 'yes', systems: [] } } }, 'config.locations["x"].connected'],
    [
      {
        ...good,
        locations: {
          '': { systems: [{ virtualHost: 'a', virtualPort: 0, internalHost: 'b', internalPort: 1 }] },
        },
      },
      'config.locations[""].systems[0].virtualPort',
    ],
    [
      {
        ...good,
        locations: {
          '': {
            systems: [
              {
                virtualHost: 'a',
                virtualPort: 1,
                internalHost: 'b',
                internalPort: 1,
                protocol: 'tcp',
                paths: ['/'],
              },
            ],
          },
        },
      },
      'paths only applies to http',
    ],
  ])('rejects %j naming %s', (raw, field) => {
    expect(() => parseOptions(raw)).toThrow(ConfigError);
    expect(() => parseOptions(raw)).toThrow(field);
  });
});

describe('JWT verification', () => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk: Jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig' };
  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = Math.floor(Date.now() / 1000);
  const sign = (payload: object, header: object = { alg: 'RS256', kid: 'k1' }, key = privateKey): string => {
    const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${input}.${crypto.sign('sha256', Buffer.from(input), key).toString('base64url')}`;
  };

  test('a valid RS256 token gives its claims; cid wins over client_id', () => {
    const token = sign({ exp: now + 60, cid: 'cp', client_id: 'other', zid: 't1' });
    expect(verifyJwt(token, [jwk])).toMatchObject({ cid: 'cp', zid: 't1' });
    expect(clientIdOf(verifyJwt(token, [jwk]))).toBe('cp');
    expect(clientIdOf({ client_id: 'x' })).toBe('x');
  });

  test.each([
    ['another key signed it', () => sign({ exp: now + 60 }, undefined, other.privateKey), 'does not verify'],
    ['it expired', () => sign({ exp: now - 120 }), 'expired'],
    ['it has no exp', () => sign({}), 'no exp'],
    ['nbf is in the future', () => sign({ exp: now + 600, nbf: now + 300 }), 'not valid yet'],
    ['its kid is unknown', () => sign({ exp: now + 60 }, { alg: 'RS256', kid: 'k2' }), 'no RSA signing key'],
    ['alg is none', () => sign({ exp: now + 60 }, { alg: 'none', kid: 'k1' }), 'not accepted'],
    ['alg is HS256', () => sign({ exp: now + 60 }, { alg: 'HS256', kid: 'k1' }), 'not accepted'],
    [
      'the payload was changed',
      () =>
        sign({ exp: now + 60 }).replace(
          /\.[^.]+\./,
          `.${Buffer.from('{"exp":9999999999}').toString('base64url')}.`,
        ),
      'does not verify',
    ],
    ['it is not a JWT', () => 'opaque-token', '3 dot-separated parts'],
    ['its header is not JSON', () => 'bm90IGpzb24.e30.c2ln', 'not JSON'],
  ])('rejects a token when %s', (_what, make, message) => {
    expect(() => verifyJwt(make(), [jwk])).toThrow(message);
  });

  test('errors never contain the token', () => {
    const token = sign({ exp: now - 1000 });
    try {
      verifyJwt(token, [jwk]);
      throw new Error('not rejected');
    } catch (error) {
      expect((error as Error).message).not.toContain(token.split('.')[1]);
    }
  });

  test('decodeJwt exposes header and payload', () => {
    expect(decodeJwt(sign({ exp: 1, a: 'b' })).header).toEqual({ alg: 'RS256', kid: 'k1' });
  });

  test('KeySet with given keys', async () => {
    const set = new KeySet({ keys: [jwk] });
    await expect(set.verify(sign({ exp: now + 60, cid: 'cp' }))).resolves.toMatchObject({ cid: 'cp' });
    await expect(set.verify(sign({ exp: now + 60 }, undefined, other.privateKey))).rejects.toThrow(
      'does not verify',
    );
  });
});

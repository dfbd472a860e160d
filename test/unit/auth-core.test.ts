// Pure parts of dataplane/auth: Basic header, PEM splitting, token request building and validation,
// token response parsing, lifetimes, cache keys, and the token cache with a fake fetch and clock.
import { describe, expect, test } from '@jest/globals';
import { basicAuthorization } from '../../dataplane/auth/basic.js';
import { splitPem } from '../../dataplane/auth/pem.js';
import {
  type CachedToken,
  credentialFingerprint,
  refreshTime,
  TokenCache,
  tokenCacheKey,
  tokenLifetimeMs,
} from '../../dataplane/auth/token-cache.js';
import {
  buildTokenRequest,
  requestSecrets,
  tokenEndpointLabel,
  tokenRequestSpec,
} from '../../dataplane/auth/token-request.js';
import { parseTokenResponse, scrub } from '../../dataplane/auth/token-response.js';
import { AuthConfigError, TokenServiceError } from '../../dataplane/auth/types.js';
import { destination, fakeClock } from './auth-helpers.js';

const SECRET = 'cc-Secret+/=%1';

describe('basicAuthorization', () => {
  test('base64 of user:password in UTF-8', () => {
    expect(basicAuthorization('alice', 'pä:ss')).toBe(
      `Basic ${Buffer.from('alice:pä:ss').toString('base64')}`,
    );
    expect(basicAuthorization('u', '')).toBe('Basic dTo=');
  });
});

describe('splitPem', () => {
  test('finds every block in order with its label', () => {
    const text = [
      'junk',
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----',
      '-----BEGIN ENCRYPTED PRIVATE KEY-----\nBBBB\n-----END ENCRYPTED PRIVATE KEY-----',
      '-----BEGIN CERTIFICATE-----\r\nCCCC\r\n-----END CERTIFICATE-----',
    ].join('\n');
    const blocks = splitPem(text);
    expect(blocks.map((b) => b.label)).toEqual(['CERTIFICATE', 'ENCRYPTED PRIVATE KEY', 'CERTIFICATE']);
    expect(blocks[1]?.text).toBe(
      '-----BEGIN ENCRYPTED PRIVATE KEY-----\nBBBB\n-----END ENCRYPTED PRIVATE KEY-----\n',
    );
  });
  test('a mismatched END is not a block', () => {
    expect(splitPem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----')).toEqual([]);
  });
});

describe('tokenRequestSpec', () => {
  const oauth = (o: Parameters<typeof destination>[0] = {}) =>
    destination({
      authentication: 'OAuth2ClientCredentials',
      tokenServiceURL: 'https://auth.example.test/oauth/token',
      clientId: 'orders-client',
      clientSecret: SECRET,
      ...o,
    });

  test.each([
    [{ tokenServiceURL: undefined }, 'property tokenServiceURL is missing'],
    [{ clientId: '' }, 'property clientId is missing'],
    [{ clientSecret: undefined }, 'property clientSecret is missing'],
    [{ tokenServiceURL: 'auth.example.test/token' }, 'tokenServiceURL is not an absolute URL'],
    [{ tokenServiceURL: 'ftp://auth.example.test/token' }, 'tokenServiceURL must be http or https, not ftp:'],
    [
      { tokenServiceURL: 'https://u:p@auth.example.test/token' },
      'tokenServiceURL must not carry credentials',
    ],
  ])('%j → AuthConfigError: %s', (o, message) => {
    expect(() => tokenRequestSpec(oauth(o), 'client_credentials')).toThrow(AuthConfigError);
    expect(() => tokenRequestSpec(oauth(o), 'client_credentials')).toThrow(
      `destination "orders" (OAuth2ClientCredentials): ${message}`,
    );
  });

  test('password grant needs User and Password', () => {
    const d = oauth({ authentication: 'OAuth2Password', user: 'alice' });
    expect(() => tokenRequestSpec(d, 'password')).toThrow(
      'destination "orders" (OAuth2Password): property Password is missing',
    );
  });

  test('tokenServiceUser replaces clientSecret as the required credential', () => {
    const spec = tokenRequestSpec(
      oauth({ clientSecret: undefined, tokenServiceUser: 'tsu', tokenServicePassword: 'tsp' }),
      'client_credentials',
    );
    expect(spec).toMatchObject({
      clientId: 'orders-client',
      tokenServiceUser: 'tsu',
      tokenServicePassword: 'tsp',
    });
  });

  test('endpoint label: host and path, no query', () => {
    const spec = tokenRequestSpec(
      oauth({ tokenServiceURL: 'https://auth.example.test:8443/oauth/token?x=1' }),
      'client_credentials',
    );
    expect(tokenEndpointLabel(spec.url)).toBe('auth.example.test:8443/oauth/token');
  });
});

describe('buildTokenRequest', () => {
  const base = {
    url: new URL('https://auth.example.test/oauth/token'),
    clientId: 'sb-orders!t1',
    clientSecret: SECRET,
  };

  test('client credentials with HTTP Basic (raw values) and scope', () => {
    const { headers, body } = buildTokenRequest(
      { ...base, grant: 'client_credentials', scope: 'read write' },
      'basic',
    );
    expect(headers.authorization).toBe(`Basic ${Buffer.from(`sb-orders!t1:${SECRET}`).toString('base64')}`);
    expect(headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(new URLSearchParams(body))).toEqual({
      grant_type: 'client_credentials',
      scope: 'read write',
    });
  });

  test('body mode: client_id and client_secret form-encoded, no Authorization', () => {
    const { headers, body } = buildTokenRequest({ ...base, grant: 'client_credentials' }, 'body');
    expect(headers.authorization).toBeUndefined();
    expect(body).toContain('client_secret=cc-Secret%2B%2F%3D%251');
    expect(Object.fromEntries(new URLSearchParams(body))).toEqual({
      grant_type: 'client_credentials',
      client_id: 'sb-orders!t1',
      client_secret: SECRET,
    });
  });

  test('password grant carries username and password', () => {
    const { body } = buildTokenRequest(
      { ...base, grant: 'password', username: 'alice', password: 'pw&=1' },
      'basic',
    );
    expect(Object.fromEntries(new URLSearchParams(body))).toEqual({
      grant_type: 'password',
      username: 'alice',
      password: 'pw&=1',
    });
  });

  test('tokenServiceUser: Basic with it, client_id in the body, no client_secret anywhere', () => {
    const spec = {
      ...base,
      grant: 'client_credentials' as const,
      tokenServiceUser: 'tsu',
      tokenServicePassword: 'tsp',
    };
    for (const mode of ['basic', 'body'] as const) {
      const { headers, body } = buildTokenRequest(spec, mode);
      expect(headers.authorization).toBe(`Basic ${Buffer.from('tsu:tsp').toString('base64')}`);
      expect(Object.fromEntries(new URLSearchParams(body))).toEqual({
        grant_type: 'client_credentials',
        client_id: 'sb-orders!t1',
      });
    }
  });

  test('requestSecrets lists the secrets and their Basic encodings', () => {
    const secrets = requestSecrets({ ...base, grant: 'password', username: 'alice', password: 'pw' });
    expect(secrets).toEqual([SECRET, 'pw', Buffer.from(`sb-orders!t1:${SECRET}`).toString('base64')]);
  });
});

describe('parseTokenResponse', () => {
  const ctx = { destination: 'orders', endpoint: 'auth.example.test/oauth/token', secrets: [SECRET] };
  const prefix = 'token service for destination "orders" at auth.example.test/oauth/token';
  const parse = (status: number, body: string, contentType?: string) =>
    parseTokenResponse(ctx, { status, body, ...(contentType ? { contentType } : {}) });
  const failure = (status: number, body: string, contentType?: string): TokenServiceError => {
    try {
      parse(status, body, contentType);
    } catch (error) {
      expect(error).toBeInstanceOf(TokenServiceError);
      return error as TokenServiceError;
    }
    throw new Error('expected a TokenServiceError');
  };

  test('a token with expires_in (number or numeric string) and token_type', () => {
    expect(parse(200, '{"access_token":"abc.DEF-1_~+/=","expires_in":3600,"token_type":"bearer"}')).toEqual({
      accessToken: 'abc.DEF-1_~+/=',
      expiresInSeconds: 3600,
      tokenType: 'bearer',
    });
    expect(parse(200, '{"access_token":"t","expires_in":"120"}')).toEqual({
      accessToken: 't',
      expiresInSeconds: 120,
    });
    expect(parse(200, '{"access_token":"t","expires_in":-5}')).toEqual({ accessToken: 't' });
  });

  test('an OAuth error: status, error and description, scrubbed', () => {
    const e = failure(
      401,
      JSON.stringify({ error: 'invalid_client', error_description: `bad secret ${SECRET}` }),
    );
    expect(e.message).toBe(`${prefix} answered 401: invalid_client (bad secret ***)`);
    expect(e.status).toBe(401);
  });

  test('a non-2xx non-JSON body is not quoted', () => {
    const e = failure(500, `<html>oops ${SECRET}</html>`, 'text/html');
    expect(e.message).toBe(`${prefix} answered 500`);
  });

  test('200 with HTML', () => {
    expect(failure(200, '<html>login</html>', 'text/html; charset=utf-8').message).toBe(
      `${prefix} answered 200 with a body that is not a JSON object (content-type text/html; charset=utf-8)`,
    );
  });

  test('200 JSON without a token, with one that would break the header, and a redirect', () => {
    expect(failure(200, '{"token":"x","error":"server_error"}').message).toBe(
      `${prefix} answered 200 without an access_token: server_error`,
    );
    expect(failure(200, '{"access_token":"a\\r\\nx-injected: 1"}').message).toContain(
      'not allowed in an HTTP header',
    );
    expect(failure(302, '').message).toBe(`${prefix} answered 302 (redirects are not followed)`);
  });

  test('long descriptions are cut and control characters flattened', () => {
    const e = failure(
      400,
      JSON.stringify({ error: 'invalid_request', error_description: `a\nb${'x'.repeat(500)}` }),
    );
    expect(e.message).not.toContain('\n');
    expect(e.message.length).toBeLessThan(400);
  });

  test('scrub removes plain and URL-encoded forms', () => {
    expect(scrub(`a ${SECRET} b ${encodeURIComponent(SECRET)} c`, [SECRET])).toBe('a *** b *** c');
  });
});

describe('token lifetime', () => {
  const policy = { marginMs: 60_000, defaultLifetimeMs: 300_000 };
  test('margin is 60 s, but at most 10% of the lifetime', () => {
    expect(refreshTime(0, 3_600_000, 60_000)).toBe(3_540_000);
    expect(refreshTime(0, 120_000, 60_000)).toBe(108_000);
    expect(refreshTime(1000, 5_000, 60_000)).toBe(5_500);
  });
  test('expires_in first, then a JWT exp, then the default', () => {
    const now = 1_700_000_000_000;
    const jwt = [
      'e30',
      Buffer.from(JSON.stringify({ exp: now / 1000 + 90 })).toString('base64url'),
      'sig',
    ].join('.');
    expect(tokenLifetimeMs(jwt, 30, now, policy)).toBe(30_000);
    expect(tokenLifetimeMs(jwt, undefined, now, policy)).toBe(90_000);
    expect(tokenLifetimeMs('opaque', undefined, now, policy)).toBe(300_000);
    expect(tokenLifetimeMs('a.b.c', undefined, now, policy)).toBe(300_000);
  });
});

describe('tokenCacheKey', () => {
  const salt = Buffer.alloc(32, 7);
  const parts = {
    destination: 'd',
    tokenUrl: 'https://a/t',
    clientId: 'c',
    grant: 'password',
    user: 'u',
    credentials: 'x',
  };
  test('distinct parts give distinct keys, unambiguously', () => {
    expect(tokenCacheKey(parts)).not.toBe(tokenCacheKey({ ...parts, user: 'v' }));
    expect(tokenCacheKey({ ...parts, destination: 'a","b' })).not.toBe(
      tokenCacheKey({ ...parts, destination: 'a', clientId: 'b' }),
    );
    expect(tokenCacheKey(parts)).not.toBe(tokenCacheKey({ ...parts, tenant: 't1' }));
  });
  test('the credential fingerprint changes with a secret and does not contain it', () => {
    const a = credentialFingerprint(salt, [SECRET, undefined]);
    expect(a).not.toBe(credentialFingerprint(salt, [`${SECRET}2`, undefined]));
    expect(a).not.toBe(credentialFingerprint(Buffer.alloc(32, 8), [SECRET, undefined]));
    expect(a).not.toContain(SECRET);
  });
});

describe('TokenCache', () => {
  const lifetime = 100_000;
  function setup() {
    const clock = fakeClock(1_000_000);
    const stale: unknown[] = [];
    const cache = new TokenCache({ clock, onStale: (_k, e) => void stale.push(e) });
    let fetches = 0;
    let fail: Error | undefined;
    const gates: Array<() => void> = [];
    let gated = false;
    const fetch = async (): Promise<CachedToken> => {
      const n = ++fetches;
      const obtainedAt = clock.now();
      if (gated) await new Promise<void>((resolve) => gates.push(resolve));
      if (fail) throw fail;
      return {
        value: `t${n}`,
        obtainedAt,
        expiresAt: obtainedAt + lifetime,
        refreshAt: refreshTime(obtainedAt, lifetime, 60_000),
      };
    };
    return {
      clock,
      cache,
      stale,
      fetch,
      fetches: () => fetches,
      setFail: (e: Error | undefined) => void (fail = e),
      gate: (on: boolean) => void (gated = on),
      release: () => gates.splice(0).forEach((g) => g()),
    };
  }

  test('hit until refreshAt, then one new fetch', async () => {
    const s = setup();
    expect((await s.cache.get('k', s.fetch)).outcome).toBe('fetched');
    s.clock.advance(89_999);
    expect(await s.cache.get('k', s.fetch)).toMatchObject({ outcome: 'hit', token: { value: 't1' } });
    s.clock.advance(1);
    expect(await s.cache.get('k', s.fetch)).toMatchObject({ outcome: 'fetched', token: { value: 't2' } });
    expect(s.fetches()).toBe(2);
  });

  test('concurrent callers share one fetch, and share its failure; failures are not cached', async () => {
    const s = setup();
    s.gate(true);
    s.setFail(new Error('down'));
    const all = Array.from({ length: 50 }, () => s.cache.get('k', s.fetch));
    await Promise.resolve();
    s.release();
    const results = await Promise.allSettled(all);
    expect(results.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'down')).toBe(
      true,
    );
    expect(s.fetches()).toBe(1);
    s.gate(false);
    s.setFail(undefined);
    expect((await s.cache.get('k', s.fetch)).token.value).toBe('t2');
  });

  test('forceRefresh: concurrent callers with the same rejected token cause one fetch; stragglers get the new one', async () => {
    const s = setup();
    await s.cache.get('k', s.fetch);
    s.clock.advance(5_000);
    s.gate(true);
    const first = Array.from({ length: 20 }, () =>
      s.cache.get('k', s.fetch, { forceRefresh: true, rejectedToken: 't1' }),
    );
    await Promise.resolve();
    s.release();
    expect(new Set((await Promise.all(first)).map((r) => r.token.value))).toEqual(new Set(['t2']));
    s.gate(false);
    const late = await s.cache.get('k', s.fetch, { forceRefresh: true, rejectedToken: 't1' });
    expect(late).toMatchObject({ outcome: 'hit', token: { value: 't2' } });
    expect(s.fetches()).toBe(2);
    expect((await s.cache.get('k', s.fetch, { forceRefresh: true, rejectedToken: 't2' })).token.value).toBe(
      't3',
    );
  });

  test('forceRefresh without the rejected token: a token younger than the grace period counts as refreshed', async () => {
    const s = setup();
    await s.cache.get('k', s.fetch);
    s.clock.advance(500);
    expect((await s.cache.get('k', s.fetch, { forceRefresh: true })).outcome).toBe('hit');
    s.clock.advance(500);
    expect((await s.cache.get('k', s.fetch, { forceRefresh: true })).token.value).toBe('t2');
    expect(s.fetches()).toBe(2);
  });

  test('a failed refresh serves the still-valid token; a failed forced refresh does not', async () => {
    const s = setup();
    await s.cache.get('k', s.fetch);
    s.clock.advance(95_000);
    s.setFail(new Error('down'));
    expect(await s.cache.get('k', s.fetch)).toMatchObject({ outcome: 'stale', token: { value: 't1' } });
    expect(s.stale).toHaveLength(1);
    await expect(s.cache.get('k', s.fetch, { forceRefresh: true, rejectedToken: 't1' })).rejects.toThrow(
      'down',
    );
    s.clock.advance(10_000);
    await expect(s.cache.get('k', s.fetch)).rejects.toThrow('down');
  });

  test('keys are independent', async () => {
    const s = setup();
    const [a, b] = await Promise.all([s.cache.get('a', s.fetch), s.cache.get('b', s.fetch)]);
    expect(a.token.value).not.toBe(b.token.value);
    expect(s.cache.size).toBe(2);
  });
});

// OAuth destinations against a real token server (oidc-provider, test/peers/oauth-server.ts) on
// 127.0.0.1: real tokens for both grants, reuse until near expiry, single-flight under 100 concurrent
// calls, forced refresh, and every failure the dataplane must turn into a clean 502 — with no secret
// in any error message or log line.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { createAuthenticator, type DataplaneAuthenticator } from '../../dataplane/auth/authenticator.js';
import type { AuthenticatorOptions } from '../../dataplane/auth/authenticator.js';
import { AuthConfigError, type AuthResult, TokenServiceError } from '../../dataplane/auth/types.js';
import type { Destination } from '../../dataplane/destinations/types.js';
import { type OAuthServer, startOAuthServer } from '../peers/oauth-server.js';
import {
  closedPort,
  destination,
  fakeClock,
  makeCerts,
  memoryLogger,
  startHttp,
  type TestCerts,
} from './auth-helpers.js';

const CLIENT_SECRET = 'cc-Secret-41f9a0';
const PLUS_SECRET = 'plus+Secret/2=';
const USER_PASSWORD = 'alice-Pw-8812';
const TS_PASSWORD = 'tsp-Secret-3377';

let server: OAuthServer;
const authenticators: DataplaneAuthenticator[] = [];
const logs: string[] = [];
const errorMessages: string[] = [];

beforeAll(async () => {
  server = await startOAuthServer({
    clients: [
      { clientId: 'orders-client', clientSecret: CLIENT_SECRET, scope: 'read write' },
      { clientId: 'plus-client', clientSecret: PLUS_SECRET, grantTypes: ['client_credentials'] },
      { clientId: 'ts-user', clientSecret: TS_PASSWORD, grantTypes: ['client_credentials'], scope: 'admin' },
    ],
    users: [{ username: 'alice', password: USER_PASSWORD }],
    accessTokenTtlSeconds: 3600,
  });
});
afterAll(async () => {
  await server.stop();
});
afterEach(async () => {
  await Promise.all(authenticators.splice(0).map((a) => a.close()));
});

function authenticator(options: Partial<AuthenticatorOptions> = {}) {
  const { logger, lines } = memoryLogger();
  const auth = createAuthenticator({ logger, ...options });
  authenticators.push(auth);
  const origLines = lines;
  // every line any test logs is checked for secrets at the end
  const collect = () => logs.push(...origLines.splice(0));
  return { auth, lines: origLines, collect };
}

function clientCredentials(overrides: Partial<Destination> = {}): Destination {
  return destination({
    authentication: 'OAuth2ClientCredentials',
    tokenServiceURL: server.tokenUrl,
    clientId: 'orders-client',
    clientSecret: CLIENT_SECRET,
    ...overrides,
  });
}

function bearer(result: AuthResult): string {
  expect(result.headers).toHaveLength(1);
  const [name, value] = result.headers[0] ?? ['', ''];
  expect(name).toBe('authorization');
  expect(value).toMatch(/^Bearer [A-Za-z0-9\-._~+/]+=*$/);
  return value.slice('Bearer '.length);
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    errorMessages.push((error as Error).message);
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

describe('simple types', () => {
  test('NoAuthentication: nothing', async () => {
    const { auth } = authenticator();
    expect(await auth.authenticate(destination())).toEqual({ headers: [] });
  });

  test('BasicAuthentication: User:Password', async () => {
    const { auth } = authenticator();
    const result = await auth.authenticate(
      destination({ authentication: 'BasicAuthentication', user: 'bob', password: USER_PASSWORD }),
    );
    expect(result).toEqual({
      headers: [['authorization', `Basic ${Buffer.from(`bob:${USER_PASSWORD}`).toString('base64')}`]],
    });
  });

  test('BasicAuthentication without User, or with a colon in it → AuthConfigError', async () => {
    const { auth } = authenticator();
    const e = await failure(
      auth.authenticate(destination({ authentication: 'BasicAuthentication', password: 'x' })),
    );
    expect(e).toBeInstanceOf(AuthConfigError);
    expect(e.message).toBe('destination "orders" (BasicAuthentication): property User is missing');
    const colon = await failure(
      auth.authenticate(destination({ authentication: 'BasicAuthentication', user: 'a:b', password: 'x' })),
    );
    expect(colon.message).toContain("contains ':'");
  });
});

describe('client credentials and password grants with real tokens', () => {
  test('client credentials: a token the server issued to the client, with the scope', async () => {
    const { auth, lines } = authenticator();
    const token = bearer(await auth.authenticate(clientCredentials({ scope: 'read' })));
    expect(await server.verify(token)).toMatchObject({
      clientId: 'orders-client',
      grantType: 'client_credentials',
      scope: 'read',
    });
    const fetched = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'token fetched');
    expect(fetched).toMatchObject({
      destination: 'orders',
      grant: 'client_credentials',
      clientAuth: 'basic',
    });
    expect(String(fetched?.tokenService)).toMatch(/^127\.0\.0\.1:\d+\/oauth\/token$/);
  });

  test('password grant: a token for the user', async () => {
    const { auth } = authenticator();
    const before = server.issuedCount({ grantType: 'password' });
    const token = bearer(
      await auth.authenticate(
        clientCredentials({
          authentication: 'OAuth2Password',
          user: 'alice',
          password: USER_PASSWORD,
          scope: 'write',
        }),
      ),
    );
    expect(await server.verify(token)).toMatchObject({
      clientId: 'orders-client',
      grantType: 'password',
      username: 'alice',
      scope: 'write',
    });
    expect(server.issuedCount({ grantType: 'password' })).toBe(before + 1);
  });

  test('password grant tokens are cached per user', async () => {
    const { auth } = authenticator();
    const before = server.issuedCount();
    const alice = clientCredentials({
      authentication: 'OAuth2Password',
      user: 'alice',
      password: USER_PASSWORD,
    });
    const a1 = bearer(await auth.authenticate(alice));
    const a2 = bearer(await auth.authenticate(alice));
    expect(a2).toBe(a1);
    const cc = bearer(await auth.authenticate(clientCredentials()));
    expect(cc).not.toBe(a1);
    expect(server.issuedCount() - before).toBe(2);
  });

  test('tokenServiceUser/tokenServicePassword are the Basic credentials for the token service', async () => {
    const { auth } = authenticator();
    const token = bearer(
      await auth.authenticate(
        clientCredentials({
          clientId: 'ts-user',
          clientSecret: undefined,
          tokenServiceUser: 'ts-user',
          tokenServicePassword: TS_PASSWORD,
        }),
      ),
    );
    expect(await server.verify(token)).toMatchObject({ clientId: 'ts-user' });
  });

  test('a secret Basic cannot carry unencoded (+) works through the client_secret_post fallback, remembered', async () => {
    const { auth, lines, collect } = authenticator();
    const d = clientCredentials({ clientId: 'plus-client', clientSecret: PLUS_SECRET });
    const requests = server.requestCount();
    const token = bearer(await auth.authenticate(d));
    expect(await server.verify(token)).toMatchObject({ clientId: 'plus-client' });
    expect(server.requestCount() - requests).toBe(2);
    // the next fetch (forced) goes straight to the body form
    bearer(
      await auth.authenticate(d, {
        forceRefresh: true,
        rejected: { headers: [['authorization', `Bearer ${token}`]] },
      }),
    );
    expect(server.requestCount() - requests).toBe(3);
    expect(lines.some((l) => l.includes('"clientAuth":"body"'))).toBe(true);
    collect();
  });
});

describe('reuse and single flight', () => {
  test('reused until near expiry (fake clock): 60 s margin, capped at 10% of the lifetime', async () => {
    const short = await startOAuthServer({
      clients: [{ clientId: 'c', clientSecret: CLIENT_SECRET }],
      accessTokenTtlSeconds: 120,
    });
    try {
      const clock = fakeClock();
      const { auth } = authenticator({ clock });
      const d = clientCredentials({ tokenServiceURL: short.tokenUrl, clientId: 'c' });
      const t1 = bearer(await auth.authenticate(d));
      clock.advance(107_000);
      expect(bearer(await auth.authenticate(d))).toBe(t1);
      expect(short.issuedCount()).toBe(1);
      clock.advance(1_000); // 108 s = 120 s - min(60 s, 12 s)
      const t2 = bearer(await auth.authenticate(d));
      expect(t2).not.toBe(t1);
      expect(short.issuedCount()).toBe(2);
      expect(await short.verify(t2)).toBeDefined();
    } finally {
      await short.stop();
    }
  });

  test('reused until near expiry (real clock, 2 s tokens)', async () => {
    const short = await startOAuthServer({
      clients: [{ clientId: 'c', clientSecret: CLIENT_SECRET }],
      accessTokenTtlSeconds: 2,
    });
    try {
      const { auth } = authenticator();
      const d = clientCredentials({ tokenServiceURL: short.tokenUrl, clientId: 'c' });
      const t1 = bearer(await auth.authenticate(d));
      await new Promise((r) => setTimeout(r, 1000));
      expect(bearer(await auth.authenticate(d))).toBe(t1);
      await new Promise((r) => setTimeout(r, 900)); // past 1.8 s = 2 s - 10%
      const t2 = bearer(await auth.authenticate(d));
      expect(t2).not.toBe(t1);
      expect(short.issuedCount()).toBe(2);
    } finally {
      await short.stop();
    }
  });

  test('100 parallel calls → exactly one token issued; metrics see 1 fetch, 100 misses', async () => {
    const events: string[] = [];
    const { auth } = authenticator({
      metrics: {
        onTokenFetch: (e) => events.push(`fetch:${e.outcome}:${e.destination}`),
        onCacheHit: (e) => events.push(`hit:${e.outcome}`),
        onCacheMiss: (e) => events.push(`miss:${e.outcome}`),
      },
    });
    server.setResponseDelay(100); // all 100 arrive while the fetch runs
    const before = server.issuedCount();
    try {
      const results = await Promise.all(
        Array.from({ length: 100 }, () => auth.authenticate(clientCredentials())),
      );
      expect(new Set(results.map(bearer)).size).toBe(1);
    } finally {
      server.setResponseDelay(0);
    }
    expect(server.issuedCount() - before).toBe(1);
    expect(events.filter((e) => e === 'fetch:ok:orders')).toHaveLength(1);
    expect(events.filter((e) => e === 'miss:fetched')).toHaveLength(1);
    expect(events.filter((e) => e === 'miss:shared')).toHaveLength(99);
    await auth.authenticate(clientCredentials());
    expect(events.at(-1)).toBe('hit:hit');
  });

  test('forceRefresh after a 401: concurrent callers with the same stale token → exactly one new token', async () => {
    const { auth } = authenticator();
    const first = await auth.authenticate(clientCredentials());
    const stale = bearer(first);
    const before = server.issuedCount();
    server.setResponseDelay(50);
    let refreshed: AuthResult[];
    try {
      refreshed = await Promise.all(
        Array.from({ length: 30 }, () =>
          auth.authenticate(clientCredentials(), { forceRefresh: true, rejected: first }),
        ),
      );
    } finally {
      server.setResponseDelay(0);
    }
    const fresh = new Set(refreshed.map(bearer));
    expect(fresh.size).toBe(1);
    expect(fresh.has(stale)).toBe(false);
    // a straggler rejected with the old token gets the new one without another fetch
    const late = await auth.authenticate(clientCredentials(), { forceRefresh: true, rejected: first });
    expect(fresh.has(bearer(late))).toBe(true);
    expect(server.issuedCount() - before).toBe(1);
  });

  test('a changed client secret (destination reload) fetches a new token', async () => {
    const { auth } = authenticator();
    const before = server.issuedCount();
    await auth.authenticate(clientCredentials());
    await auth.authenticate(clientCredentials());
    const e = await failure(auth.authenticate(clientCredentials({ clientSecret: 'rotated-Secret-1' })));
    expect(e).toBeInstanceOf(TokenServiceError);
    expect(server.issuedCount() - before).toBe(1);
  });
});

describe('failures', () => {
  test('wrong client secret → TokenServiceError with the OAuth error, status, no secret', async () => {
    const { auth, lines, collect } = authenticator();
    const wrong = 'wrong-Secret-9931';
    const e = await failure(auth.authenticate(clientCredentials({ clientSecret: wrong })));
    expect(e).toBeInstanceOf(TokenServiceError);
    expect((e as TokenServiceError).status).toBe(401);
    expect(e.message).toMatch(
      /^token service for destination "orders" at 127\.0\.0\.1:\d+\/oauth\/token answered 401: invalid_client \(client authentication failed\)$/,
    );
    expect(e.message).not.toContain(wrong);
    expect(lines.join('\n')).not.toContain(wrong);
    expect(lines.some((l) => l.includes('"msg":"token fetch failed"') && l.includes('"status":401'))).toBe(
      true,
    );
    collect();
  });

  test('wrong user password (password grant) → invalid_grant', async () => {
    const { auth, collect } = authenticator();
    const e = await failure(
      auth.authenticate(
        clientCredentials({ authentication: 'OAuth2Password', user: 'alice', password: 'nope-Pw-1' }),
      ),
    );
    expect(e).toBeInstanceOf(TokenServiceError);
    expect(e.message).toMatch(/answered 400: invalid_grant \(grant request is invalid\)$/);
    collect();
  });

  test('a scope the client may not have → invalid_scope', async () => {
    const { auth, collect } = authenticator();
    const e = await failure(auth.authenticate(clientCredentials({ scope: 'admin' })));
    expect(e.message).toContain('answered 400: invalid_scope');
    collect();
  });

  test('token server down (closed port) → unreachable: ECONNREFUSED', async () => {
    const { auth, collect } = authenticator();
    const port = await closedPort();
    const e = await failure(
      auth.authenticate(clientCredentials({ tokenServiceURL: `http://127.0.0.1:${port}/oauth/token` })),
    );
    expect(e).toBeInstanceOf(TokenServiceError);
    expect(e.message).toMatch(
      new RegExp(
        `^token service for destination "orders" at 127\\.0\\.0\\.1:${port}/oauth/token unreachable: ECONNREFUSED`,
      ),
    );
    collect();
  });

  test('token server slower than the read timeout → did not answer', async () => {
    const { auth, collect } = authenticator();
    server.setResponseDelay(1500);
    try {
      const e = await failure(auth.authenticate(clientCredentials({ readTimeoutMs: 300 })));
      expect(e.message).toMatch(/did not answer within 300 ms$/);
    } finally {
      server.setResponseDelay(0);
    }
    collect();
  });

  test('non-JSON and token-less answers from a non-OAuth server', async () => {
    const http = await startHttp((req, res) => {
      if (req.url === '/html') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<html>login page, you sent ${req.headers.authorization}</html>`);
      } else if (req.url === '/error-page') {
        res.writeHead(503, { 'content-type': 'text/html' });
        res.end('<h1>maintenance</h1>');
      } else if (req.url === '/echo') {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              error: 'invalid_client',
              error_description: `got ${body} ${req.headers.authorization}`,
            }),
          );
        });
      } else {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"token_type":"bearer"}');
      }
    });
    try {
      const { auth, lines, collect } = authenticator();
      const at = (p: string) => clientCredentials({ tokenServiceURL: `${http.url}${p}` });
      expect((await failure(auth.authenticate(at('/html')))).message).toMatch(
        /answered 200 with a body that is not a JSON object \(content-type text\/html\)$/,
      );
      expect((await failure(auth.authenticate(at('/error-page')))).message).toMatch(/answered 503$/);
      expect((await failure(auth.authenticate(at('/none')))).message).toMatch(
        /answered 200 without an access_token$/,
      );
      const echo = await failure(auth.authenticate(at('/echo')));
      expect(echo.message).toContain('answered 401: invalid_client (got ');
      expect(echo.message).toContain('***');
      expect(echo.message).not.toContain(CLIENT_SECRET);
      expect(echo.message).not.toContain(encodeURIComponent(CLIENT_SECRET));
      expect(lines.join('\n')).not.toContain(CLIENT_SECRET);
      collect();
    } finally {
      await http.stop();
    }
  });

  test('failures are not cached: the next call after the server comes back gets a token', async () => {
    const { auth, collect } = authenticator();
    const d = clientCredentials();
    const port = await closedPort();
    await failure(auth.authenticate({ ...d, tokenServiceURL: `http://127.0.0.1:${port}/oauth/token` }));
    bearer(await auth.authenticate(d));
    collect();
  });

  test('token server down during a refresh: the still-valid token is served, then the failure shows', async () => {
    const short = await startOAuthServer({
      clients: [{ clientId: 'c', clientSecret: CLIENT_SECRET }],
      accessTokenTtlSeconds: 600,
    });
    const clock = fakeClock();
    const { auth, lines, collect } = authenticator({ clock });
    const d = clientCredentials({ tokenServiceURL: short.tokenUrl, clientId: 'c' });
    let token: string;
    try {
      token = bearer(await auth.authenticate(d));
    } finally {
      await short.stop();
    }
    clock.advance(550_000); // past refreshAt (540 s), before expiry (600 s)
    expect(bearer(await auth.authenticate(d))).toBe(token);
    expect(
      lines.some(
        (l) =>
          l.includes('serving the cached token until it expires') && l.includes('"destination":"orders"'),
      ),
    ).toBe(true);
    clock.advance(50_000);
    const e = await failure(auth.authenticate(d));
    expect(e.message).toContain('unreachable: ECONNREFUSED');
    collect();
  });

  test('a throwing metrics hook does not break authentication', async () => {
    const boom = () => {
      throw new Error('metrics broken');
    };
    const { auth } = authenticator({ metrics: { onTokenFetch: boom, onCacheHit: boom, onCacheMiss: boom } });
    bearer(await auth.authenticate(clientCredentials()));
    bearer(await auth.authenticate(clientCredentials()));
  });

  test('concurrent callers share one failed fetch', async () => {
    const flaky = await startHttp((_req, res) => {
      setTimeout(() => {
        res.writeHead(500);
        res.end();
      }, 50);
    });
    try {
      const { auth, collect } = authenticator();
      const d = clientCredentials({
        tokenServiceURL: `${flaky.url}/token`,
        clientSecret: PLUS_SECRET.replace('+', '-'),
      });
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => auth.authenticate(d)));
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
      expect(flaky.requests()).toBe(1);
      collect();
    } finally {
      await flaky.stop();
    }
  });

  test('missing OAuth properties → AuthConfigError, no request', async () => {
    const { auth } = authenticator();
    const before = server.requestCount();
    const e = await failure(auth.authenticate(clientCredentials({ clientId: undefined })));
    expect(e).toBeInstanceOf(AuthConfigError);
    expect(e.message).toBe('destination "orders" (OAuth2ClientCredentials): property clientId is missing');
    expect(server.requestCount()).toBe(before);
  });
});

describe('https token service', () => {
  let certs: TestCerts;
  let tlsServer: OAuthServer;
  beforeAll(async () => {
    certs = makeCerts();
    tlsServer = await startOAuthServer({
      clients: [{ clientId: 'c', clientSecret: CLIENT_SECRET }],
      tls: { cert: certs.serverCert, key: certs.serverKey },
    });
  });
  afterAll(async () => {
    await tlsServer.stop();
    certs.remove();
  });

  test('trusted through tokenServiceCa', async () => {
    expect(tlsServer.tokenUrl).toMatch(/^https:/);
    const { auth } = authenticator({ tokenServiceCa: [certs.caPem] });
    const token = bearer(
      await auth.authenticate(clientCredentials({ tokenServiceURL: tlsServer.tokenUrl, clientId: 'c' })),
    );
    expect(await tlsServer.verify(token)).toMatchObject({ clientId: 'c' });
  });

  test('an untrusted certificate fails before any secret is sent; TrustAll does not apply to the token service', async () => {
    const { auth, collect } = authenticator();
    const before = tlsServer.requestCount();
    const e = await failure(
      auth.authenticate(
        clientCredentials({ tokenServiceURL: tlsServer.tokenUrl, clientId: 'c', trustAll: true }),
      ),
    );
    expect(e).toBeInstanceOf(TokenServiceError);
    expect(e.message).toMatch(/: TLS handshake failed: [A-Z_]+ .*is the token service's CA trusted\?$/);
    expect(tlsServer.requestCount()).toBe(before);
    collect();
  });
});

// Runs last (jest runs tests in declaration order): it checks what all tests above produced.
describe('secrets', () => {
  test('no secret appears in any error message or log line of this file', () => {
    const secrets = [
      CLIENT_SECRET,
      PLUS_SECRET,
      USER_PASSWORD,
      TS_PASSWORD,
      'wrong-Secret-9931',
      'rotated-Secret-1',
      'nope-Pw-1',
    ];
    const text = [...errorMessages, ...logs].join('\n');
    expect(errorMessages.length).toBeGreaterThanOrEqual(10);
    expect(logs.length).toBeGreaterThanOrEqual(10);
    for (const secret of secrets) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(encodeURIComponent(secret));
      expect(text).not.toContain(Buffer.from(secret).toString('base64'));
    }
    // nor a bearer token
    expect(text).not.toMatch(/Bearer [A-Za-z0-9]/);
  });
});

// The token server peer itself (test/peers/oauth-server.ts): it issues real tokens for both grants,
// rejects what an OAuth server must reject, verifies and introspects what it issued, counts, and its
// CLI starts it from JSON.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { main, parseCliConfig } from '../peers/oauth-server-cli.js';
import { type Jwk, verifyJwt } from '../peers/jwt.js';
import { type OAuthServer, startOAuthServer } from '../peers/oauth-server.js';
import { makeCerts } from './auth-helpers.js';

let server: OAuthServer;
beforeAll(async () => {
  server = await startOAuthServer({
    clients: [
      { clientId: 'svc', clientSecret: 'svc-secret', grantTypes: ['client_credentials'], scope: 'read' },
      { clientId: 'app', clientSecret: 'app-secret', grantTypes: ['password'] },
    ],
    users: [{ username: 'alice', password: 'alice-pw' }],
    accessTokenTtlSeconds: 1,
  });
});
afterAll(async () => {
  await server.stop();
});

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

async function post(url: string, auth: string, form: Record<string, string>) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('token endpoint', () => {
  test('client credentials: an opaque Bearer token with expires_in', async () => {
    const { status, json } = await post(server.tokenUrl, basic('svc', 'svc-secret'), {
      grant_type: 'client_credentials',
      scope: 'read',
    });
    expect(status).toBe(200);
    expect(json).toMatchObject({ token_type: 'Bearer', expires_in: 1, scope: 'read' });
    expect(typeof json.access_token).toBe('string');
    expect(await server.verify(String(json.access_token))).toMatchObject({
      clientId: 'svc',
      grantType: 'client_credentials',
      scope: 'read',
    });
  });

  test('password grant: valid user → token for the user; wrong password → invalid_grant', async () => {
    const ok = await post(server.tokenUrl, basic('app', 'app-secret'), {
      grant_type: 'password',
      username: 'alice',
      password: 'alice-pw',
    });
    expect(ok.status).toBe(200);
    expect(await server.verify(String(ok.json.access_token))).toMatchObject({
      username: 'alice',
      grantType: 'password',
    });
    const bad = await post(server.tokenUrl, basic('app', 'app-secret'), {
      grant_type: 'password',
      username: 'alice',
      password: 'nope',
    });
    expect(bad).toMatchObject({ status: 400, json: { error: 'invalid_grant' } });
  });

  test('a grant the client is not registered for, a wrong secret, an unknown grant', async () => {
    const notAllowed = await post(server.tokenUrl, basic('svc', 'svc-secret'), {
      grant_type: 'password',
      username: 'alice',
      password: 'alice-pw',
    });
    expect(notAllowed.status).toBe(400);
    expect(notAllowed.json.error_description).toBe('requested grant type is not allowed for this client');
    const wrong = await post(server.tokenUrl, basic('svc', 'nope'), { grant_type: 'client_credentials' });
    expect(wrong).toMatchObject({ status: 401, json: { error: 'invalid_client' } });
    const unknown = await post(server.tokenUrl, basic('svc', 'svc-secret'), { grant_type: 'urn:x' });
    expect(unknown).toMatchObject({ status: 400, json: { error: 'unsupported_grant_type' } });
  });

  test('tokens expire after the configured lifetime', async () => {
    const { json } = await post(server.tokenUrl, basic('svc', 'svc-secret'), {
      grant_type: 'client_credentials',
    });
    const token = String(json.access_token);
    expect(await server.verify(token)).toBeDefined();
    await new Promise((r) => setTimeout(r, 1100));
    expect(await server.verify(token)).toBeUndefined();
    expect(await server.verify('never-issued')).toBeUndefined();
  });
});

test('introspection (RFC 7662) for clients of the server', async () => {
  const { json } = await post(server.tokenUrl, basic('svc', 'svc-secret'), {
    grant_type: 'client_credentials',
  });
  const active = await post(server.introspectionUrl, basic('app', 'app-secret'), {
    token: String(json.access_token),
  });
  expect(active).toMatchObject({
    status: 200,
    json: { active: true, client_id: 'svc', token_type: 'Bearer' },
  });
  const inactive = await post(server.introspectionUrl, basic('app', 'app-secret'), { token: 'forged' });
  expect(inactive.json).toEqual({ active: false });
});

test('counters: issuedCount with filters, requestCount, /_peer/stats', async () => {
  const issued = server.issuedCount();
  const requests = server.requestCount();
  await post(server.tokenUrl, basic('svc', 'svc-secret'), { grant_type: 'client_credentials' });
  await post(server.tokenUrl, basic('svc', 'bad'), { grant_type: 'client_credentials' });
  expect(server.issuedCount() - issued).toBe(1);
  expect(server.requestCount() - requests).toBe(2);
  expect(server.issuedCount({ clientId: 'app', grantType: 'password', username: 'alice' })).toBe(1);
  const stats = (await (await fetch(`${server.url}/_peer/stats`)).json()) as Record<string, unknown>;
  expect(stats).toMatchObject({ issued: server.issuedCount(), requests: server.requestCount() });
});

test('a response delay holds the answer back', async () => {
  server.setResponseDelay(300);
  try {
    const started = Date.now();
    const { status } = await post(server.tokenUrl, basic('svc', 'svc-secret'), {
      grant_type: 'client_credentials',
    });
    expect(status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
  } finally {
    server.setResponseDelay(0);
  }
});

describe('CLI', () => {
  test('config errors', () => {
    expect(() => parseCliConfig([])).toThrow('usage: oauth-server-cli.js <json> | --config <file>');
    expect(() => parseCliConfig(['{'])).toThrow(/^config is not JSON/);
    expect(() => parseCliConfig(['{"clients":[]}'])).toThrow('config.clients must list at least one client');
    expect(() => parseCliConfig(['{"clients":[{}],"tls":{"certFile":"x"}}'])).toThrow(
      'config.tls needs certFile and keyFile',
    );
  });

  test('main: bad config → exit code 2 and a message', async () => {
    const err: string[] = [];
    const result = await main(['nope'], { out: () => {}, err: (l) => err.push(l) });
    expect(result).toEqual({ exitCode: 2 });
    expect(err[0]).toMatch(/^oauth-server: config is not JSON/);
  });

  test('main: https server from a config file, "oauth ready <url>"', async () => {
    const certs = makeCerts();
    const out: string[] = [];
    try {
      const file = path.join(certs.dir, 'oauth.json');
      writeFileSync(path.join(certs.dir, 'server.crt'), certs.serverCert);
      writeFileSync(
        file,
        JSON.stringify({
          host: '127.0.0.1',
          clients: [{ clientId: 'c', clientSecret: 's' }],
          accessTokenTtlSeconds: 5,
          tls: { certFile: path.join(certs.dir, 'server.crt'), keyFile: path.join(certs.dir, 'server.key') },
        }),
      );
      const { server: started, exitCode } = await main(['--config', file], {
        out: (l) => out.push(l),
        err: () => {},
      });
      expect(exitCode).toBe(0);
      try {
        expect(out).toEqual([`oauth ready ${started?.url}`]);
        expect(started?.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
        expect(started?.tokenUrl).toBe(`${started?.url}/oauth/token`);
      } finally {
        await started?.stop();
      }
    } finally {
      certs.remove();
    }
  });
});

describe('JWT access tokens (accessTokenFormat: jwt)', () => {
  let jwtServer: OAuthServer;
  beforeAll(async () => {
    jwtServer = await startOAuthServer({
      zoneId: 'tenant-a',
      clients: [
        { clientId: 'cp', clientSecret: 'cp-secret', accessTokenFormat: 'jwt', scope: 'read' },
        { clientId: 'b', clientSecret: 'b-secret', accessTokenFormat: 'jwt', zoneId: 'tenant-b' },
        { clientId: 'plain', clientSecret: 'plain-secret' },
      ],
      users: [{ username: 'alice', password: 'alice-pw' }],
      accessTokenTtlSeconds: 120,
    });
  });
  afterAll(async () => {
    await jwtServer.stop();
  });

  const decode = (jwt: string) =>
    jwt
      .split('.')
      .slice(0, 2)
      .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>);

  test('client credentials: an RS256 JWT with XSUAA-like claims, verifiable with the JWKS', async () => {
    const { status, json } = await post(jwtServer.tokenUrl, basic('cp', 'cp-secret'), {
      grant_type: 'client_credentials',
      scope: 'read',
    });
    expect(status).toBe(200);
    const token = String(json.access_token);
    const [header, payload] = decode(token);
    expect(header).toMatchObject({ alg: 'RS256', typ: 'at+jwt', kid: expect.any(String) });
    expect(payload).toMatchObject({
      iss: jwtServer.url,
      client_id: 'cp',
      cid: 'cp',
      zid: 'tenant-a',
      grant_type: 'client_credentials',
      scope: 'read',
      aud: 'cp',
    });
    expect((payload!.exp as number) - (payload!.iat as number)).toBe(120);
    const jwks = (await (await fetch(jwtServer.jwksUrl)).json()) as { keys: Jwk[] };
    const keys = (await (await fetch(jwtServer.tokenKeysUrl)).json()) as { keys: Jwk[] };
    expect(keys.keys.map((k) => k.kid)).toEqual(jwks.keys.map((k) => k.kid));
    expect(jwks.keys[0]).not.toHaveProperty('d'); // public part only
    expect(verifyJwt(token, jwks.keys)).toMatchObject({ cid: 'cp' });
    expect(verifyJwt(token, keys.keys)).toMatchObject({ cid: 'cp' });
    expect(await jwtServer.verify(token)).toEqual({
      clientId: 'cp',
      grantType: 'client_credentials',
      scope: 'read',
      exp: payload!.exp,
      format: 'jwt',
      zoneId: 'tenant-a',
    });
  });

  test('password grant: a user JWT with user_name; per-client tenant', async () => {
    const { json } = await post(jwtServer.tokenUrl, basic('b', 'b-secret'), {
      grant_type: 'password',
      username: 'alice',
      password: 'alice-pw',
    });
    const [, payload] = decode(String(json.access_token));
    expect(payload).toMatchObject({
      sub: 'alice',
      user_name: 'alice',
      cid: 'b',
      zid: 'tenant-b',
      grant_type: 'password',
    });
    expect(await jwtServer.verify(String(json.access_token))).toMatchObject({
      username: 'alice',
      format: 'jwt',
    });
    expect(jwtServer.issuedCount({ grantType: 'password', clientId: 'b' })).toBe(1);
  });

  test('other clients keep opaque tokens; a forged JWT does not verify', async () => {
    const { json } = await post(jwtServer.tokenUrl, basic('plain', 'plain-secret'), {
      grant_type: 'client_credentials',
    });
    expect(String(json.access_token).split('.')).toHaveLength(1);
    expect(await jwtServer.verify(String(json.access_token))).toMatchObject({
      format: 'opaque',
      clientId: 'plain',
    });
    const { json: cc } = await post(jwtServer.tokenUrl, basic('cp', 'cp-secret'), {
      grant_type: 'client_credentials',
    });
    const [h, , s] = String(cc.access_token).split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ cid: 'cp', client_id: 'cp', exp: 9999999999, iss: jwtServer.url })).toString('base64url')}.${s}`;
    expect(await jwtServer.verify(forged)).toBeUndefined();
  });

  test('a resource indicator of its own is refused (invalid_target)', async () => {
    const { status, json } = await post(jwtServer.tokenUrl, basic('plain', 'plain-secret'), {
      grant_type: 'client_credentials',
      resource: 'https://elsewhere.example/',
    });
    expect(status).toBe(400);
    expect(json.error).toBe('invalid_target');
  });
});

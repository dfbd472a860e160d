// A real OAuth 2.0 token server for tests: oidc-provider (the certified OpenID Connect / OAuth server
// library) with the client credentials grant, and the resource owner password grant added through its
// registerGrantType extension API (oidc-provider does not ship one; RFC 6749 section 4.3). Opaque
// access tokens by default, kept in memory; `verify()` and the RFC 7662 introspection endpoint tell
// whether a token is one this server issued and is still valid. A client with accessTokenFormat 'jwt'
// gets RS256-signed JWT access tokens instead (oidc-provider's resource indicators feature with a
// default resource per client), with XSUAA-like claims (cid, zid, user_name, grant_type); the public
// keys are served at oidc-provider's jwks_uri and at XSUAA's /token_keys. Runs in-process (unit tests, loopback) and as a
// standalone process in a lab namespace (oauth-server-cli.ts).
//
// Besides the OAuth endpoints the server answers GET /_peer/stats with its counters (JSON), so tests
// outside the process can count token fetches.
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import Provider, { errors, type OidcContext, type StoredToken } from 'oidc-provider';
import { type Jwk, JwtError, verifyJwt } from './jwt.js';

/** The resource indicator JWT clients' tokens are issued for (oidc-provider needs one for JWT format). */
const JWT_RESOURCE = 'urn:detour:lab:xsuaa';
const JWKS_PATH = '/jwks';
const TOKEN_KEYS_PATH = '/token_keys';

export type OAuthGrantType = 'client_credentials' | 'password';

export interface OAuthClientConfig {
  clientId: string;
  clientSecret: string;
  /** default: both */
  grantTypes?: OAuthGrantType[];
  /** space-separated scopes the client may request */
  scope?: string;
  /** 'jwt': RS256 JWT access tokens (XSUAA-like claims); default 'opaque' */
  accessTokenFormat?: 'opaque' | 'jwt';
  /** the tenant (XSUAA identity zone) put into the JWT's `zid`; default the server's zoneId */
  zoneId?: string;
}

export interface OAuthUserConfig {
  username: string;
  password: string;
}

export interface OAuthServerOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** default 0 (ephemeral) */
  port?: number;
  clients: OAuthClientConfig[];
  users?: OAuthUserConfig[];
  /** lifetime of access tokens of both grants; default 3600 */
  accessTokenTtlSeconds?: number;
  /** default /oauth/token (the path SAP XSUAA uses) */
  tokenPath?: string;
  /** default /oauth/introspect */
  introspectionPath?: string;
  /** serve https with this certificate and key (PEM) */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** delay every token response by this long (slow token service) */
  responseDelayMs?: number;
  /** default tenant (`zid` claim) of JWT access tokens; default 'lab-tenant' */
  zoneId?: string;
}

export interface IssuedToken {
  grantType: OAuthGrantType;
  clientId: string;
  username?: string;
}

export interface VerifiedToken {
  clientId: string;
  grantType: OAuthGrantType;
  username?: string;
  scope?: string;
  /** seconds since the epoch */
  exp: number;
  format: 'opaque' | 'jwt';
  /** tenant, JWTs only */
  zoneId?: string;
}

export interface OAuthServer {
  /** the issuer, e.g. http://127.0.0.1:41234 */
  url: string;
  tokenUrl: string;
  introspectionUrl: string;
  /** the JSON Web Key Set with the public keys JWT access tokens are signed with (oidc-provider's jwks_uri) */
  jwksUrl: string;
  /** the same key set at XSUAA's path */
  tokenKeysUrl: string;
  /** the public signing keys */
  publicKeys(): Jwk[];
  /** tokens issued (optionally only those matching the filter) */
  issuedCount(filter?: Partial<IssuedToken>): number;
  /** token requests received, successful or not */
  requestCount(): number;
  /** the issued token's details, or undefined when this server did not issue it or it expired */
  verify(token: string): Promise<VerifiedToken | undefined>;
  setResponseDelay(ms: number): void;
  stop(): Promise<void>;
}

export async function startOAuthServer(options: OAuthServerOptions): Promise<OAuthServer> {
  const host = options.host ?? '127.0.0.1';
  const tokenPath = options.tokenPath ?? '/oauth/token';
  const introspectionPath = options.introspectionPath ?? '/oauth/introspect';
  const ttl = options.accessTokenTtlSeconds ?? 3600;
  const users = new Map((options.users ?? []).map((u) => [u.username, u.password]));
  const issued: IssuedToken[] = [];
  let requests = 0;
  let delayMs = options.responseDelayMs ?? 0;

  const server = options.tls
    ? https.createServer({ cert: options.tls.cert, key: options.tls.key })
    : http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const url = `${options.tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const scopes = new Set<string>();
  for (const c of options.clients) for (const s of (c.scope ?? '').split(' ')) if (s) scopes.add(s);
  const clientScopes = new Map(
    options.clients.map((c) => [c.clientId, new Set((c.scope ?? '').split(' ').filter(Boolean))]),
  );
  const jwtClients = new Map(
    options.clients
      .filter((c) => c.accessTokenFormat === 'jwt')
      .map((c) => [c.clientId, c.zoneId ?? options.zoneId ?? 'lab-tenant']),
  );
  const key = signingKey();
  const publicJwk = publicKeyOf(key);
  const resourceServerInfo = (clientId: string) => ({
    scope: [...(clientScopes.get(clientId) ?? [])].join(' '),
    audience: clientId,
    accessTokenFormat: 'jwt' as const,
    accessTokenTTL: ttl,
    jwt: { sign: { alg: 'RS256' } },
  });

  const provider = new Provider(url, {
    adapter: memoryAdapter(),
    clients: options.clients.map((c) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      grant_types: c.grantTypes ?? ['client_credentials', 'password'],
      redirect_uris: [],
      response_types: [],
      ...(c.scope ? { scope: c.scope } : {}),
    })),
    scopes: [...scopes],
    features: {
      clientCredentials: { enabled: true },
      introspection: { enabled: true, allowedPolicy: async () => true },
      devInteractions: { enabled: false },
      // JWT access tokens for the clients configured so; everyone else keeps opaque tokens.
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx: unknown, client: { clientId: string } | undefined, oneOf?: string) =>
          oneOf ?? (client && jwtClients.has(client.clientId) ? JWT_RESOURCE : undefined),
        getResourceServerInfo: async (_ctx: unknown, resource: string, client: { clientId: string }) => {
          if (resource !== JWT_RESOURCE || !jwtClients.has(client.clientId))
            throw new errors.InvalidTarget('unknown resource indicator');
          return resourceServerInfo(client.clientId);
        },
        useGrantedResource: async () => true,
      },
    },
    formats: {
      customizers: {
        // XSUAA-like claims on top of RFC 9068's (client_id, sub, scope, aud, iss, exp, iat, jti).
        jwt: async (_ctx: unknown, token: JwtToken, jwt: { payload: Record<string, unknown> }) => {
          const grantType =
            token.kind === 'ClientCredentials' ? 'client_credentials' : (token.gty ?? 'password');
          jwt.payload.cid = token.clientId;
          jwt.payload.azp = token.clientId;
          jwt.payload.zid = jwtClients.get(token.clientId);
          jwt.payload.grant_type = grantType;
          if (token.accountId) {
            jwt.payload.user_name = token.accountId;
            jwt.payload.user_id = token.accountId;
            jwt.payload.origin = 'lab';
          }
        },
      },
    },
    routes: { token: tokenPath, introspection: introspectionPath, jwks: JWKS_PATH },
    jwks: { keys: [key] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: {
      AccessToken: ttl,
      ClientCredentials: ttl,
      Grant: Math.max(ttl, 3600),
      Session: 3600,
      Interaction: 600,
    },
    findAccount: async (_ctx: unknown, id: string) =>
      users.has(id) ? { accountId: id, claims: async () => ({ sub: id }) } : undefined,
  });

  provider.registerGrantType(
    'password',
    async (ctx: OidcContext) => {
      const client = ctx.oidc.client;
      const { username, password, scope } = ctx.oidc.params;
      if (!client || typeof username !== 'string' || typeof password !== 'string') {
        throw new errors.InvalidRequest('username and password are required');
      }
      const expected = users.get(username);
      if (expected === undefined || !safeEqual(expected, password)) {
        throw new errors.InvalidGrant('invalid resource owner credentials');
      }
      const requested = typeof scope === 'string' ? scope.split(' ').filter(Boolean) : [];
      const allowed = clientScopes.get(client.clientId) ?? new Set<string>();
      const denied = requested.filter((s) => !allowed.has(s));
      if (denied.length > 0)
        throw new errors.InvalidScope('requested scope is not allowed', denied.join(' '));
      const grant = new provider.Grant({ accountId: username, clientId: client.clientId });
      const grantId = await grant.save();
      const token = new provider.AccessToken({
        accountId: username,
        client,
        grantId,
        gty: 'password',
        ...(requested.length > 0 ? { scope: requested.join(' ') } : {}),
      });
      if (jwtClients.has(client.clientId))
        token.resourceServer = new provider.ResourceServer(JWT_RESOURCE, resourceServerInfo(client.clientId));
      const value = await token.save();
      ctx.body = {
        access_token: value,
        expires_in: token.expiration,
        token_type: token.tokenType,
        ...(token.scope ? { scope: token.scope } : {}),
      };
    },
    ['username', 'password', 'scope'],
  );

  provider.on('grant.success', (ctx: unknown) => {
    const { params, client } = (ctx as OidcContext).oidc;
    const grantType = params.grant_type as OAuthGrantType;
    const entry: IssuedToken = { grantType, clientId: client?.clientId ?? '' };
    if (grantType === 'password' && typeof params.username === 'string') entry.username = params.username;
    issued.push(entry);
  });
  // oidc-provider reports failed requests as events; nothing to do with them here (tests count requests).
  provider.on('grant.error', () => {});
  provider.on('server_error', () => {});

  const callback = provider.callback();
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === TOKEN_KEYS_PATH) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [publicJwk] }));
      return;
    }
    if (req.method === 'GET' && path === '/_peer/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ issued: issued.length, requests, byGrant: countBy(issued, (t) => t.grantType) }),
      );
      return;
    }
    if (path === tokenPath && req.method === 'POST') {
      requests++;
      if (delayMs > 0) delayResponse(res, delayMs);
    }
    callback(req, res);
  });

  return {
    url,
    tokenUrl: `${url}${tokenPath}`,
    introspectionUrl: `${url}${introspectionPath}`,
    jwksUrl: `${url}${JWKS_PATH}`,
    tokenKeysUrl: `${url}${TOKEN_KEYS_PATH}`,
    publicKeys: () => [{ ...publicJwk }],
    issuedCount: (filter = {}) =>
      issued.filter((t) => Object.entries(filter).every(([k, v]) => t[k as keyof IssuedToken] === v)).length,
    requestCount: () => requests,
    verify: async (token) => {
      if (token.split('.').length === 3) return verifyIssuedJwt(token, [publicJwk], url);
      const found: StoredToken | undefined =
        (await provider.ClientCredentials.find(token)) ?? (await provider.AccessToken.find(token));
      if (!found || !found.isValid) return undefined;
      const result: VerifiedToken = {
        clientId: found.clientId,
        grantType: found.kind === 'ClientCredentials' ? 'client_credentials' : 'password',
        exp: found.exp,
        format: 'opaque',
      };
      if (found.accountId) result.username = found.accountId;
      if (found.scope) result.scope = found.scope;
      return result;
    },
    setResponseDelay: (ms) => {
      delayMs = ms;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Holds the finished response back for `ms` (headers and body are sent together by res.end). */
function delayResponse(res: http.ServerResponse, ms: number): void {
  const end = res.end.bind(res) as (...args: unknown[]) => http.ServerResponse;
  res.end = ((...args: unknown[]) => {
    const timer = setTimeout(() => end(...args), ms);
    res.once('close', () => clearTimeout(timer));
    return res;
  }) as typeof res.end;
}

interface JwtToken {
  kind: string;
  clientId: string;
  accountId?: string;
  gty?: string;
}

function signingKey(): Jwk {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: crypto.randomUUID() };
}

function publicKeyOf(key: Jwk): Jwk {
  const { kty, n, e, kid, use, alg } = key;
  return { kty, n, e, kid, use, alg } as Jwk;
}

/** A JWT this server signed, still valid, as VerifiedToken; undefined otherwise. */
function verifyIssuedJwt(token: string, keys: Jwk[], issuer: string): VerifiedToken | undefined {
  try {
    const claims = verifyJwt(token, keys, { clockSkewSeconds: 0 });
    if (claims.iss !== issuer || typeof claims.client_id !== 'string') return undefined;
    const result: VerifiedToken = {
      clientId: claims.client_id,
      grantType: claims.grant_type === 'client_credentials' ? 'client_credentials' : 'password',
      exp: claims.exp as number,
      format: 'jwt',
    };
    if (typeof claims.user_name === 'string') result.username = claims.user_name;
    if (typeof claims.scope === 'string') result.scope = claims.scope;
    if (typeof claims.zid === 'string') result.zoneId = claims.zid;
    return result;
  } catch (error) {
    if (error instanceof JwtError) return undefined;
    throw error;
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

function countBy<T>(items: T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

/**
 * oidc-provider's storage, in memory, per server (its bundled adapter is shared process-wide and
 * warns on every start). Implements the adapter interface oidc-provider documents.
 */
function memoryAdapter() {
  const store = new Map<string, { payload: Record<string, unknown>; expiresAt: number }>();
  const get = (key: string) => {
    const entry = store.get(key);
    if (entry && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry?.payload;
  };
  return class MemoryAdapter {
    constructor(private readonly model: string) {}
    private key(id: string) {
      return `${this.model}:${id}`;
    }
    async upsert(id: string, payload: Record<string, unknown>, expiresIn?: number) {
      if (store.size > 10_000) for (const key of [...store.keys()]) get(key); // drops expired entries
      const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
      store.set(this.key(id), { payload, expiresAt });
      if (typeof payload.uid === 'string') store.set(`uid:${payload.uid}`, { payload: { id }, expiresAt });
      if (typeof payload.userCode === 'string')
        store.set(`userCode:${payload.userCode}`, { payload: { id }, expiresAt });
    }
    async find(id: string) {
      return get(this.key(id));
    }
    async findByUid(uid: string) {
      const ref = get(`uid:${uid}`);
      return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
    }
    async findByUserCode(userCode: string) {
      const ref = get(`userCode:${userCode}`);
      return typeof ref?.id === 'string' ? this.find(ref.id) : undefined;
    }
    async consume(id: string) {
      const payload = get(this.key(id));
      if (payload) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string) {
      store.delete(this.key(id));
    }
    async revokeByGrantId(grantId: string) {
      for (const [key, entry] of store) if (entry.payload.grantId === grantId) store.delete(key);
    }
  };
}

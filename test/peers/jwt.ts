// JWT verification for the peers (RFC 7519 / RFC 7515 compact JWS), with node:crypto only: RS256,
// RS384 and RS512 against an RSA JSON Web Key Set, `exp` / `nbf` checked with a small clock skew.
// The key set comes from a JWKS URL (refetched when a token names an unknown `kid`) or is given.
// Errors say what is wrong with the token, never the token itself.
import crypto from 'node:crypto';

export interface Jwk extends crypto.JsonWebKey {
  kid?: string;
  alg?: string;
  use?: string;
}

export interface JwtClaims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  client_id?: string;
  cid?: string;
  zid?: string;
  user_name?: string;
  grant_type?: string;
  scope?: string | string[];
  [claim: string]: unknown;
}

export interface DecodedJwt {
  header: { alg?: string; kid?: string; typ?: string; [k: string]: unknown };
  payload: JwtClaims;
  signingInput: string;
  signature: Buffer;
}

export class JwtError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JwtError';
  }
}

const HASH_OF_ALG: Record<string, string> = { RS256: 'sha256', RS384: 'sha384', RS512: 'sha512' };
const B64URL = /^[A-Za-z0-9_-]*$/;

function decodeJsonPart(part: string, what: string): Record<string, unknown> {
  if (!B64URL.test(part)) throw new JwtError(`JWT ${what} is not base64url`);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new JwtError(`JWT ${what} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new JwtError(`JWT ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Splits and decodes a compact JWS without checking anything but its form. */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.split('.');
  if (parts.length !== 3) throw new JwtError(`JWT must have 3 dot-separated parts, got ${parts.length}`);
  const [h, p, s] = parts as [string, string, string];
  if (!B64URL.test(s) || s === '') throw new JwtError('JWT signature is missing or not base64url');
  return {
    header: decodeJsonPart(h, 'header'),
    payload: decodeJsonPart(p, 'payload') as JwtClaims,
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
  };
}

export interface VerifyOptions {
  /** seconds since the epoch; default now */
  now?: number;
  /** tolerated clock difference in seconds; default 30 */
  clockSkewSeconds?: number;
}

/** Checks signature (against `keys`), `exp` and `nbf`; returns the claims or throws JwtError. */
export function verifyJwt(token: string, keys: readonly Jwk[], opts: VerifyOptions = {}): JwtClaims {
  const jwt = decodeJwt(token);
  const alg = jwt.header.alg;
  const hash = typeof alg === 'string' ? HASH_OF_ALG[alg] : undefined;
  if (!hash) throw new JwtError(`JWT alg ${JSON.stringify(alg)} is not accepted (RS256, RS384, RS512)`);
  const kid = jwt.header.kid;
  const candidates = keys.filter(
    (k) => k.kty === 'RSA' && (kid === undefined || k.kid === kid) && (k.use ?? 'sig') === 'sig',
  );
  if (candidates.length === 0) throw new JwtError(`no RSA signing key with kid ${JSON.stringify(kid)}`);
  const valid = candidates.some((jwk) => {
    try {
      const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
      return crypto.verify(hash, Buffer.from(jwt.signingInput), key, jwt.signature);
    } catch {
      return false;
    }
  });
  if (!valid) throw new JwtError('JWT signature does not verify with the token service keys');
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const skew = opts.clockSkewSeconds ?? 30;
  const { exp, nbf } = jwt.payload;
  if (typeof exp !== 'number') throw new JwtError('JWT has no exp claim');
  if (exp + skew <= now) throw new JwtError(`JWT expired ${now - exp} s ago`);
  if (typeof nbf === 'number' && nbf - skew > now) throw new JwtError('JWT is not valid yet (nbf)');
  return jwt.payload;
}

/** The client id a token was issued to: XSUAA's `cid`, or RFC 9068's `client_id`. */
export function clientIdOf(claims: JwtClaims): string | undefined {
  return typeof claims.cid === 'string' ? claims.cid : claims.client_id;
}

/** The key set could not be fetched (not a problem of the token). */
export class JwksError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JwksError';
  }
}

/** A JSON Web Key Set: given, or fetched from a URL and refetched (at most every 5 s) for unknown kids. */
export class KeySet {
  private keys: Jwk[];
  private lastFetch = 0;
  private fetching: Promise<void> | undefined;
  private readonly source: { url: string } | { keys: Jwk[] };
  private readonly minRefetchMs: number;
  constructor(source: { url: string } | { keys: Jwk[] }, minRefetchMs = 5000) {
    this.source = source;
    this.minRefetchMs = minRefetchMs;
    this.keys = 'keys' in source ? [...source.keys] : [];
  }

  /** Verifies the token, fetching the keys first if needed (or if its kid is unknown). */
  async verify(token: string, opts?: VerifyOptions): Promise<JwtClaims> {
    if ('url' in this.source) {
      const kid = decodeJwt(token).header.kid;
      const known = this.keys.some((k) => kid === undefined || k.kid === kid);
      if (!known && Date.now() - this.lastFetch >= this.minRefetchMs) await this.refresh();
    }
    return verifyJwt(token, this.keys, opts);
  }

  async refresh(): Promise<void> {
    if (!('url' in this.source)) return;
    const url = this.source.url;
    this.fetching ??= (async () => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) throw new JwksError(`JWKS ${url} answered ${res.status}`);
        const body = (await res.json()) as { keys?: unknown };
        if (!Array.isArray(body.keys)) throw new JwksError(`JWKS ${url} has no keys array`);
        this.keys = body.keys as Jwk[];
        this.lastFetch = Date.now();
      } finally {
        this.fetching = undefined;
      }
    })();
    return this.fetching;
  }
}

// OAuth2ClientCredentials and OAuth2Password: a cached bearer token per destination (see
// token-cache.ts), fetched from the destination's tokenServiceURL (see token-request.ts for how the
// client authenticates). When a token server rejects HTTP Basic client authentication with 401, the
// request is repeated once with the client credentials in the body (client_secret_post) and, if that
// works, the body form is used for this destination from then on. A wrong client secret therefore costs
// two token requests per attempt.
import crypto from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { errorCode, errorText } from './error-text.js';
import type { Destination } from '../destinations/types.js';
import {
  type CacheOutcome,
  type CachedToken,
  type Clock,
  credentialFingerprint,
  refreshTime,
  TokenCache,
  tokenCacheKey,
  tokenLifetimeMs,
  type TokenLifetimePolicy,
} from './token-cache.js';
import type { TokenFetch } from './token-http.js';
import {
  buildTokenRequest,
  type ClientAuthMode,
  type Grant,
  requestSecrets,
  tokenEndpointLabel,
  type TokenRequestSpec,
  tokenRequestSpec,
} from './token-request.js';
import {
  parseTokenResponse,
  scrub,
  type TokenErrorContext,
  tokenErrorPrefix,
  type TokenHttpResponse,
} from './token-response.js';
import { type AuthenticateOptions, TokenServiceError } from './types.js';

export interface TokenFetchEvent {
  destination: string;
  outcome: 'ok' | 'error';
  durationMs: number;
}

export interface CacheEvent {
  destination: string;
  /** hit/stale: served from the cache; fetched: this call fetched; shared: it waited for another's fetch */
  outcome: CacheOutcome;
}

/** Hooks for the dataplane's metrics (prom-client); all optional, none may throw. */
export interface AuthMetrics {
  onTokenFetch?(event: TokenFetchEvent): void;
  onCacheHit?(event: CacheEvent): void;
  onCacheMiss?(event: CacheEvent): void;
}

export interface OAuthTokensOptions {
  logger: Logger;
  metrics?: AuthMetrics;
  clock: Clock;
  fetch: TokenFetch;
  lifetime: TokenLifetimePolicy;
  forceRefreshGraceMs?: number;
  defaultConnectTimeoutMs: number;
  defaultReadTimeoutMs: number;
}

interface Prepared {
  spec: TokenRequestSpec;
  key: string;
  ctx: TokenErrorContext;
}

export class OAuthTokens {
  private readonly cache: TokenCache;
  private readonly salt = crypto.randomBytes(32);
  /** cache key → client authentication that worked, when it is not the default (Basic) */
  private readonly clientAuthModes = new Map<string, ClientAuthMode>();
  private readonly warnedTokenTypes = new Set<string>();

  constructor(private readonly options: OAuthTokensOptions) {
    this.cache = new TokenCache({
      clock: options.clock,
      ...(options.forceRefreshGraceMs !== undefined
        ? { forceRefreshGraceMs: options.forceRefreshGraceMs }
        : {}),
      onStale: (key, error) =>
        options.logger.warn(
          { destination: destinationOfKey(key), err: errorText(error) },
          'token refresh failed; serving the cached token until it expires',
        ),
    });
  }

  /** The bearer token for the destination (throws AuthConfigError or TokenServiceError). */
  async token(destination: Destination, grant: Grant, options: AuthenticateOptions = {}): Promise<string> {
    const prepared = this.prepare(destination, grant);
    const rejectedToken = options.rejected ? bearerOf(options.rejected.headers) : undefined;
    const { token, outcome } = await this.cache.get(prepared.key, () => this.fetch(destination, prepared), {
      forceRefresh: options.forceRefresh === true,
      ...(rejectedToken !== undefined ? { rejectedToken } : {}),
    });
    const event: CacheEvent = { destination: destination.name, outcome };
    const metrics = this.options.metrics;
    safely(() =>
      outcome === 'hit' || outcome === 'stale' ? metrics?.onCacheHit?.(event) : metrics?.onCacheMiss?.(event),
    );
    return token.value;
  }

  private prepare(destination: Destination, grant: Grant): Prepared {
    const spec = tokenRequestSpec(destination, grant);
    const key = tokenCacheKey({
      destination: destination.name,
      tokenUrl: spec.url.href,
      clientId: spec.clientId,
      grant,
      ...(spec.username !== undefined ? { user: spec.username } : {}),
      ...(spec.scope !== undefined ? { scope: spec.scope } : {}),
      credentials: credentialFingerprint(this.salt, [
        spec.clientSecret,
        spec.tokenServiceUser,
        spec.tokenServicePassword,
        spec.password,
      ]),
    });
    const ctx: TokenErrorContext = {
      destination: destination.name,
      endpoint: tokenEndpointLabel(spec.url),
      secrets: requestSecrets(spec),
    };
    return { spec, key, ctx };
  }

  private async fetch(destination: Destination, { spec, key, ctx }: Prepared): Promise<CachedToken> {
    const { logger, metrics, clock } = this.options;
    const connectTimeoutMs = positive(destination.connectTimeoutMs, this.options.defaultConnectTimeoutMs);
    const readTimeoutMs = positive(destination.readTimeoutMs, this.options.defaultReadTimeoutMs);
    const send = (mode: ClientAuthMode): Promise<TokenHttpResponse> =>
      this.options.fetch({
        url: spec.url,
        ...buildTokenRequest(spec, mode),
        connectTimeoutMs,
        readTimeoutMs,
      });
    const started = performance.now();
    const obtainedAt = clock.now();
    const log = { destination: destination.name, tokenService: ctx.endpoint, grant: spec.grant };
    let mode = this.clientAuthModes.get(key) ?? 'basic';
    try {
      let response: TokenHttpResponse;
      try {
        response = await send(mode);
        if (spec.tokenServiceUser === undefined && mode === 'basic' && rejectsClientAuth(response)) {
          logger.debug(
            { ...log, status: response.status },
            'token service rejected HTTP Basic client authentication; retrying with the credentials in the body',
          );
          mode = 'body';
          response = await send(mode);
          if (response.status >= 200 && response.status < 300) this.clientAuthModes.set(key, mode);
        }
      } catch (error) {
        throw transportError(ctx, error, connectTimeoutMs, readTimeoutMs);
      }
      const info = parseTokenResponse(ctx, response);
      const lifetimeMs = tokenLifetimeMs(
        info.accessToken,
        info.expiresInSeconds,
        obtainedAt,
        this.options.lifetime,
      );
      const token: CachedToken = {
        value: info.accessToken,
        obtainedAt,
        expiresAt: obtainedAt + lifetimeMs,
        refreshAt: refreshTime(obtainedAt, lifetimeMs, this.options.lifetime.marginMs),
      };
      this.checkTokenType(key, destination.name, info.tokenType);
      const durationMs = performance.now() - started;
      safely(() => metrics?.onTokenFetch?.({ destination: destination.name, outcome: 'ok', durationMs }));
      logger.debug(
        {
          ...log,
          clientAuth: spec.tokenServiceUser !== undefined ? 'tokenServiceUser' : mode,
          expiresInSeconds: info.expiresInSeconds,
          durationMs: Math.round(durationMs),
        },
        'token fetched',
      );
      return token;
    } catch (error) {
      const durationMs = performance.now() - started;
      safely(() => metrics?.onTokenFetch?.({ destination: destination.name, outcome: 'error', durationMs }));
      const failure =
        error instanceof TokenServiceError
          ? error
          : new TokenServiceError(`${tokenErrorPrefix(ctx)} failed: ${scrub(errorText(error), ctx.secrets)}`);
      logger.warn(
        { ...log, status: failure.status, err: failure.message, durationMs: Math.round(durationMs) },
        'token fetch failed',
      );
      throw failure;
    }
  }

  private checkTokenType(key: string, destination: string, tokenType: string | undefined): void {
    if (tokenType === undefined || tokenType.toLowerCase() === 'bearer' || this.warnedTokenTypes.has(key))
      return;
    this.warnedTokenTypes.add(key);
    this.options.logger.warn(
      { destination, tokenType: tokenType.slice(0, 40) },
      'token service returned a token_type other than Bearer; sending the token as Bearer',
    );
  }
}

function destinationOfKey(key: string): unknown {
  return (JSON.parse(key) as unknown[])[0];
}

function bearerOf(headers: [string, string][]): string | undefined {
  const value = headers.find(([name]) => name.toLowerCase() === 'authorization')?.[1];
  return value?.startsWith('Bearer ') ? value.slice('Bearer '.length) : undefined;
}

function rejectsClientAuth(response: TokenHttpResponse): boolean {
  if (response.status === 401) return true;
  if (response.status !== 400) return false;
  try {
    return (JSON.parse(response.body) as { error?: unknown }).error === 'invalid_client';
  } catch {
    return false;
  }
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

function transportError(
  ctx: TokenErrorContext,
  error: unknown,
  connectTimeoutMs: number,
  readTimeoutMs: number,
): TokenServiceError {
  const prefix = tokenErrorPrefix(ctx);
  const code = errorCode(error);
  const detail = scrub(errorText(error), ctx.secrets);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new TokenServiceError(`${prefix} unreachable: no connection within ${connectTimeoutMs} ms`);
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new TokenServiceError(`${prefix} did not answer within ${readTimeoutMs} ms`);
  }
  if (code === 'ERESPONSETOOLARGE') return new TokenServiceError(`${prefix} answered with ${detail}`);
  if (code && UNREACHABLE.has(code))
    return new TokenServiceError(`${prefix} unreachable: ${code} (${detail})`);
  if (code && /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_OSSL)/.test(code)) {
    return new TokenServiceError(
      `${prefix}: TLS handshake failed: ${code} (${detail}); is the token service's CA trusted?`,
    );
  }
  return new TokenServiceError(`${prefix} request failed: ${code ? `${code} ` : ''}(${detail})`);
}

function positive(value: number, fallback: number): number {
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // a metrics hook must not break authentication
  }
}

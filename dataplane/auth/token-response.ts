// Reading a token endpoint's answer (RFC 6749 sections 5.1 and 5.2), as pure functions. Errors name
// the destination, the token endpoint (host and path) and the status; of an error body only the OAuth
// `error` and `error_description` fields are used, scrubbed of the request's secrets and shortened,
// because some servers echo what they received.
import { TokenServiceError } from './types.js';

export interface TokenHttpResponse {
  status: number;
  /** the content-type header, if any */
  contentType?: string;
  body: string;
}

export interface TokenInfo {
  accessToken: string;
  /** as the server sent it (the authenticator always sends "Bearer"; see oauth.ts) */
  tokenType?: string;
  /** expires_in, when the server sent a usable one */
  expiresInSeconds?: number;
}

export interface TokenErrorContext {
  destination: string;
  /** tokenEndpointLabel(url) */
  endpoint: string;
  /** values that must never appear in a message */
  secrets: string[];
}

const MAX_FIELD = 200;
// RFC 6750 b64token, plus the characters JWTs and common opaque formats use. No spaces, no CR/LF.
const TOKEN_CHARS = /^[A-Za-z0-9\-._~+/=]+$/;

export function tokenErrorPrefix(ctx: TokenErrorContext): string {
  return `token service for destination "${ctx.destination}" at ${ctx.endpoint}`;
}

export function parseTokenResponse(ctx: TokenErrorContext, response: TokenHttpResponse): TokenInfo {
  const prefix = tokenErrorPrefix(ctx);
  const { status } = response;
  const json = parseJson(response.body);
  if (status < 200 || status > 299) {
    const detail = json ? oauthErrorDetail(json, ctx.secrets) : '';
    const redirect = status >= 300 && status < 400 ? ' (redirects are not followed)' : '';
    throw new TokenServiceError(`${prefix} answered ${status}${detail}${redirect}`, status);
  }
  if (!json) {
    const type = response.contentType ? ` (content-type ${scrub(response.contentType, ctx.secrets)})` : '';
    throw new TokenServiceError(
      `${prefix} answered ${status} with a body that is not a JSON object${type}`,
      status,
    );
  }
  const token = json.access_token;
  if (typeof token !== 'string' || token === '') {
    const detail = oauthErrorDetail(json, ctx.secrets);
    throw new TokenServiceError(`${prefix} answered ${status} without an access_token${detail}`, status);
  }
  if (!TOKEN_CHARS.test(token)) {
    throw new TokenServiceError(
      `${prefix} answered ${status} with an access_token that contains characters not allowed in an HTTP header`,
      status,
    );
  }
  const info: TokenInfo = { accessToken: token };
  if (typeof json.token_type === 'string') info.tokenType = json.token_type;
  const expiresIn = toSeconds(json.expires_in);
  if (expiresIn !== undefined) info.expiresInSeconds = expiresIn;
  return info;
}

function parseJson(body: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** expires_in as a positive number of seconds (some servers send a numeric string). */
function toSeconds(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

/** ": invalid_client (client authentication failed)" or "" */
export function oauthErrorDetail(json: Record<string, unknown>, secrets: string[]): string {
  const error = typeof json.error === 'string' ? clean(json.error, secrets) : '';
  const description =
    typeof json.error_description === 'string' ? clean(json.error_description, secrets) : '';
  if (!error && !description) return '';
  return `: ${error || 'error'}${description ? ` (${description})` : ''}`;
}

function clean(text: string, secrets: string[]): string {
  // eslint-disable-next-line no-control-regex
  const flat = scrub(text, secrets).replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return flat.length > MAX_FIELD ? `${flat.slice(0, MAX_FIELD)}...` : flat;
}

/** Replaces every occurrence of each secret (and its URL-encoded form) with "***". */
export function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    for (const form of new Set([
      secret,
      encodeURIComponent(secret),
      new URLSearchParams({ s: secret }).toString().slice(2),
    ])) {
      out = out.split(form).join('***');
    }
  }
  return out;
}

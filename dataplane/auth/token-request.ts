// The OAuth 2.0 token request for a destination (RFC 6749 sections 4.3 and 4.4), as a pure function.
//
// Client authentication at the token endpoint:
// - tokenServiceUser set: HTTP Basic with tokenServiceUser:tokenServicePassword (SAP: "user for basic
//   authentication to the OAuth server"), client_id=clientId in the body and no client_secret (a token
//   server must reject two client authentication mechanisms in one request).
// - otherwise 'basic' mode: HTTP Basic with clientId:clientSecret, as SAP XSUAA expects. The values are
//   sent as they are, not form-encoded first, as SAP's libraries do.
// - 'body' mode: client_id and client_secret as form parameters (client_secret_post). The authenticator
//   switches to it once when a token server rejects Basic with 401 (see oauth.ts).
import type { Destination } from '../destinations/types.js';
import { basicAuthorization } from './basic.js';
import { AuthConfigError } from './types.js';

export type Grant = 'client_credentials' | 'password';
export type ClientAuthMode = 'basic' | 'body';

export interface TokenRequestSpec {
  url: URL;
  grant: Grant;
  clientId: string;
  clientSecret?: string;
  tokenServiceUser?: string;
  tokenServicePassword?: string;
  /** password grant: the resource owner (User / Password properties) */
  username?: string;
  password?: string;
  scope?: string;
}

export interface TokenHttpPayload {
  headers: Record<string, string>;
  body: string;
}

export function grantFor(destination: Destination): Grant | undefined {
  if (
    destination.authentication === 'OAuth2ClientCredentials' ||
    destination.authentication === 'OAuth2TechnicalUserPropagation'
  )
    return 'client_credentials';
  if (destination.authentication === 'OAuth2Password') return 'password';
  return undefined;
}

/** Validates the destination's OAuth properties; throws AuthConfigError naming the missing property. */
export function tokenRequestSpec(destination: Destination, grant: Grant): TokenRequestSpec {
  const where = `destination "${destination.name}" (${destination.authentication})`;
  const need = (value: string | undefined, property: string): string => {
    if (value === undefined || value === '')
      throw new AuthConfigError(`${where}: property ${property} is missing`);
    return value;
  };
  const raw = need(destination.tokenServiceURL, 'tokenServiceURL');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new AuthConfigError(`${where}: tokenServiceURL is not an absolute URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new AuthConfigError(`${where}: tokenServiceURL must be http or https, not ${url.protocol}`);
  }
  if (url.username || url.password) {
    throw new AuthConfigError(
      `${where}: tokenServiceURL must not carry credentials; use tokenServiceUser/tokenServicePassword`,
    );
  }
  const spec: TokenRequestSpec = { url, grant, clientId: need(destination.clientId, 'clientId') };
  const tokenServiceUser = destination.tokenServiceUser || undefined;
  if (tokenServiceUser) {
    spec.tokenServiceUser = tokenServiceUser;
    spec.tokenServicePassword = destination.tokenServicePassword ?? '';
    if (destination.clientSecret) spec.clientSecret = destination.clientSecret;
  } else {
    spec.clientSecret = need(destination.clientSecret, 'clientSecret');
  }
  if (grant === 'password') {
    spec.username = need(destination.user, 'User');
    spec.password = need(destination.password, 'Password');
  }
  if (destination.scope) spec.scope = destination.scope;
  return spec;
}

export function buildTokenRequest(spec: TokenRequestSpec, mode: ClientAuthMode): TokenHttpPayload {
  const form = new URLSearchParams({ grant_type: spec.grant });
  if (spec.grant === 'password') {
    form.set('username', spec.username ?? '');
    form.set('password', spec.password ?? '');
  }
  if (spec.scope) form.set('scope', spec.scope);
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (spec.tokenServiceUser !== undefined) {
    headers.authorization = basicAuthorization(spec.tokenServiceUser, spec.tokenServicePassword ?? '');
    form.set('client_id', spec.clientId);
  } else if (mode === 'basic') {
    headers.authorization = basicAuthorization(spec.clientId, spec.clientSecret ?? '');
  } else {
    form.set('client_id', spec.clientId);
    form.set('client_secret', spec.clientSecret ?? '');
  }
  return { headers, body: form.toString() };
}

/** Every secret of the request, for scrubbing text that leaves the authenticator. */
export function requestSecrets(spec: TokenRequestSpec): string[] {
  const plain = [spec.clientSecret, spec.tokenServicePassword, spec.password].filter(
    (s): s is string => typeof s === 'string' && s.length > 0,
  );
  // A server that echoes the Authorization header would reveal the secret in base64.
  const basic = [
    spec.clientSecret ? `${spec.clientId}:${spec.clientSecret}` : undefined,
    spec.tokenServiceUser !== undefined
      ? `${spec.tokenServiceUser}:${spec.tokenServicePassword ?? ''}`
      : undefined,
  ]
    .filter((s): s is string => s !== undefined)
    .map((s) => Buffer.from(s, 'utf8').toString('base64'));
  return [...plain, ...basic];
}

/** "host[:port]/path" of the token service: no scheme, credentials or query. */
export function tokenEndpointLabel(url: URL): string {
  return `${url.host}${url.pathname}`;
}

// What of a destination may be shown (/config, logs): its properties with every secret replaced by
// "<redacted>". Key and trust store contents are never part of the properties, so never shown.
import type { Destination } from './types.js';

export const REDACTED = '<redacted>';

/** SAP properties that are always secret (tokenServicePass: the SAP Cloud SDK's older name). */
export const SECRET_PROPERTY = [
  'Password',
  'clientSecret',
  'tokenServicePassword',
  'tokenServicePass',
  'KeyStorePassword',
  'TrustStorePassword',
] as const;

/**
 * Other properties whose name says "secret": passwords, secrets, tokens (but not tokenServiceURL /
 * tokenServiceUser), API keys, authorization, cookies, credentials, private keys, signatures, sessions.
 * Applied to the whole name, so `URL.headers.Authorization`, `URL.headers.x-api-key`,
 * `URL.queries.access_token` are caught.
 */
const SECRET_NAME =
  /pass(?:word|wd)?|pwd|secret|token(?!service)|api[-_]?key|apikey|authori[sz]ation|auth(?!entication|ori)|cookie|credential|private[-_]?key|signature|session|^URL\.queries\.(?:key|sig|code)$/i;

export function isSecretProperty(name: string): boolean {
  return (SECRET_PROPERTY as readonly string[]).includes(name) || SECRET_NAME.test(name);
}

/** All properties as given, secrets replaced by "<redacted>". */
export function redactDestination(destination: Destination): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(destination.properties))
    out[key] = isSecretProperty(key) ? REDACTED : value;
  return out;
}

/**
 * Every secret string of a destination, including the Basic credentials as they appear on the wire,
 * so tests can check that none of them shows up in logs, /config or error responses.
 */
export function secretValues(destination: Destination): string[] {
  const values = new Set<string>();
  const add = (value: string | undefined) => {
    if (value) values.add(value);
  };
  add(destination.password);
  add(destination.clientSecret);
  add(destination.tokenServicePassword);
  add(destination.keyStore?.password);
  add(destination.trustStore?.password);
  for (const [key, value] of Object.entries(destination.properties)) if (isSecretProperty(key)) add(value);
  const basic = (user: string | undefined, password: string | undefined) => {
    if (user === undefined || !password) return;
    add(Buffer.from(`${user}:${password}`).toString('base64'));
    // client_secret_basic (RFC 6749 2.3.1) form-encodes both parts first
    add(Buffer.from(`${formEncode(user)}:${formEncode(password)}`).toString('base64'));
    add(formEncode(password));
  };
  basic(destination.user, destination.password);
  basic(destination.tokenServiceUser, destination.tokenServicePassword);
  basic(destination.clientId, destination.clientSecret);
  return [...values];
}

function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

// A connectivity service key (SAP BTP service binding JSON): the client credentials for the token the
// connectivity proxy wants, and where the proxy is. Pure apart from reading the file.
//   clientid, clientsecret          client credentials (XSUAA)
//   token_service_url or url        the token service; tokens at {url}/oauth/token
//   onpremise_proxy_host            the connectivity proxy's host
//   onpremise_proxy_http_port       its HTTP port (SAP writes ports as strings)
//   onpremise_socks5_proxy_port     its SOCKS5 port
// A binding's `{ "credentials": { ... } }` wrapper is accepted too.
import { readFileSync } from 'node:fs';

export interface ConnectivityServiceKey {
  clientId: string;
  clientSecret: string;
  /** the token endpoint, `{url}/oauth/token` */
  tokenUrl: string;
  proxyHost?: string;
  httpPort?: number;
  socks5Port?: number;
}

/** Names the key file and the field; never contains a secret. */
export class ServiceKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceKeyError';
  }
}

function tokenEndpoint(base: string): string {
  const url = new URL(base);
  if (!/\/oauth\/token\/?$/.test(url.pathname))
    url.pathname = `${url.pathname.replace(/\/+$/, '')}/oauth/token`;
  return url.href;
}

/** Parses the key's JSON text; `label` (the file name) starts every message. */
export function parseConnectivityServiceKey(text: string, label: string): ConnectivityServiceKey {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ServiceKeyError(`${label}: not valid JSON (expected a connectivity service key)`);
  }
  if (typeof data === 'object' && data !== null && 'credentials' in data)
    data = (data as { credentials: unknown }).credentials;
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new ServiceKeyError(`${label}: expected a JSON object (a connectivity service key)`);
  const key = data as Record<string, unknown>;
  const problems: string[] = [];
  const text_ = (field: string): string | undefined => {
    const value = key[field];
    if (value === undefined || value === null || value === '') return undefined;
    if (typeof value === 'string') return value;
    if (typeof value === 'number') return String(value);
    problems.push(`"${field}" must be a string`);
    return undefined;
  };
  const port = (field: string): number | undefined => {
    const value = text_(field);
    if (value === undefined) return undefined;
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!(n >= 1 && n <= 65535)) {
      problems.push(`"${field}" must be a port 1-65535`);
      return undefined;
    }
    return n;
  };

  const clientId = text_('clientid');
  const clientSecret = text_('clientsecret');
  if (clientId === undefined) problems.push('"clientid" is missing');
  if (clientSecret === undefined) {
    problems.push(
      key['certificate'] !== undefined || key['credential-type'] === 'x509'
        ? 'X.509 service keys (certificate/key) are not supported yet; create a key with "credential-type": "binding-secret"'
        : '"clientsecret" is missing',
    );
  }
  const base = text_('token_service_url') ?? text_('url');
  let tokenUrl: string | undefined;
  if (base === undefined) problems.push('"token_service_url" or "url" is missing (the token service)');
  else {
    try {
      tokenUrl = tokenEndpoint(base);
      if (!/^https?:$/.test(new URL(tokenUrl).protocol)) throw new Error('scheme');
    } catch {
      problems.push('"token_service_url"/"url" is not an http(s) URL');
      tokenUrl = undefined;
    }
  }
  const proxyHost = text_('onpremise_proxy_host');
  const httpPort = port('onpremise_proxy_http_port') ?? port('onpremise_proxy_port');
  const socks5Port = port('onpremise_socks5_proxy_port');
  if (problems.length > 0 || !clientId || !clientSecret || !tokenUrl)
    throw new ServiceKeyError(`${label}: ${problems.join('; ')}`);
  return {
    clientId,
    clientSecret,
    tokenUrl,
    ...(proxyHost ? { proxyHost } : {}),
    ...(httpPort ? { httpPort } : {}),
    ...(socks5Port ? { socks5Port } : {}),
  };
}

export function loadConnectivityServiceKey(path: string): ConnectivityServiceKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ServiceKeyError(`${path}: cannot read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parseConnectivityServiceKey(text, path);
}

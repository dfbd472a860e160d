// The HTTP transport for token requests: undici, one connection pool per connect timeout, redirects
// not followed, the answer capped at 64 KiB. Trust for https token services: Node's default CAs
// (including NODE_EXTRA_CA_CERTS) plus the authenticator's `tokenServiceCa`; the destination's
// TrustStore/TrustAll apply to the target URL only, never to the token service, so a client secret is
// only ever sent to a verified server.
import tls from 'node:tls';
import { Agent, type Dispatcher, ProxyAgent, request } from 'undici';
import type { EgressProxy } from '../egress/types.js';
import type { TokenHttpResponse } from './token-response.js';

export interface TokenHttpRequest {
  url: URL;
  headers: Record<string, string>;
  body: string;
  connectTimeoutMs: number;
  /** time allowed for the status line and headers, and again between body chunks */
  readTimeoutMs: number;
}

/** The token transport; injectable for tests. Network failures reject with the error (its `code` set). */
export type TokenFetch = (req: TokenHttpRequest) => Promise<TokenHttpResponse>;

export interface UndiciTokenFetch {
  fetch: TokenFetch;
  close(): Promise<void>;
}

export const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;

export interface UndiciTokenFetchOptions {
  ca?: (string | Buffer)[];
  /** the corporate proxy for a token service URL (`EgressProxies.forTarget`), or undefined: direct */
  proxyFor?: (url: URL) => EgressProxy | undefined;
}

/** undici's ProxyAgent for a corporate proxy: CONNECT (with Basic) or SOCKS5 (user/password in the URI). */
function proxyAgent(
  proxy: EgressProxy,
  connectTimeoutMs: number,
  ca: (string | Buffer)[] | undefined,
): ProxyAgent {
  const host = proxy.host.includes(':') ? `[${proxy.host}]` : proxy.host;
  const user =
    proxy.kind === 'socks5' && proxy.username !== undefined
      ? `${encodeURIComponent(proxy.username)}:${encodeURIComponent(proxy.password ?? '')}@`
      : '';
  return new ProxyAgent({
    uri: `${proxy.kind === 'http' ? 'http' : 'socks5'}://${user}${host}:${proxy.port}`,
    ...(proxy.kind === 'http' && proxy.username !== undefined
      ? {
          token: `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ''}`, 'utf8').toString('base64')}`,
        }
      : {}),
    requestTls: { timeout: connectTimeoutMs, ...(ca ? { ca } : {}) },
    proxyTls: { timeout: connectTimeoutMs },
    keepAliveTimeout: 4_000,
    connections: 8,
  });
}

export function createUndiciTokenFetch(options: UndiciTokenFetchOptions = {}): UndiciTokenFetch {
  const agents = new Map<string, Dispatcher>();
  const ca =
    options.ca && options.ca.length > 0
      ? [...(tls.getCACertificates ? tls.getCACertificates('default') : tls.rootCertificates), ...options.ca]
      : undefined;
  const agentFor = (url: URL, connectTimeoutMs: number): Dispatcher => {
    const proxy = options.proxyFor?.(url);
    const key = proxy
      ? `${connectTimeoutMs} ${proxy.kind} ${proxy.host} ${proxy.port} ${proxy.username ?? ''} ${proxy.password ?? ''}`
      : String(connectTimeoutMs);
    let agent = agents.get(key);
    if (!agent) {
      agent = proxy
        ? proxyAgent(proxy, connectTimeoutMs, ca)
        : new Agent({
            connect: { timeout: connectTimeoutMs, ...(ca ? { ca } : {}) },
            keepAliveTimeout: 4_000,
            connections: 8,
          });
      agents.set(key, agent);
    }
    return agent;
  };

  const fetch: TokenFetch = async (req) => {
    const response = await request(req.url, {
      method: 'POST',
      headers: req.headers,
      body: req.body,
      dispatcher: agentFor(req.url, req.connectTimeoutMs),
      headersTimeout: req.readTimeoutMs,
      bodyTimeout: req.readTimeoutMs,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_TOKEN_RESPONSE_BYTES) {
        response.body.destroy();
        const error = new Error(`token response larger than ${MAX_TOKEN_RESPONSE_BYTES} bytes`);
        (error as NodeJS.ErrnoException).code = 'ERESPONSETOOLARGE';
        throw error;
      }
      chunks.push(chunk);
    }
    const contentType = response.headers['content-type'];
    const result: TokenHttpResponse = {
      status: response.statusCode,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    if (typeof contentType === 'string') result.contentType = contentType;
    return result;
  };

  return {
    fetch,
    close: async () => {
      const all = [...agents.values()];
      agents.clear();
      await Promise.all(all.map((a) => a.close()));
    },
  };
}

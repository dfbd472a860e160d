// The HTTP transport for token requests: undici, one connection pool per connect timeout, redirects
// not followed, the answer capped at 64 KiB. Trust for https token services: Node's default CAs
// (including NODE_EXTRA_CA_CERTS) plus the authenticator's `tokenServiceCa`; the destination's
// TrustStore/TrustAll apply to the target URL only, never to the token service, so a client secret is
// only ever sent to a verified server.
import tls from 'node:tls';
import { Agent, request } from 'undici';
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

export function createUndiciTokenFetch(options: { ca?: (string | Buffer)[] } = {}): UndiciTokenFetch {
  const agents = new Map<number, Agent>();
  const ca =
    options.ca && options.ca.length > 0
      ? [...(tls.getCACertificates ? tls.getCACertificates('default') : tls.rootCertificates), ...options.ca]
      : undefined;
  const agentFor = (connectTimeoutMs: number): Agent => {
    let agent = agents.get(connectTimeoutMs);
    if (!agent) {
      agent = new Agent({
        connect: { timeout: connectTimeoutMs, ...(ca ? { ca } : {}) },
        keepAliveTimeout: 4_000,
        connections: 8,
      });
      agents.set(connectTimeoutMs, agent);
    }
    return agent;
  };

  const fetch: TokenFetch = async (req) => {
    const response = await request(req.url, {
      method: 'POST',
      headers: req.headers,
      body: req.body,
      dispatcher: agentFor(req.connectTimeoutMs),
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

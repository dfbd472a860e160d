// A tunnel through an HTTP proxy: `CONNECT host:port` (RFC 9110 §9.3.6), with `Proxy-Authorization:
// Basic` when the proxy has credentials. Resolves with the raw socket once the proxy answered 2xx:
// paused, with any bytes the target sent right after the head put back into it. The HTTP path starts
// TLS on it (https targets); the TCP path pipes it (allowHalfOpen, so half-closes pass through).
import net from 'node:net';
import { describeProxy, proxyAuthorization } from './proxy-url.js';
import type { EgressProxy } from './types.js';

/** Longest response head accepted from a proxy before giving up on it. */
const MAX_HEAD = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/** Where a tunnel failed: reaching the proxy, or the proxy's answer to CONNECT. */
export type HttpConnectStage = 'proxy-connect' | 'connect';

/**
 * The proxy failed: unreachable, timed out, or answered CONNECT with a non-2xx status. `status` is
 * the proxy's status (407: credentials; 403: policy; 502/503/504: it could not reach the target).
 * `code`: the socket error's code, `PROXY_CONNECT_STATUS`, `CONNECT_TIMEOUT` or an `HPE_` code for an
 * answer that is not HTTP. `meaning` is one sentence for log lines; nothing here carries a secret.
 */
export class EgressProxyError extends Error {
  readonly stage: HttpConnectStage;
  readonly meaning: string;
  /** the proxy as `http://user:<redacted>@host:port` */
  readonly proxy: string;
  readonly code: string;
  readonly status: number | undefined;

  constructor(stage: HttpConnectStage, meaning: string, proxy: string, code: string, status?: number) {
    super(`egress proxy ${proxy}: ${meaning}`);
    this.name = 'EgressProxyError';
    this.stage = stage;
    this.meaning = meaning;
    this.proxy = proxy;
    this.code = code;
    this.status = status;
  }
}

export interface TunnelOptions {
  proxy: EgressProxy;
  host: string;
  port: number;
  /** for connecting and for the proxy's answer (which includes its own connect to the target); 0 = none */
  timeoutMs: number;
  signal?: AbortSignal;
  /** keep the socket open for writing after the proxy ends (TCP pipes pass half-closes on) */
  allowHalfOpen?: boolean;
}

/** `host:port` as the CONNECT request target (IPv6 in brackets). */
export function authority(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return `${net.isIPv6(bare) ? `[${bare}]` : bare}:${port}`;
}

/** The request head. Throws (before anything is sent) for a target that cannot be written in it. */
export function connectRequest(proxy: EgressProxy, host: string, port: number): string {
  const label = describeProxy(proxy);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new EgressProxyError('connect', `invalid target port ${port}`, label, 'ERR_INVALID_ARG_VALUE');
  if (host === '' || /[\s/@]/.test(host))
    throw new EgressProxyError('connect', `invalid target host "${host}"`, label, 'ERR_INVALID_ARG_VALUE');
  const target = authority(host, port);
  const auth = proxyAuthorization(proxy);
  return `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`;
}

export interface ConnectResponseHead {
  /** bytes the head occupies, blank line included */
  length: number;
  status: number;
  reason: string;
}

/** Parses the response head at the start of `data`; undefined while incomplete; throws for non-HTTP. */
export function parseConnectResponseHead(data: Buffer): ConnectResponseHead | undefined {
  const end = data.indexOf(HEAD_END);
  if (end < 0) {
    if (data.length > MAX_HEAD) throw Object.assign(new Error('oversized'), { code: 'HPE_HEADER_OVERFLOW' });
    if (data.length >= 5 && !data.subarray(0, 5).equals(Buffer.from('HTTP/')))
      throw Object.assign(new Error('not HTTP'), { code: 'HPE_INVALID_CONSTANT' });
    return undefined;
  }
  const statusLine = data.subarray(0, data.indexOf('\r\n')).toString('latin1');
  const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!match) throw Object.assign(new Error('not HTTP'), { code: 'HPE_INVALID_CONSTANT' });
  return { length: end + HEAD_END.length, status: Number(match[1]), reason: match[2] ?? '' };
}

/** What a non-2xx answer to CONNECT means, for the log line. */
export function describeConnectStatus(
  status: number,
  reason: string,
  target: string,
  sentCredentials: boolean,
): string {
  if (status === 407)
    return sentCredentials
      ? 'the proxy rejected the username or password (407 Proxy Authentication Required)'
      : 'the proxy requires authentication and none is configured (407 Proxy Authentication Required)';
  if (status === 403) return `the proxy does not allow a tunnel to ${target} (403 Forbidden)`;
  if (status === 405 || status === 501)
    return `the proxy does not support CONNECT (${status} ${reason})`.trim();
  if (status === 502 || status === 503)
    return `the proxy could not connect to ${target} (${status} ${reason})`;
  if (status === 504) return `the proxy timed out connecting to ${target} (504 ${reason})`;
  return `the proxy refused the tunnel to ${target} (${status} ${reason})`;
}

/** Rejects with an EgressProxyError; the socket is destroyed then. */
export function openTunnel(options: TunnelOptions): Promise<net.Socket> {
  const { proxy, host, port } = options;
  const label = describeProxy(proxy);
  const target = authority(host, port);
  let head: string;
  try {
    head = connectRequest(proxy, host, port);
  } catch (error) {
    return Promise.reject(error as Error);
  }
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: proxy.host,
      port: proxy.port,
      allowHalfOpen: !!options.allowHalfOpen,
    });
    let stage: HttpConnectStage = 'proxy-connect';
    let received: Buffer = Buffer.alloc(0);
    let settled = false;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onClose);
      socket.off('close', onClose);
    };
    const fail = (meaning: string, code: string, status?: number): void => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.destroy();
      reject(new EgressProxyError(stage, meaning, label, code, status));
    };
    const timer =
      options.timeoutMs > 0
        ? setTimeout(
            () =>
              fail(
                stage === 'proxy-connect'
                  ? `could not reach the proxy within ${options.timeoutMs} ms`
                  : `no answer from the proxy within ${options.timeoutMs} ms`,
                'CONNECT_TIMEOUT',
              ),
            options.timeoutMs,
          )
        : undefined;
    const onAbort = (): void => fail('tunnel aborted', 'ABORT_ERR');
    const onError = (error: NodeJS.ErrnoException): void => {
      const code = error.code ?? 'ECONNRESET';
      fail(
        stage === 'proxy-connect'
          ? `cannot connect to the proxy (${code})`
          : `connection to the proxy failed (${code})`,
        code,
      );
    };
    const onClose = (): void =>
      fail('the proxy closed the connection before answering CONNECT', 'ECONNRESET');
    const onData = (chunk: Buffer): void => {
      received = received.length ? Buffer.concat([received, chunk]) : chunk;
      let response: ConnectResponseHead | undefined;
      try {
        response = parseConnectResponseHead(received);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'HPE_INVALID_CONSTANT';
        return fail(
          code === 'HPE_HEADER_OVERFLOW'
            ? 'the proxy’s answer to CONNECT has an oversized head'
            : 'the proxy did not answer CONNECT with HTTP',
          code,
        );
      }
      if (!response) return;
      if (response.status < 200 || response.status > 299)
        return fail(
          describeConnectStatus(response.status, response.reason, target, proxy.username !== undefined),
          'PROXY_CONNECT_STATUS',
          response.status,
        );
      settled = true;
      cleanup();
      // no listener may consume bytes until the caller (TLS or a pipe) takes over
      socket.pause();
      const rest = received.subarray(response.length);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onClose);
    socket.on('close', onClose);
    socket.once('connect', () => {
      stage = 'connect';
      socket.write(head);
    });
  });
}

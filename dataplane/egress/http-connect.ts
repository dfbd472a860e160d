// A tunnel through an HTTP proxy: `CONNECT host:port` (RFC 9110 §9.3.6), with `Proxy-Authorization:
// Basic` when the proxy URL carries credentials. Resolves with the raw socket once the proxy answered
// 2xx; the caller starts TLS on it (https targets) or pipes bytes (TCP). Used by the HTTP path for https
// targets behind an HTTP proxy, and usable by the TCP path.
import net from 'node:net';
import { describeProxy, proxyAuthorization } from './proxy-url.js';
import type { EgressProxy } from './types.js';

const MAX_HEAD = 16 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * The proxy itself failed: unreachable, timed out, or answered the CONNECT with a non-2xx status.
 * `status` is the proxy's status (407: credentials; 403: policy; 502/503/504: it could not reach the
 * target). `code`: the socket error's code, `PROXY_CONNECT_STATUS`, or `CONNECT_TIMEOUT`.
 */
export class EgressProxyError extends Error {
  constructor(
    message: string,
    readonly proxy: string,
    readonly code: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'EgressProxyError';
  }
}

export interface TunnelOptions {
  proxy: EgressProxy;
  host: string;
  port: number;
  /** for connecting and for the proxy's answer; 0 = none */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** `host:port` as the CONNECT request target (IPv6 in brackets). */
export function authority(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
}

export function connectRequest(proxy: EgressProxy, host: string, port: number): string {
  const target = authority(host, port);
  const auth = proxyAuthorization(proxy);
  return `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`;
}

export function openTunnel(options: TunnelOptions): Promise<net.Socket> {
  const { proxy, host, port } = options;
  const label = describeProxy(proxy);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    let received = Buffer.alloc(0);
    let settled = false;
    const fail = (error: EgressProxyError): void => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.destroy();
      reject(error);
    };
    const timer =
      options.timeoutMs > 0
        ? setTimeout(
            () =>
              fail(
                new EgressProxyError(
                  `egress proxy ${label} did not set up a tunnel to ${authority(host, port)} within ${options.timeoutMs} ms`,
                  label,
                  'CONNECT_TIMEOUT',
                ),
              ),
            options.timeoutMs,
          )
        : undefined;
    const onAbort = (): void => fail(new EgressProxyError('tunnel aborted', label, 'ABORT_ERR'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const onError = (error: NodeJS.ErrnoException): void =>
      fail(
        new EgressProxyError(
          `egress proxy ${label}: ${error.code ?? error.message}`,
          label,
          error.code ?? 'ECONNRESET',
        ),
      );
    const onClose = (): void =>
      fail(
        new EgressProxyError(
          `egress proxy ${label} closed the connection during CONNECT`,
          label,
          'ECONNRESET',
        ),
      );
    const onData = (chunk: Buffer): void => {
      received = Buffer.concat([received, chunk]);
      const end = received.indexOf(HEAD_END);
      if (end < 0) {
        if (received.length > MAX_HEAD)
          fail(
            new EgressProxyError(
              `egress proxy ${label} sent an oversized CONNECT answer`,
              label,
              'HPE_HEADER_OVERFLOW',
            ),
          );
        return;
      }
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(received.toString('latin1', 0, 16));
      if (!match) {
        fail(
          new EgressProxyError(
            `egress proxy ${label} did not answer CONNECT with HTTP`,
            label,
            'HPE_INVALID_CONSTANT',
          ),
        );
        return;
      }
      const status = Number(match[1]);
      if (status < 200 || status > 299) {
        fail(
          new EgressProxyError(
            `egress proxy ${label} answered CONNECT ${authority(host, port)} with ${status}`,
            label,
            'PROXY_CONNECT_STATUS',
            status,
          ),
        );
        return;
      }
      settled = true;
      cleanup();
      // no listener may consume bytes until the caller (TLS or a pipe) takes over
      socket.pause();
      const rest = received.subarray(end + HEAD_END.length);
      if (rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.once('connect', () => socket.write(connectRequest(proxy, host, port)));
  });
}

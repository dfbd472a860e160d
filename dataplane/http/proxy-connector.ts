// An undici connector for targets reached through a tunnel: CONNECT through an HTTP proxy, or a SOCKS5
// proxy; then TLS for https targets with the destination's trust settings and client certificate (the
// same SecureContext as for direct connections).
import net from 'node:net';
import tls from 'node:tls';
import type { buildConnector } from 'undici';
import { openThroughEgressProxy } from '../egress/tcp-connect.js';
import type { EgressProxy } from '../egress/types.js';
import type { UpstreamTls } from './tls-options.js';

export function tunnelConnector(
  proxy: EgressProxy,
  upstreamTls: UpstreamTls | undefined,
  timeoutMs: number,
): buildConnector.connector {
  return (options, callback) => {
    const host = options.hostname.replace(/^\[|\]$/g, '');
    const port = Number(options.port || (options.protocol === 'https:' ? 443 : 80));
    const started = Date.now();
    openThroughEgressProxy(proxy, { host, port }, timeoutMs).then(
      (socket) => {
        if (!upstreamTls) {
          // handed over paused; HTTP targets speak only after the request
          socket.resume();
          callback(null, socket);
          return;
        }
        const servername = options.servername ?? (net.isIP(host) ? undefined : host);
        const secure = tls.connect({
          socket,
          // the certificate is checked against this (an IP literal target has no servername)
          host,
          secureContext: upstreamTls.secureContext,
          rejectUnauthorized: upstreamTls.rejectUnauthorized,
          ...(servername ? { servername } : {}),
          ALPNProtocols: ['http/1.1'],
        });
        const left = timeoutMs > 0 ? Math.max(1, timeoutMs - (Date.now() - started)) : 0;
        const timer =
          left > 0
            ? setTimeout(
                () =>
                  secure.destroy(
                    Object.assign(new Error('TLS handshake timed out'), { code: 'CONNECT_TIMEOUT' }),
                  ),
                left,
              )
            : undefined;
        const onError = (error: Error): void => {
          if (timer) clearTimeout(timer);
          callback(error, null);
        };
        secure.once('error', onError);
        secure.once('secureConnect', () => {
          if (timer) clearTimeout(timer);
          secure.off('error', onError);
          callback(null, secure);
        });
      },
      (error: Error) => callback(error, null),
    );
  };
}

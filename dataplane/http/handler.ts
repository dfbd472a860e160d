// Serves HTTP/1.1 on connections the dataplane accepted for an HTTP destination's VIP. One internal
// http.Server (never listening) parses requests on the sockets handed to it; each socket remembers
// which destination it is for (or how to look it up, so reloads are seen per request).
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Authenticator } from '../auth/types.js';
import type { Destination } from '../destinations/types.js';
import type { Logger } from '../logger.js';
import type { DestinationSource, HandlerContext, HttpMetrics } from './context.js';
import { badRequest, errorResponse, internalError, rawResponse } from './errors.js';
import { forwardRequest } from './forward-request.js';
import { forwardUpgrade } from './forward-upgrade.js';
import { UpstreamPools } from './pools.js';
import type { EgressContext } from './upstream-route.js';

export interface HttpDestinationHandlerOptions {
  authenticator: Authenticator;
  logger: Logger;
  metrics?: HttpMetrics;
  /** `x-proxy-server` on error responses (default `detour`). */
  proxyServerName?: string;
  /** Bodies up to this size (with Content-Length) are held so a 401 on an OAuth destination can be retried (default 64 KiB). */
  retryBufferBytes?: number;
  /** Idle keep-alive of the app's connections (default 60 s). */
  appKeepAliveTimeoutMs?: number;
  /** A destination's upstream pool unused this long is closed (default 5 min). */
  upstreamIdleCloseMs?: number;
  /** The connectivity proxy (OnPremise destinations) and corporate egress proxies (Internet). */
  egress?: EgressContext;
}

export interface HttpDestinationHandler {
  /** Serve HTTP on an accepted connection for this destination (or a lookup seeing reloads). */
  handle(socket: net.Socket, destination: DestinationSource): void;
  /**
   * Stop: idle app connections close at once, running requests get up to graceMs (default 10 s) and
   * are answered with `Connection: close`; then everything left is destroyed and the pools closed.
   */
  close(graceMs?: number): Promise<void>;
}

export function createHttpDestinationHandler(options: HttpDestinationHandlerOptions): HttpDestinationHandler {
  const log = options.logger;
  const sources = new WeakMap<object, DestinationSource>();
  const sockets = new Set<net.Socket>();
  let closing = false;

  const ctx: HandlerContext = {
    authenticator: options.authenticator,
    log,
    ...(options.metrics ? { metrics: options.metrics } : {}),
    proxyServer: options.proxyServerName ?? 'detour',
    pools: new UpstreamPools({
      log,
      ...(options.upstreamIdleCloseMs ? { idleCloseMs: options.upstreamIdleCloseMs } : {}),
    }),
    egress: options.egress ?? {},
    retryBufferBytes: options.retryBufferBytes ?? 64 * 1024,
    resolve(socket: object): Destination | undefined {
      const source = sources.get(socket);
      return typeof source === 'function' ? source() : source;
    },
    closing: () => closing,
  };

  // Never listening, so Node's request/headers timers (driven by listen()) do not run; the app is a
  // local workload, and its idle keep-alive connections are still closed after keepAliveTimeout.
  const server = http.createServer({
    requestTimeout: 0,
    keepAliveTimeout: options.appKeepAliveTimeoutMs ?? 60_000,
  });
  /** Requests in progress per app connection (upgraded ones stay busy): close() ends idle ones. */
  const busy = new Map<object, number>();
  const track = (socket: object, res?: http.ServerResponse): void => {
    busy.set(socket, (busy.get(socket) ?? 0) + 1);
    res?.once('close', () => busy.set(socket, (busy.get(socket) ?? 1) - 1));
  };
  const unexpected = (error: unknown): void => log.error({ err: error }, 'http destination handler failed');
  const serve = (expectContinue: boolean) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    track(req.socket, res);
    forwardRequest(ctx, req, res, expectContinue).catch((error: unknown) => {
      // A bug, not a target's failure: never leave the app waiting.
      unexpected(error);
      if (res.headersSent) return void res.destroy();
      const r = errorResponse(internalError(), '-', ctx.proxyServer);
      res.writeHead(r.status, r.headers);
      res.end(r.body);
    });
  };
  server.on('request', serve(false));
  // Answered with 100 Continue once the destination and its credentials are ready (see README).
  server.on('checkContinue', serve(true));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    track(socket);
    forwardUpgrade(ctx, req, socket, head).catch((error: unknown) => {
      unexpected(error);
      socket.destroy();
    });
  });
  const closeIdle = (): void => {
    for (const socket of sockets) if (!busy.get(socket)) socket.destroy();
  };
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const code = error.code ?? '';
    log.info({ code, reason: error.message }, 'http request rejected');
    if (code === 'ECONNRESET' || !socket.writable || (socket as net.Socket).bytesWritten > 0) {
      socket.destroy();
      return;
    }
    const failure =
      code === 'HPE_HEADER_OVERFLOW'
        ? badRequest(431, 'Request headers too large.')
        : code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? badRequest(408, 'The request headers did not arrive in time.')
          : badRequest(400, `Malformed HTTP request (${code || 'parse error'}).`);
    const r = errorResponse(failure, '-', ctx.proxyServer);
    socket.end(rawResponse(r, http.STATUS_CODES[r.status] ?? 'Bad Request'));
  });

  return {
    handle(socket, destination) {
      if (closing) {
        socket.destroy();
        return;
      }
      sources.set(socket, destination);
      sockets.add(socket);
      socket.once('close', () => {
        sockets.delete(socket);
        busy.delete(socket);
      });
      socket.setNoDelay(true);
      server.emit('connection', socket);
      // The dataplane accepts with pauseOnConnect; the HTTP parser reads from here on.
      socket.resume();
    },
    async close(graceMs = 10_000) {
      closing = true;
      closeIdle();
      const deadline = Date.now() + graceMs;
      for (let i = 0; sockets.size > 0 && Date.now() < deadline && i < 10_000; i++) {
        closeIdle();
        await new Promise((r) => setTimeout(r, 25));
      }
      for (const socket of sockets) socket.destroy();
      await ctx.pools.close(Math.max(0, deadline - Date.now()));
    },
  };
}

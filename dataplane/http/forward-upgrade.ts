// An app request with `Upgrade:` (WebSocket and others): the same destination, authentication and
// rewrite as any request, sent on a connection of its own; the target's answer is passed back as it
// is, and from then on bytes flow both ways untouched. No 401 retry here (the handshake carries no
// body, but a refused upgrade is the app's to handle).
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { AuthResult } from '../auth/types.js';
import { type HandlerContext, RequestRecord, headerPairs, requestIdFor, whyUnusable } from './context.js';
import {
  type ProxyFailure,
  authenticationFailed,
  destinationInvalid,
  destinationMissing,
  errorResponse,
  rawResponse,
  upstreamFailed,
} from './errors.js';
import { DestinationTlsError, type UpstreamEntry } from './pools.js';
import { rewriteRequest } from './rewrite.js';
import { upstreamVia } from './upstream-route.js';

const MAX_RESPONSE_HEAD = 64 * 1024;

function viaProblem(via: ReturnType<typeof upstreamVia>): string | undefined {
  if ('error' in via) return via.error;
  if (via.kind !== 'direct')
    return 'Upgrade (WebSocket) requests through an egress proxy are not supported yet';
  return undefined;
}
const HEAD_END = Buffer.from('\r\n\r\n');

function timeoutError(code: 'CONNECT_TIMEOUT' | 'READ_TIMEOUT'): Error {
  return Object.assign(new Error(code === 'CONNECT_TIMEOUT' ? 'connect timeout' : 'read timeout'), { code });
}

export async function forwardUpgrade(
  ctx: HandlerContext,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): Promise<void> {
  const method = req.method ?? 'GET';
  const requestId = requestIdFor(req.headers);
  const rec = new RequestRecord(ctx, requestId, method, 'upgrade');
  let status = 499;
  const link: { upstream?: net.Socket } = {};
  // The HTTP server let go of this socket: its error and close handling is ours now.
  socket.on('error', (err: NodeJS.ErrnoException) => {
    rec.error ??= `app: ${err.code ?? err.message}`;
    link.upstream?.destroy();
  });
  socket.once('close', () => {
    link.upstream?.destroy();
    rec.finish(status);
  });

  const sendFailure = (failure: ProxyFailure): void => {
    rec.fail(failure);
    status = failure.status;
    link.upstream?.destroy();
    if (!socket.writable) return void socket.destroy();
    const r = errorResponse(failure, requestId, ctx.proxyServer);
    socket.end(rawResponse(r, STATUS_CODES[r.status] ?? 'Error'));
  };

  const destination = ctx.resolve(socket);
  if (!destination) return sendFailure(destinationMissing());
  rec.destination = destination.name;
  const why = whyUnusable(destination, 'upgrade') ?? viaProblem(upstreamVia(destination, ctx.egress));
  const url = destination.url;
  if (why || !url) return sendFailure(destinationInvalid(destination.name, why ?? 'it has no URL'));
  const failureCtx = {
    destination: destination.name,
    target: url.origin,
    connectTimeoutMs: destination.connectTimeoutMs,
    readTimeoutMs: destination.readTimeoutMs,
  };

  let auth: AuthResult;
  let entry: UpstreamEntry;
  try {
    auth = await ctx.authenticator.authenticate(destination);
  } catch (error) {
    return sendFailure(authenticationFailed(error, failureCtx));
  }
  try {
    entry = ctx.pools.get(destination, auth.tls);
  } catch (error) {
    if (error instanceof DestinationTlsError)
      return sendFailure(destinationInvalid(destination.name, error.message));
    throw error;
  }
  if (socket.destroyed) return;

  const up = rewriteRequest(
    destination,
    { method, url: req.url ?? '/', headers: headerPairs(req.rawHeaders) },
    { authHeaders: auth.headers, requestId, upgrade: true },
  );
  rec.setUpstream(up.origin, up.path);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const target: net.Socket = entry.tls
    ? tls.connect({
        host,
        port,
        secureContext: entry.tls.secureContext,
        rejectUnauthorized: entry.tls.rejectUnauthorized,
        ...(net.isIP(host) ? {} : { servername: host }),
        ALPNProtocols: ['http/1.1'],
      })
    : net.connect({ host, port });
  link.upstream = target;

  let phase: 'connect' | 'head' | 'tunnel' = 'connect';
  target.setTimeout(destination.connectTimeoutMs || 0, () =>
    target.destroy(timeoutError(phase === 'connect' ? 'CONNECT_TIMEOUT' : 'READ_TIMEOUT')),
  );
  target.on('error', (error) => {
    if (phase !== 'tunnel') return sendFailure(upstreamFailed(error, failureCtx));
    rec.error ??= `upstream: ${(error as NodeJS.ErrnoException).code ?? error.message}`;
    socket.destroy();
  });

  target.once(entry.tls ? 'secureConnect' : 'connect', () => {
    phase = 'head';
    target.setTimeout(destination.readTimeoutMs || 0);
    const lines = up.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
    target.write(`${method} ${up.path} HTTP/1.1\r\n${lines}\r\n`);
    if (head.length > 0) target.write(head);
  });

  let received = Buffer.alloc(0);
  const onHead = (chunk: Buffer): void => {
    received = Buffer.concat([received, chunk]);
    if (received.indexOf(HEAD_END) < 0) {
      if (received.length > MAX_RESPONSE_HEAD)
        target.destroy(Object.assign(new Error('response head too large'), { code: 'HPE_HEADER_OVERFLOW' }));
      return;
    }
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(received.toString('latin1', 0, 16));
    if (!match) {
      target.destroy(Object.assign(new Error('not an HTTP response'), { code: 'HPE_INVALID_CONSTANT' }));
      return;
    }
    status = Number(match[1]);
    rec.upstreamStatus = status;
    phase = 'tunnel';
    target.setTimeout(0);
    target.off('data', onHead);
    rec.bytesOut += received.length;
    socket.write(received);
    target.on('data', (c: Buffer) => (rec.bytesOut += c.length));
    socket.on('data', (c: Buffer) => (rec.bytesIn += c.length));
    target.pipe(socket);
    socket.pipe(target);
  };
  target.on('data', onHead);
  target.once('close', () => {
    if (phase === 'tunnel' && !socket.destroyed) socket.end();
  });
}

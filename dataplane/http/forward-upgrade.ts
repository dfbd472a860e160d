// An app request with `Upgrade:` (WebSocket and others): the same destination, authentication and
// rewrite as any request, sent on a connection of its own; the target's answer is passed back as it
// is, and from then on bytes flow both ways untouched. No 401 retry here (the handshake carries no
// body, but a refused upgrade is the app's to handle).
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import {
  type HandlerContext,
  RequestRecord,
  credentialsFor,
  headerPairs,
  requestIdFor,
  whyUnusable,
} from './context.js';
import {
  type FailureContext,
  type ProxyFailure,
  missingUserToken,
  proxyRejected,
  destinationInvalid,
  destinationMissing,
  errorResponse,
  rawResponse,
  upstreamFailed,
} from './errors.js';
import { DestinationTlsError, type UpstreamEntry } from './pools.js';
import { rewriteRequest } from './rewrite.js';
import { tunnelConnector } from './proxy-connector.js';
import { proxyHop, upstreamVia, type UpstreamVia, wireRequest } from './upstream-route.js';
import { principalPropagationProblem } from '../onprem/request.js';

const MAX_RESPONSE_HEAD = 64 * 1024;

/** Through a corporate proxy an upgrade always gets a tunnel (CONNECT or SOCKS5), also for http targets. */
function openTunnelled(
  via: Extract<UpstreamVia, { proxy: unknown }>,
  url: URL,
  entry: UpstreamEntry,
  timeoutMs: number,
): Promise<net.Socket> {
  const connect = tunnelConnector(via.proxy, entry.tls, timeoutMs);
  return new Promise((resolve, reject) =>
    connect(
      {
        hostname: url.hostname,
        host: url.host,
        protocol: url.protocol,
        port: url.port || (url.protocol === 'https:' ? '443' : '80'),
      } as Parameters<typeof connect>[0],
      (error, socket) => (error ? reject(error) : resolve(socket as net.Socket)),
    ),
  );
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
  const why = whyUnusable(destination);
  const url = destination.url;
  if (why || !url) return sendFailure(destinationInvalid(destination.name, why ?? 'it has no URL'));
  const via = upstreamVia(destination, ctx.egress);
  if ('error' in via) return sendFailure(destinationInvalid(destination.name, via.error));
  const hop = proxyHop(via, url);
  const failureCtx: FailureContext = {
    destination: destination.name,
    target: url.origin,
    connectTimeoutMs: destination.connectTimeoutMs,
    readTimeoutMs: destination.readTimeoutMs,
    // the connectivity proxy is connected to directly; tunnel clients wrap their own failures
    ...(hop ? { via: { ...hop, connectsToProxy: via.kind === 'connectivity-proxy' } } : {}),
  };
  const appHeaders = headerPairs(req.rawHeaders);
  if (via.kind === 'connectivity-proxy') {
    const problem = principalPropagationProblem(destination, appHeaders);
    if (problem) return sendFailure(missingUserToken(problem));
  }

  const credentials = await credentialsFor(ctx, destination, via, failureCtx);
  if ('failure' in credentials) return sendFailure(credentials.failure);
  const { auth, proxyToken } = credentials;
  let entry: UpstreamEntry;
  try {
    // the same `via` as requests use, so the destination's pool is not replaced back and forth
    entry = ctx.pools.get(destination, auth.tls, via);
  } catch (error) {
    if (error instanceof DestinationTlsError)
      return sendFailure(destinationInvalid(destination.name, error.message));
    throw error;
  }
  if (socket.destroyed) return;

  const up = rewriteRequest(
    destination,
    { method, url: req.url ?? '/', headers: appHeaders },
    { authHeaders: auth.headers, requestId, upgrade: true },
  );
  rec.setUpstream(up.origin, up.path);
  // OnPremise: absolute form with the proxy's headers, on a connection of its own (so never shared
  // between identities); tunnels and direct connections: the request as rewritten
  const wire =
    via.kind === 'connectivity-proxy'
      ? wireRequest(destination, via, up, appHeaders, proxyToken)
      : { path: up.path, headers: up.headers };
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  let tunnelled: net.Socket | undefined;
  if (via.kind === 'http-proxy' || via.kind === 'socks5') {
    try {
      tunnelled = await openTunnelled(via, url, entry, destination.connectTimeoutMs);
    } catch (error) {
      return sendFailure(upstreamFailed(error, failureCtx));
    }
    if (socket.destroyed) return void tunnelled.destroy();
  }
  const target: net.Socket = tunnelled
    ? tunnelled
    : entry.tls
      ? tls.connect({
          host,
          port,
          secureContext: entry.tls.secureContext,
          rejectUnauthorized: entry.tls.rejectUnauthorized,
          ...(net.isIP(host) ? {} : { servername: host }),
          ALPNProtocols: ['http/1.1'],
        })
      : via.kind === 'connectivity-proxy'
        ? net.connect({
            host: ctx.egress.connectivityProxy!.host,
            port: ctx.egress.connectivityProxy!.httpPort,
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

  const sendHead = (): void => {
    phase = 'head';
    target.setTimeout(destination.readTimeoutMs || 0);
    const lines = wire.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('');
    target.write(`${method} ${wire.path} HTTP/1.1\r\n${lines}\r\n`);
    if (head.length > 0) target.write(head);
  };
  if (tunnelled) sendHead();
  else target.once(entry.tls ? 'secureConnect' : 'connect', sendHead);

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
    if (hop && status === 407) {
      // the proxy refused its token: a clear 502, not the proxy's 407 (which the app cannot act on)
      phase = 'tunnel';
      target.destroy();
      return sendFailure(proxyRejected(407, failureCtx, hop));
    }
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

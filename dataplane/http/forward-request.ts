// One app request to an HTTP destination: authenticate, rewrite, send with undici, stream the response
// back. Bodies stream both ways; only small bodies of OAuth destinations are held, so that a 401 can
// be retried once with a fresh token.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, pipeline, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { AuthResult } from '../auth/types.js';
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
  authenticationFailed,
  connectivityTokenFailed,
  destinationInvalid,
  destinationMissing,
  errorResponse,
  invalidResponse,
  missingUserToken,
  proxyRejected,
  upstreamFailed,
} from './errors.js';
import { principalPropagationProblem } from '../onprem/request.js';
import { isConnectivityProxyAnswer, PROXY_ANSWER_MAX_BYTES } from '../onprem/proxy-response.js';
import { DestinationTlsError } from './pools.js';
import { type HeaderList, rewriteRawResponseHeaders, rewriteRequest } from './rewrite.js';
import { callUpstream, type UpstreamResponse } from './upstream-call.js';
import { MissingUserTokenError, proxyHop, upstreamVia, wireRequest } from './upstream-route.js';

/** Token-based authentications: a 401 may mean the cached token was revoked, so refetch once. */
const TOKEN_AUTH = new Set(['OAuth2ClientCredentials', 'OAuth2Password', 'OAuth2TechnicalUserPropagation']);

type Body = Buffer | Readable | null;

function flatten(headers: HeaderList, hasBody: boolean): string[] {
  const out: string[] = [];
  for (const [name, value] of headers) {
    if (!hasBody && name.toLowerCase() === 'content-length') continue;
    out.push(name, value);
  }
  return out;
}

function counter(onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}

/** The first line of a proxy's own (short) error body, for the error message. */
async function proxyAnswerText(response: UpstreamResponse): Promise<string | undefined> {
  const text = await response.text(PROXY_ANSWER_MAX_BYTES + 1);
  return text?.split('\n')[0]?.trim() || undefined;
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function forwardRequest(
  ctx: HandlerContext,
  req: IncomingMessage,
  res: ServerResponse,
  expectContinue: boolean,
): Promise<void> {
  const method = req.method ?? 'GET';
  const requestId = requestIdFor(req.headers);
  const rec = new RequestRecord(ctx, requestId, method, 'request');
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) {
      abort.abort();
      rec.error ??= res.headersSent
        ? 'app closed the connection during the response'
        : 'app closed the connection before the response';
    }
    rec.finish(res.headersSent ? res.statusCode : 499);
  });

  const sendFailure = (failure: ProxyFailure): void => {
    rec.fail(failure);
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    const r = errorResponse(failure, requestId, ctx.proxyServer);
    if (ctx.closing()) res.shouldKeepAlive = false;
    res.writeHead(r.status, r.headers);
    res.end(r.body);
  };

  const destination = ctx.resolve(req.socket);
  if (!destination) return sendFailure(destinationMissing());
  rec.destination = destination.name;
  const why = whyUnusable(destination);
  if (why) return sendFailure(destinationInvalid(destination.name, why));
  const via = upstreamVia(destination, ctx.egress);
  if ('error' in via) return sendFailure(destinationInvalid(destination.name, via.error));
  const hop = proxyHop(via, destination.url);
  const failureCtx: FailureContext = {
    destination: destination.name,
    target: destination.url?.origin,
    connectTimeoutMs: destination.connectTimeoutMs,
    readTimeoutMs: destination.readTimeoutMs,
    ...(hop ? { via: hop } : {}),
  };
  const appHeaders = headerPairs(req.rawHeaders);
  if (via.kind === 'connectivity-proxy') {
    const problem = principalPropagationProblem(destination, appHeaders);
    if (problem) return sendFailure(missingUserToken(problem));
  }

  const credentials = await credentialsFor(ctx, destination, via, failureCtx);
  if ('failure' in credentials) return sendFailure(credentials.failure);
  let { auth, proxyToken } = credentials;

  const contentLength = req.headers['content-length'];
  const chunked = req.headers['transfer-encoding'] !== undefined;
  const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
  const retryable =
    TOKEN_AUTH.has(destination.authentication) &&
    (!hasBody || (!chunked && Number(contentLength) <= ctx.retryBufferBytes));

  if (abort.signal.aborted) return;
  if (expectContinue) res.writeContinue();
  let body: Body = null;
  if (hasBody && retryable) {
    try {
      body = await readAll(req);
    } catch {
      return; // the app went away mid-body; the close handler logs it
    }
    rec.bytesIn = body.length;
  } else if (hasBody) {
    body = pipeline(
      req,
      counter((n) => (rec.bytesIn += n)),
      () => undefined,
    );
  }

  const send = (authResult: AuthResult): Promise<UpstreamResponse> => {
    const up = rewriteRequest(
      destination,
      { method, url: req.url ?? '/', headers: appHeaders },
      { authHeaders: authResult.headers, requestId },
    );
    rec.setUpstream(up.origin, up.path);
    const wire = wireRequest(destination, via, up, appHeaders, proxyToken);
    const { pool } = ctx.pools.get(destination, authResult.tls, via, wire.identity);
    return callUpstream(
      pool,
      {
        method: method as Dispatcher.HttpMethod,
        path: wire.path,
        headers: flatten(wire.headers, hasBody),
        body,
        headersTimeout: destination.readTimeoutMs,
        bodyTimeout: destination.readTimeoutMs,
      },
      abort.signal,
    );
  };

  let response: UpstreamResponse;
  try {
    response = await send(auth);
    if (response.statusCode === 401 && retryable) {
      await response.dump();
      try {
        auth = await ctx.authenticator.authenticate(destination, { forceRefresh: true });
      } catch (error) {
        return sendFailure(authenticationFailed(error, failureCtx));
      }
      rec.retried = true;
      response = await send(auth);
    }
    // The connectivity proxy refused its token (revoked, or the token service rotated its keys):
    // fetch a new one and try once more when the body can be sent again.
    if (
      response.statusCode === 407 &&
      via.kind === 'connectivity-proxy' &&
      proxyToken !== undefined &&
      !rec.retried &&
      (!hasBody || Buffer.isBuffer(body))
    ) {
      await response.dump();
      try {
        proxyToken = await ctx.egress.connectivityProxy!.token(undefined, { rejected: proxyToken });
      } catch (error) {
        return sendFailure(connectivityTokenFailed(error, failureCtx));
      }
      rec.retried = true;
      response = await send(auth);
    }
  } catch (error) {
    if (error instanceof MissingUserTokenError) return sendFailure(missingUserToken(error.message));
    if (error instanceof DestinationTlsError)
      return sendFailure(destinationInvalid(destination.name, error.message));
    if (abort.signal.aborted) return;
    return sendFailure(upstreamFailed(error, failureCtx));
  }

  rec.upstreamStatus = response.statusCode;
  // (only answers on a connection to the proxy itself: through a tunnel, the target is talking)
  if (
    hop?.connectsToProxy &&
    (response.statusCode === 407 ||
      (via.kind === 'connectivity-proxy' && isConnectivityProxyAnswer(response.statusCode, response.headers)))
  ) {
    // the proxy answered for itself: its short text goes into x-error-message, never the body as such
    const detail = await proxyAnswerText(response);
    return sendFailure(proxyRejected(response.statusCode, failureCtx, hop, detail));
  }
  if (ctx.closing()) res.shouldKeepAlive = false;
  try {
    res.writeHead(
      response.statusCode,
      response.statusText || undefined,
      rewriteRawResponseHeaders(response.rawHeaders),
    );
  } catch (error) {
    // e.g. a header value Node refuses to send: nothing has gone out yet, so say so properly
    response.destroy();
    return sendFailure(invalidResponse(failureCtx, (error as Error).message));
  }
  // The app going away is handled by the close handler above: abort() ends the upstream request.
  response.pipeTo(
    res,
    (bytes) => (rec.bytesOut += bytes),
    (error) => {
      if (abort.signal.aborted) return;
      // Status and headers are out: the only honest signal left is a broken connection.
      rec.fail(upstreamFailed(error, failureCtx));
      rec.error = 'upstream response broke off';
    },
  );
}

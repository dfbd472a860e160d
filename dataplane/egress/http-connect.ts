// HTTP CONNECT tunnel client (RFC 9110 section 9.3.6) for corporate HTTP proxies: `CONNECT host:port`
// with optional `Proxy-Authorization: Basic`, and the socket handed back once the proxy answered 2xx.
import net from 'node:net';

/** Where a tunnel failed: reaching the proxy, or the proxy's answer to CONNECT. */
export type HttpConnectStage = 'proxy-connect' | 'connect';

export class HttpConnectError extends Error {
  readonly stage: HttpConnectStage;
  /** the proxy's HTTP status, when it answered */
  readonly status: number | undefined;
  /** one sentence saying what went wrong; never contains a secret */
  readonly meaning: string;
  /** errno-style code of the underlying socket error (ECONNREFUSED, ETIMEDOUT, ...) */
  readonly code: string | undefined;

  constructor(stage: HttpConnectStage, meaning: string, extra: { status?: number; code?: string } = {}) {
    super(`HTTP CONNECT ${stage} failed${extra.status ? ` (${extra.status})` : ''}: ${meaning}`);
    this.name = 'HttpConnectError';
    this.stage = stage;
    this.status = extra.status;
    this.meaning = meaning;
    this.code = extra.code;
  }
}

export interface HttpConnectOptions {
  proxy: { host: string; port: number; username?: string; password?: string };
  target: { host: string; port: number };
  /** for reaching the proxy and its answer to CONNECT (which includes its own connect to the target) */
  timeoutMs: number;
}

/** Longest response head accepted from a proxy before giving up on it. */
const MAX_HEAD = 16 * 1024;

/** `host:port` as the request target of CONNECT (IPv6 literals in brackets). */
export function authorityOf(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  return net.isIPv6(bare) ? `[${bare}]:${port}` : `${bare}:${port}`;
}

/** The request head; Basic credentials are user:password in UTF-8, base64 encoded (RFC 7617). */
export function buildConnectHead(
  host: string,
  port: number,
  credentials?: { username?: string; password?: string },
): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new HttpConnectError('connect', `invalid target port ${port}`);
  if (/[\s/@]/.test(host) || host === '')
    throw new HttpConnectError('connect', `invalid target host "${host}"`);
  const authority = authorityOf(host, port);
  const lines = [`CONNECT ${authority} HTTP/1.1`, `Host: ${authority}`];
  if (credentials?.username !== undefined) {
    const basic = Buffer.from(`${credentials.username}:${credentials.password ?? ''}`, 'utf8').toString(
      'base64',
    );
    lines.push(`Proxy-Authorization: Basic ${basic}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

export interface ConnectResponseHead {
  /** bytes the head occupies, blank line included */
  length: number;
  status: number;
  reason: string;
}

/** Parses the response head at the start of `data`; undefined while incomplete. */
export function parseConnectResponseHead(data: Buffer): ConnectResponseHead | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) {
    if (data.length > MAX_HEAD)
      throw new HttpConnectError('connect', 'the proxy’s response head is too long');
    if (data.length >= 5 && !data.subarray(0, 5).equals(Buffer.from('HTTP/')))
      throw new HttpConnectError('connect', 'the proxy did not answer with HTTP');
    return undefined;
  }
  const statusLine = data.subarray(0, data.indexOf('\r\n')).toString('latin1');
  const match = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!match) throw new HttpConnectError('connect', 'the proxy did not answer with an HTTP/1.x status line');
  return { length: end + 4, status: Number(match[1]), reason: match[2] ?? '' };
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

/**
 * Connects to the proxy (allowHalfOpen), sends CONNECT and resolves with the socket once the proxy
 * answered 2xx: paused, with any bytes the target sent after the head put back into it. Rejects with an
 * HttpConnectError; the socket is destroyed.
 */
export async function connectHttpTunnel(options: HttpConnectOptions): Promise<net.Socket> {
  const { proxy, target } = options;
  const head = buildConnectHead(target.host, target.port, proxy); // bad input fails before connecting
  const authority = authorityOf(target.host, target.port);
  const socket = net.connect({ host: proxy.host, port: proxy.port, allowHalfOpen: true });
  let stage: HttpConnectStage = 'proxy-connect';
  let buffered: Buffer = Buffer.alloc(0);

  return new Promise<net.Socket>((resolve, reject) => {
    const finish = (error?: HttpConnectError) => {
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
      if (error) {
        socket.destroy();
        reject(error);
        return;
      }
      if (buffered.length) socket.unshift(buffered);
      resolve(socket);
    };
    const timer = setTimeout(() => {
      const meaning =
        stage === 'proxy-connect'
          ? `could not reach the proxy within ${options.timeoutMs} ms`
          : `no answer from the proxy within ${options.timeoutMs} ms`;
      finish(new HttpConnectError(stage, meaning, { code: 'ETIMEDOUT' }));
    }, options.timeoutMs);
    const onData = (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      let response: ConnectResponseHead | undefined;
      try {
        response = parseConnectResponseHead(buffered);
      } catch (error) {
        return finish(error as HttpConnectError);
      }
      if (!response) return;
      buffered = buffered.subarray(response.length);
      if (response.status >= 200 && response.status < 300) return finish();
      const meaning = describeConnectStatus(
        response.status,
        response.reason,
        authority,
        proxy.username !== undefined,
      );
      finish(new HttpConnectError('connect', meaning, { status: response.status }));
    };
    const onEnd = () =>
      finish(new HttpConnectError(stage, 'the proxy closed the connection before answering CONNECT'));
    const onError = (error: NodeJS.ErrnoException) => {
      const code = error.code ?? 'ERROR';
      const meaning =
        stage === 'proxy-connect'
          ? `cannot connect to the proxy (${code})`
          : `connection to the proxy failed (${code})`;
      finish(new HttpConnectError(stage, meaning, { code }));
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    socket.once('connect', () => {
      stage = 'connect';
      socket.write(head);
    });
  });
}

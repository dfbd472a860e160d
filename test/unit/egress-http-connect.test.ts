import { afterEach, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import {
  connectRequest,
  describeConnectStatus,
  EgressProxyError,
  openTunnel,
  parseConnectResponseHead,
} from '../../dataplane/egress/http-connect.js';
import type { EgressProxy } from '../../dataplane/egress/types.js';
import { cleanups, listen, startEchoUpstream, startScriptedHttpProxy } from './egress-helpers.js';

afterEach(() => cleanups.splice(0).forEach((fn) => fn()));

async function failure(promise: Promise<unknown>): Promise<EgressProxyError> {
  try {
    await promise;
  } catch (error) {
    return error as EgressProxyError;
  }
  throw new Error('expected a rejection');
}

function readLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString();
      if (text.includes('\n')) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.resume();
  });
}

const proxyAt = (port: number, extra: Partial<EgressProxy> = {}): EgressProxy => ({
  kind: 'http',
  host: '127.0.0.1',
  port,
  ...extra,
});

describe('frames', () => {
  test('CONNECT head: authority form, Host, Basic credentials (RFC 7617, UTF-8)', () => {
    const open = proxyAt(3128);
    expect(connectRequest(open, 'db.example', 5432)).toBe(
      'CONNECT db.example:5432 HTTP/1.1\r\nHost: db.example:5432\r\n\r\n',
    );
    expect(connectRequest(open, '2001:db8::7', 22)).toBe(
      'CONNECT [2001:db8::7]:22 HTTP/1.1\r\nHost: [2001:db8::7]:22\r\n\r\n',
    );
    const aladdin = proxyAt(3128, { username: 'Aladdin', password: 'open sesame' });
    expect(connectRequest(aladdin, '192.0.2.1', 443)).toContain(
      'Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n',
    );
    expect(() => connectRequest(open, 'a b', 1)).toThrow(/invalid target host "a b"/);
    expect(() => connectRequest(open, 'h', 0)).toThrow(/invalid target port 0/);
  });

  test('response head: incomplete, complete with leftover, not HTTP, too long', () => {
    expect(parseConnectResponseHead(Buffer.from('HTTP/1.1 200 OK\r\n'))).toBeUndefined();
    expect(
      parseConnectResponseHead(Buffer.from('HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0')),
    ).toEqual({ length: 39, status: 200, reason: 'Connection established' });
    expect(
      parseConnectResponseHead(Buffer.from('HTTP/1.0 407 Proxy Authentication Required\r\nX: y\r\n\r\n')),
    ).toMatchObject({ status: 407 });
    expect(() => parseConnectResponseHead(Buffer.from('\x05\x00\x00\x01\x00\x00'))).toThrow(/not HTTP/);
    expect(() => parseConnectResponseHead(Buffer.from(`HTTP/1.1 200 ${'x'.repeat(17000)}`))).toThrow(
      /oversized/,
    );
  });

  test('status meanings', () => {
    expect(describeConnectStatus(407, 'Proxy Authentication Required', 'h:1', true)).toMatch(
      /rejected the username or password/,
    );
    expect(describeConnectStatus(407, 'Proxy Authentication Required', 'h:1', false)).toMatch(
      /requires authentication and none is configured/,
    );
    expect(describeConnectStatus(403, 'Forbidden', 'h:1', false)).toBe(
      'the proxy does not allow a tunnel to h:1 (403 Forbidden)',
    );
    expect(describeConnectStatus(502, 'Bad Gateway', 'h:1', false)).toBe(
      'the proxy could not connect to h:1 (502 Bad Gateway)',
    );
  });
});

describe('openTunnel', () => {
  test('200: the head carries the credentials; bytes after the head reach the caller; echo both ways', async () => {
    const upstreamPort = await startEchoUpstream();
    const proxy = await startScriptedHttpProxy({ upstreamPort, credentials: 'alice:s3cret' });
    const socket = await openTunnel({
      proxy: proxyAt(proxy.port, { username: 'alice', password: 's3cret' }),
      host: 'db.example',
      port: 5432,
      timeoutMs: 5000,
      allowHalfOpen: true,
    });
    cleanups.push(() => socket.destroy());
    expect(socket.allowHalfOpen).toBe(true);
    expect(await readLine(socket)).toBe('hello\n');
    socket.write('ping\n');
    expect(await readLine(socket)).toBe('ping\n');
    expect(proxy.heads[0]).toMatch(/^CONNECT db\.example:5432 HTTP\/1\.1\r\n/);
  });

  test('407 with wrong credentials: connect stage, the password is not in the message', async () => {
    const proxy = await startScriptedHttpProxy({ credentials: 'alice:s3cret' });
    const error = await failure(
      openTunnel({
        proxy: proxyAt(proxy.port, { username: 'alice', password: 'wrong-pw' }),
        host: 'db.example',
        port: 5432,
        timeoutMs: 5000,
      }),
    );
    expect(error).toBeInstanceOf(EgressProxyError);
    expect(error).toMatchObject({ stage: 'connect', status: 407, code: 'PROXY_CONNECT_STATUS' });
    expect(error.message).toBe(
      `egress proxy http://alice:<redacted>@127.0.0.1:${proxy.port}: the proxy rejected the username or password (407 Proxy Authentication Required)`,
    );
    expect(error.message).not.toContain('wrong-pw');
  });

  test.each([
    [403, /does not allow a tunnel to 192\.0\.2\.9:25/],
    [502, /could not connect to 192\.0\.2\.9:25 \(502 Bad Gateway\)/],
  ])('%s from the proxy', async (status, meaning) => {
    const proxy = await startScriptedHttpProxy({ status });
    const error = await failure(
      openTunnel({ proxy: proxyAt(proxy.port), host: '192.0.2.9', port: 25, timeoutMs: 5000 }),
    );
    expect(error.status).toBe(status);
    expect(error.meaning).toMatch(meaning);
  });

  test('proxy down, proxy silent, proxy closes, not HTTP, aborted: clear errors, no hang', async () => {
    const port = await listen(net.createServer());
    cleanups.splice(0).forEach((fn) => fn());
    const down = await failure(openTunnel({ proxy: proxyAt(port), host: 'h', port: 1, timeoutMs: 5000 }));
    expect(down).toMatchObject({ stage: 'proxy-connect', code: 'ECONNREFUSED' });

    const silent = await startScriptedHttpProxy({ silent: true });
    const timeout = await failure(
      openTunnel({ proxy: proxyAt(silent.port), host: 'h', port: 1, timeoutMs: 300 }),
    );
    expect(timeout).toMatchObject({
      stage: 'connect',
      code: 'CONNECT_TIMEOUT',
      meaning: 'no answer from the proxy within 300 ms',
    });

    const closing = await listen(net.createServer((s) => s.end()));
    const closed = await failure(
      openTunnel({ proxy: proxyAt(closing), host: 'h', port: 1, timeoutMs: 5000 }),
    );
    expect(closed.meaning).toBe('the proxy closed the connection before answering CONNECT');

    const socks = await listen(net.createServer((s) => s.end(Buffer.from([5, 0xff, 0, 0, 0, 0]))));
    const notHttp = await failure(openTunnel({ proxy: proxyAt(socks), host: 'h', port: 1, timeoutMs: 5000 }));
    expect(notHttp).toMatchObject({
      code: 'HPE_INVALID_CONSTANT',
      meaning: 'the proxy did not answer CONNECT with HTTP',
    });

    const controller = new AbortController();
    const pending = openTunnel({
      proxy: proxyAt(silent.port),
      host: 'h',
      port: 1,
      timeoutMs: 5000,
      signal: controller.signal,
    });
    controller.abort();
    expect(await failure(pending)).toMatchObject({ code: 'ABORT_ERR' });
  });
});

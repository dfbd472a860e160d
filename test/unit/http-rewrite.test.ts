import { describe, expect, test } from '@jest/globals';
import { TokenServiceError } from '../../dataplane/auth/types.js';
import {
  authenticationFailed,
  destinationMissing,
  errorResponse,
  rawResponse,
  upstreamFailed,
} from '../../dataplane/http/errors.js';
import {
  joinPath,
  rewriteRawResponseHeaders,
  rewriteRequest,
  rewriteResponseHeaders,
  type HeaderList,
} from '../../dataplane/http/rewrite.js';
import { destination } from './http-harness.js';

const dest = (url: string, extra = {}) => destination({ url: new URL(url), ...extra });
const get = (url: string, headers: HeaderList = []) => ({ method: 'GET', url, headers });
const values = (headers: HeaderList, name: string) =>
  headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);

describe('joinPath', () => {
  test.each([
    ['/api', '/orders', '/api/orders'],
    ['/api/', '/orders', '/api/orders'],
    ['/api//', '/orders/', '/api/orders/'],
    ['/', '/orders', '/orders'],
    ['', '/orders', '/orders'],
    ['/api', '/', '/api'],
    ['/api/', '/', '/api/'],
    ['/', '/', '/'],
  ])('%s + %s = %s', (prefix, path, expected) => {
    expect(joinPath(prefix, path)).toBe(expected);
  });
});

describe('rewriteRequest', () => {
  test('target origin and path prefix; the app query kept, the destination queries appended', () => {
    const up = rewriteRequest(
      dest('https://orders.example.test/api', {
        queries: [
          ['sap-client', '100'],
          ['q', 'dest value'],
        ],
      }),
      get('/v1/items?q=app&x=1'),
    );
    expect(up.origin).toBe('https://orders.example.test');
    expect(up.path).toBe('/api/v1/items?q=app&x=1&sap-client=100&q=dest%20value');
  });

  test('a query in the destination URL itself is kept too', () => {
    const up = rewriteRequest(dest('http://o.example.test/api?fixed=1'), get('/x'));
    expect(up.path).toBe('/api/x?fixed=1');
  });

  test('absolute-form request targets and `*` are reduced to path and query', () => {
    expect(rewriteRequest(dest('http://o.example.test/api'), get('http://orders/x?y=1')).path).toBe(
      '/api/x?y=1',
    );
    expect(rewriteRequest(dest('http://o.example.test/api'), { ...get('*'), method: 'OPTIONS' }).path).toBe(
      '/api',
    );
  });

  test('Host is the target host, with the port only when it is not the default', () => {
    const host = (url: string) =>
      values(rewriteRequest(dest(url), get('/', [['Host', 'orders']])).headers, 'host');
    expect(host('https://o.example.test/api')).toEqual(['o.example.test']);
    expect(host('https://o.example.test:443/')).toEqual(['o.example.test']);
    expect(host('https://o.example.test:8443/')).toEqual(['o.example.test:8443']);
    expect(host('http://o.example.test:80/')).toEqual(['o.example.test']);
    expect(host('http://[2001:db8::1]:8080/')).toEqual(['[2001:db8::1]:8080']);
  });

  test('destination headers are added; a name the app also sent is sent with both values', () => {
    const up = rewriteRequest(
      dest('http://o.example.test/', {
        headers: [
          ['x-api-version', '2'],
          ['x-tenant', 'acme'],
        ],
      }),
      get('/', [
        ['X-Api-Version', '1'],
        ['Accept', 'application/json'],
      ]),
    );
    expect(values(up.headers, 'x-api-version')).toEqual(['1', '2']);
    expect(values(up.headers, 'x-tenant')).toEqual(['acme']);
    expect(values(up.headers, 'accept')).toEqual(['application/json']);
  });

  test('authentication headers replace what the app sent, and win over destination headers', () => {
    const up = rewriteRequest(
      dest('http://o.example.test/', { headers: [['authorization', 'from-destination']] }),
      get('/', [
        ['Authorization', 'Bearer app-forged'],
        ['authorization', 'Basic second'],
      ]),
      { authHeaders: [['Authorization', 'Bearer real']] },
    );
    expect(values(up.headers, 'authorization')).toEqual(['Bearer real']);
  });

  test('hop-by-hop headers and those named in Connection are removed; Content-Length kept', () => {
    const up = rewriteRequest(
      dest('http://o.example.test/'),
      get('/', [
        ['Connection', 'keep-alive, X-Hop'],
        ['Keep-Alive', 'timeout=5'],
        ['X-Hop', 'gone'],
        ['Proxy-Authorization', 'Basic cHJveHk='],
        ['Proxy-Connection', 'keep-alive'],
        ['TE', 'trailers'],
        ['Trailer', 'x-t'],
        ['Transfer-Encoding', 'chunked'],
        ['Upgrade', 'websocket'],
        ['Expect', '100-continue'],
        ['Content-Length', '5'],
        ['X-Forwarded-For', '10.0.0.1'],
      ]),
    );
    expect(up.headers.map(([n]) => n.toLowerCase()).sort()).toEqual([
      'content-length',
      'host',
      'x-forwarded-for',
    ]);
  });

  test('no x-forwarded-* or Via are added', () => {
    const names = rewriteRequest(dest('http://o.example.test/'), get('/')).headers.map(([n]) =>
      n.toLowerCase(),
    );
    expect(names.filter((n) => n.startsWith('x-forwarded') || n === 'via')).toEqual([]);
  });

  test("x-request-id: added when the app sent none, the app's kept otherwise", () => {
    const d = dest('http://o.example.test/');
    expect(values(rewriteRequest(d, get('/'), { requestId: 'r-1' }).headers, 'x-request-id')).toEqual([
      'r-1',
    ]);
    expect(
      values(
        rewriteRequest(d, get('/', [['X-Request-Id', 'mine']]), { requestId: 'r-1' }).headers,
        'x-request-id',
      ),
    ).toEqual(['mine']);
  });

  test('upgrade requests keep Upgrade and say Connection: Upgrade', () => {
    const up = rewriteRequest(
      dest('https://o.example.test/ws-base'),
      get('/chat', [
        ['Connection', 'Upgrade'],
        ['Upgrade', 'websocket'],
        ['Sec-WebSocket-Key', 'abc'],
        ['Sec-WebSocket-Version', '13'],
      ]),
      { upgrade: true },
    );
    expect(up.path).toBe('/ws-base/chat');
    expect(values(up.headers, 'upgrade')).toEqual(['websocket']);
    expect(values(up.headers, 'connection')).toEqual(['Upgrade']);
    expect(values(up.headers, 'sec-websocket-key')).toEqual(['abc']);
  });

  test('user info in the destination URL never reaches the origin or headers', () => {
    const up = rewriteRequest(dest('https://user:pw@o.example.test/'), get('/'));
    expect(up.origin).toBe('https://o.example.test');
    expect(JSON.stringify(up)).not.toContain('pw');
  });

  test('a destination without URL is refused with its name', () => {
    expect(() => rewriteRequest(destination({ name: 'tcp-thing' }), get('/'))).toThrow(/tcp-thing/);
  });
});

describe('rewriteResponseHeaders', () => {
  test('drops hop-by-hop and Connection-named headers, keeps multi-values', () => {
    expect(
      rewriteResponseHeaders({
        connection: 'keep-alive, x-private',
        'keep-alive': 'timeout=5',
        'transfer-encoding': 'chunked',
        'x-private': '1',
        'set-cookie': ['a=1', 'b=2'],
        'content-type': 'text/plain',
      }),
    ).toEqual({ 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/plain' });
  });
});

describe('rewriteRawResponseHeaders', () => {
  const raw = (...pairs: string[]) => pairs.map((p) => Buffer.from(p, 'latin1'));

  test('drops hop-by-hop and Connection-named headers (any case), keeps order, case and repeats', () => {
    expect(
      rewriteRawResponseHeaders(
        raw(
          'Content-Type',
          'text/plain',
          'Set-Cookie',
          'a=1',
          'X-Private',
          '1',
          'Connection',
          'keep-alive, X-PRIVATE',
          'Keep-Alive',
          'timeout=5',
          'Transfer-Encoding',
          'chunked',
          'Set-Cookie',
          'b=2',
        ),
      ),
    ).toEqual(['Content-Type', 'text/plain', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2']);
  });

  test('values are passed byte for byte (latin1), a header named __proto__ is just a header', () => {
    expect(rewriteRawResponseHeaders(raw('x-name', 'caf\xe9', '__proto__', 'x'))).toEqual([
      'x-name',
      'caf\xe9',
      '__proto__',
      'x',
    ]);
  });
});

describe('error responses', () => {
  const ctx = {
    destination: 'orders',
    target: 'https://o.example.test',
    connectTimeoutMs: 1000,
    readTimeoutMs: 300,
  };

  test('token service failure: 502, Token Service, internal code, JSON body', () => {
    const f = authenticationFailed(
      new TokenServiceError('token service answered 401 (invalid_client)', 401),
      ctx,
    );
    const r = errorResponse(f, 'req-1', 'detour');
    expect(r.status).toBe(502);
    expect(r.headers).toMatchObject({
      'x-error-origin': 'Token Service',
      'x-internal-error-code': '401',
      'x-request-id': 'req-1',
      'x-proxy-server': 'detour',
      'content-type': 'application/json',
    });
    expect(JSON.parse(r.body)).toEqual({
      error: {
        status: 502,
        message: r.headers['x-error-message'],
        origin: 'Token Service',
        requestId: 'req-1',
        internalErrorCode: 401,
      },
    });
    expect(r.headers['x-error-message']).toContain("'orders'");
  });

  test.each([
    [{ code: 'ECONNREFUSED' }, 503, 'connect-refused'],
    [{ code: 'EHOSTUNREACH' }, 503, 'unreachable'],
    [{ code: 'ENOTFOUND' }, 503, 'dns'],
    [{ code: 'DEPTH_ZERO_SELF_SIGNED_CERT', message: 'self-signed certificate' }, 503, 'tls'],
    [
      { code: 'ERR_TLS_CERT_ALTNAME_INVALID', message: "Hostname/IP does not match certificate's altnames" },
      503,
      'tls',
    ],
    [{ code: 'UND_ERR_SOCKET', message: 'other side closed' }, 503, 'connection-reset'],
    [{ code: 'UND_ERR_CONNECT_TIMEOUT' }, 504, 'connect-timeout'],
    [{ code: 'UND_ERR_HEADERS_TIMEOUT' }, 504, 'read-timeout'],
    [{ code: 'UND_ERR_BODY_TIMEOUT' }, 504, 'read-timeout'],
    [{ code: 'HPE_INVALID_CONSTANT' }, 502, 'protocol'],
    [{ code: 'SOMETHING_ELSE' }, 502, 'internal'],
  ])('upstream error %j → %i %s', (e, status, kind) => {
    const error = Object.assign(new Error((e as { message?: string }).message ?? 'x'), e);
    const f = upstreamFailed(error, ctx);
    expect([f.status, f.kind]).toEqual([status, kind]);
    expect(f.message).toContain('https://o.example.test');
  });

  test('a removed destination: 502 from the Destination Service origin', () => {
    const r = errorResponse(destinationMissing(), 'id', 'detour');
    expect([r.status, r.headers['x-error-origin']]).toEqual([502, 'Destination Service']);
  });

  test('messages are one printable-ASCII line (safe as a header), raw form is valid HTTP', () => {
    const f = authenticationFailed(new Error('bad\r\nInjected: yes\u00e9'), ctx);
    const r = errorResponse(f, 'id', 'detour');
    expect(r.headers['x-error-message']).toMatch(/^[\x20-\x7e]+$/);
    const raw = rawResponse(r, 'Bad Gateway');
    expect(raw.startsWith('HTTP/1.1 502 Bad Gateway\r\n')).toBe(true);
    expect(raw).toContain('connection: close\r\n\r\n{');
    expect(raw).not.toMatch(/\r\nInjected/);
  });
});

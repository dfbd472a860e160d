import { afterEach, describe, expect, test } from '@jest/globals';
import net from 'node:net';
import {
  buildConnectRequest,
  buildGreeting,
  buildSapJwtFrame,
  buildUsernamePasswordFrame,
  connectSocks5,
  describeReply,
  parseAuthReply,
  parseConnectReply,
  parseMethodSelection,
  Socks5Error,
} from '../../dataplane/egress/socks5.js';
import {
  cleanups,
  listen,
  startEchoUpstream,
  startScriptedSocks5 as startScriptedProxy,
} from './egress-helpers.js';

afterEach(() => cleanups.splice(0).forEach((fn) => fn()));

// A 155-character JWT-shaped string (header.payload.signature).
const JWT_155 = `eyJhbGciOiJSUzI1NiJ9.${'a'.repeat(100)}.${'s'.repeat(33)}`;

function thrown(fn: () => unknown): Socks5Error {
  try {
    fn();
  } catch (error) {
    return error as Socks5Error;
  }
  throw new Error('expected a throw');
}

describe('frames', () => {
  test('greeting lists the offered methods', () => {
    expect([...buildGreeting([0x80])]).toEqual([0x05, 0x01, 0x80]);
    expect([...buildGreeting([0x00, 0x02])]).toEqual([0x05, 0x02, 0x00, 0x02]);
  });

  test('SAP 0x80 frame without a location id: 01, length BE, JWT, 00 (161 bytes for a 155-char JWT)', () => {
    expect(JWT_155).toHaveLength(155);
    const frame = buildSapJwtFrame(JWT_155);
    expect(frame).toHaveLength(161);
    expect([...frame.subarray(0, 5)]).toEqual([0x01, 0x00, 0x00, 0x00, 155]);
    expect(frame.subarray(5, 160).toString()).toBe(JWT_155);
    expect(frame[160]).toBe(0x00);
  });

  test('SAP 0x80 frame with location id cloud-sdk-js: 177 bytes ending in 10 + base64', () => {
    const frame = buildSapJwtFrame(JWT_155, 'cloud-sdk-js');
    expect(frame).toHaveLength(177);
    expect(frame[160]).toBe(0x10);
    expect(frame.subarray(161).toString('ascii')).toBe('Y2xvdWQtc2RrLWpz');
  });

  test('SAP 0x80 frame: JWT length is 4 bytes big-endian (a 70000-byte token)', () => {
    const frame = buildSapJwtFrame('x'.repeat(70000));
    expect([...frame.subarray(1, 5)]).toEqual([0x00, 0x01, 0x11, 0x70]);
    expect(frame).toHaveLength(1 + 4 + 70000 + 1);
  });

  test('SAP 0x80 frame: a location id longer than 255 base64 characters is refused', () => {
    const error = thrown(() => buildSapJwtFrame('t', 'L'.repeat(200)));
    expect(error).toBeInstanceOf(Socks5Error);
    expect(error.stage).toBe('auth');
    expect(error.message).toMatch(/location id is too long \(268 base64 characters/);
  });

  test('RFC 1929 frame: 01 ulen user plen password; limits named without the secret', () => {
    expect([...buildUsernamePasswordFrame('bob', 'pw')]).toEqual([
      0x01,
      3,
      ...Buffer.from('bob'),
      2,
      ...Buffer.from('pw'),
    ]);
    const long = thrown(() => buildUsernamePasswordFrame('bob', 'p'.repeat(256)));
    expect(long.message).toBe('SOCKS5 auth failed: the proxy password must be 1 to 255 bytes (it is 256)');
    expect(thrown(() => buildUsernamePasswordFrame('', 'pw')).message).toMatch(/username must be 1 to 255/);
  });

  test('CONNECT by domain name, IPv4 and IPv6', () => {
    expect([...buildConnectRequest('db.corp', 5432)]).toEqual([
      0x05,
      0x01,
      0x00,
      0x03,
      7,
      ...Buffer.from('db.corp'),
      0x15,
      0x38,
    ]);
    expect([...buildConnectRequest('192.0.2.7', 443)]).toEqual([
      0x05, 0x01, 0x00, 0x01, 192, 0, 2, 7, 0x01, 0xbb,
    ]);
    expect([...buildConnectRequest('2001:db8::1', 80)]).toEqual([
      0x05,
      0x01,
      0x00,
      0x04,
      0x20,
      0x01,
      0x0d,
      0xb8,
      ...Array(11).fill(0),
      1,
      0,
      80,
    ]);
    expect([...buildConnectRequest('[::ffff:192.0.2.1]', 1)].slice(4, 20)).toEqual([
      ...Array(10).fill(0),
      0xff,
      0xff,
      192,
      0,
      2,
      1,
    ]);
    expect(thrown(() => buildConnectRequest('h', 0)).message).toMatch(/invalid target port 0/);
    expect(thrown(() => buildConnectRequest('a'.repeat(256), 1)).message).toMatch(/1 to 255 bytes/);
  });

  test('method selection: chosen, none acceptable, not offered, not SOCKS5', () => {
    expect(parseMethodSelection(Buffer.from([5, 0x80]), [0x80])).toBe(0x80);
    expect(thrown(() => parseMethodSelection(Buffer.from([5, 0xff]), [0x80])).message).toBe(
      'SOCKS5 greeting failed: the proxy accepts none of the offered authentication methods (0x80 SAP JWT)',
    );
    expect(thrown(() => parseMethodSelection(Buffer.from([5, 0x00]), [0x02])).message).toMatch(
      /chose method 0x00, which was not offered/,
    );
    expect(thrown(() => parseMethodSelection(Buffer.from('HT'), [0x00])).message).toMatch(
      /not a SOCKS5 proxy/,
    );
  });

  test('authentication replies: 01 00 succeeds; SAP codes carry their meaning', () => {
    expect(() => parseAuthReply(Buffer.from([1, 0]), 0x80)).not.toThrow();
    expect(() => parseAuthReply(Buffer.from([1, 0]), 0x02)).not.toThrow();
    const sap = thrown(() => parseAuthReply(Buffer.from([1, 0x05]), 0x80));
    expect(sap).toMatchObject({ stage: 'auth', replyCode: 5, replyName: 'CONNECTION_REFUSED' });
    expect(sap.meaning).toMatch(/authentication failure/);
    const token = thrown(() => parseAuthReply(Buffer.from([1, 0x01]), 0x80));
    expect(token).toMatchObject({ stage: 'auth', replyCode: 1, replyName: 'FAILURE' });
    expect(token.meaning).toBe('the connectivity proxy did not accept the token (authentication failed)');
    const noConnector = thrown(() => parseAuthReply(Buffer.from([1, 0x03]), 0x80));
    expect(noConnector).toMatchObject({ replyName: 'NETWORK_UNREACHABLE' });
    const rfc = thrown(() => parseAuthReply(Buffer.from([1, 0x01]), 0x02));
    expect(rfc.message).toBe('SOCKS5 auth failed (reply 0x01): the proxy rejected the username or password');
  });

  test('CONNECT reply: incomplete, IPv4, IPv6 and domain bound addresses', () => {
    const v4 = Buffer.from([5, 0, 0, 1, 198, 51, 100, 1, 0x1f, 0x90]);
    for (let n = 0; n < v4.length; n++)
      expect(parseConnectReply(v4.subarray(0, n), 'rfc1928')).toBeUndefined();
    expect(parseConnectReply(Buffer.concat([v4, Buffer.from('extra')]), 'rfc1928')).toEqual({
      length: 10,
      code: 0,
      bound: { host: '198.51.100.1', port: 8080 },
    });
    const v6 = Buffer.from([5, 0, 0, 4, 0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 2, 0, 22]);
    expect(parseConnectReply(v6, 'sap')).toMatchObject({
      length: 22,
      bound: { host: '2001:db8::2', port: 22 },
    });
    const name = Buffer.from([5, 0, 0, 3, 4, ...Buffer.from('host'), 0, 1]);
    expect(parseConnectReply(name, 'sap')).toMatchObject({ length: 11, bound: { host: 'host', port: 1 } });
    expect(thrown(() => parseConnectReply(Buffer.from([5, 0, 0, 9, 0]), 'sap')).message).toMatch(
      /unexpected address type 0x09/,
    );
  });

  test('CONNECT reply codes: decided on REP alone, SAP and RFC 1928 meanings', () => {
    const noConnector = thrown(() => parseConnectReply(Buffer.from([5, 3]), 'sap'));
    expect(noConnector).toMatchObject({ stage: 'connect', replyCode: 3, replyName: 'NETWORK_UNREACHABLE' });
    expect(noConnector.meaning).toMatch(
      /no Cloud Connector is connected for this subaccount and location id/,
    );
    const forbidden = thrown(() => parseConnectReply(Buffer.from([5, 2, 0, 1, 0, 0, 0, 0, 0, 0]), 'sap'));
    expect(forbidden.message).toMatch(
      /^SOCKS5 connect failed \(reply 0x02 FORBIDDEN\): not allowed by the Cloud Connector/,
    );
    expect(thrown(() => parseConnectReply(Buffer.from([5, 2]), 'rfc1928')).message).toBe(
      'SOCKS5 connect failed (reply 0x02): connection not allowed by the proxy’s ruleset',
    );
    for (let code = 1; code <= 8; code++) {
      expect(describeReply(code, 'sap').name).toMatch(/^[A-Z_]+$/);
      expect(describeReply(code, 'rfc1928').meaning).not.toMatch(/unknown/);
    }
    expect(describeReply(0x42, 'sap').meaning).toBe('unknown reply code 0x42 from the connectivity proxy');
  });
});

// ---------------------------------------------------------------------------------------------------
// The client against scripted SOCKS5 servers on loopback.

function readLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer) => {
      text += c.toString();
      if (text.includes('\n')) {
        socket.off('data', onData);
        socket.pause();
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.resume();
  });
}

async function failure(promise: Promise<unknown>): Promise<Socks5Error> {
  try {
    await promise;
  } catch (error) {
    return error as Socks5Error;
  }
  throw new Error('expected a rejection');
}

describe('connectSocks5', () => {
  test('SAP 0x80 with a location id: frames as sent, then bytes flow both ways (greeting kept)', async () => {
    const upstreamPort = await startEchoUpstream();
    const proxy = await startScriptedProxy({ upstreamPort });
    const socket = await connectSocks5({
      proxy: { host: '127.0.0.1', port: proxy.port },
      target: { host: 'virtual-db', port: 5432 },
      auth: { method: 'sap-jwt', token: JWT_155, locationId: 'cloud-sdk-js' },
      timeoutMs: 5000,
    });
    cleanups.push(() => socket.destroy());
    expect(await readLine(socket)).toBe('hello\n');
    socket.write('ping\n');
    expect(await readLine(socket)).toBe('ping\n');
    const [rec] = proxy.recorded;
    expect([...rec!.greeting!]).toEqual([5, 1, 0x80]);
    expect(rec!.auth!.equals(buildSapJwtFrame(JWT_155, 'cloud-sdk-js'))).toBe(true);
    expect(rec!.connect!.equals(buildConnectRequest('virtual-db', 5432))).toBe(true);
  });

  test('username/password (0x02) and no authentication (0x00)', async () => {
    const upstreamPort = await startEchoUpstream();
    const proxy = await startScriptedProxy({ upstreamPort });
    for (const auth of [
      { method: 'username-password', username: 'alice', password: 's3cret' } as const,
      { method: 'none' } as const,
    ]) {
      const socket = await connectSocks5({
        proxy: { host: '127.0.0.1', port: proxy.port },
        target: { host: '192.0.2.10', port: 7 },
        auth,
        timeoutMs: 5000,
      });
      cleanups.push(() => socket.destroy());
      expect(await readLine(socket)).toBe('hello\n');
    }
    expect([...proxy.recorded[0]!.greeting!]).toEqual([5, 1, 2]);
    expect(proxy.recorded[0]!.auth!.equals(buildUsernamePasswordFrame('alice', 's3cret'))).toBe(true);
    expect([...proxy.recorded[1]!.greeting!]).toEqual([5, 1, 0]);
    expect(proxy.recorded[1]!.auth).toBeUndefined();
  });

  const sap = { method: 'sap-jwt', token: JWT_155, locationId: 'loc' } as const;

  test.each([
    [0x03, 'NETWORK_UNREACHABLE', /no Cloud Connector is connected/],
    [0x02, 'FORBIDDEN', /access control/],
    [0x04, 'HOST_UNREACHABLE', /cannot open a connection to the backend/],
    [0x01, 'FAILURE', /general failure/],
  ])('SAP CONNECT reply 0x%s → %s', async (rep, name, meaning) => {
    const proxy = await startScriptedProxy({ rep });
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port: proxy.port },
        target: { host: 'v', port: 1 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error).toBeInstanceOf(Socks5Error);
    expect(error).toMatchObject({ stage: 'connect', replyCode: rep, replyName: name });
    expect(error.meaning).toMatch(meaning);
    expect(error.message).not.toContain(JWT_155);
  });

  test('SAP authentication rejected (01 05): auth stage, CONNECTION_REFUSED, no token in the message', async () => {
    const proxy = await startScriptedProxy({ authStatus: 0x05 });
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port: proxy.port },
        target: { host: 'v', port: 1 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error).toMatchObject({ stage: 'auth', replyCode: 5, replyName: 'CONNECTION_REFUSED' });
    expect(error.message).not.toContain(JWT_155);
  });

  test('wrong username/password: auth stage, password not in the message', async () => {
    const proxy = await startScriptedProxy({ authStatus: 0x01 });
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port: proxy.port },
        target: { host: 'v', port: 1 },
        auth: { method: 'username-password', username: 'alice', password: 'hunter2' },
        timeoutMs: 5000,
      }),
    );
    expect(error.message).toBe(
      'SOCKS5 auth failed (reply 0x01): the proxy rejected the username or password',
    );
    expect(error.message).not.toContain('hunter2');
  });

  test('proxy refuses the method (05 ff): greeting stage', async () => {
    const proxy = await startScriptedProxy({ select: 0xff, closeAfter: 'greeting' });
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port: proxy.port },
        target: { host: 'v', port: 1 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error.stage).toBe('greeting');
    expect(error.meaning).toMatch(/accepts none of the offered authentication methods \(0x80 SAP JWT\)/);
  });

  test('proxy down: proxy-connect stage with ECONNREFUSED', async () => {
    const port = await listen(net.createServer());
    cleanups.splice(0).forEach((fn) => fn()); // closed again: nothing listens on the port
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port },
        target: { host: 'v', port: 1 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error).toMatchObject({ stage: 'proxy-connect', code: 'ECONNREFUSED' });
    expect(error.message).toBe('SOCKS5 proxy-connect failed: cannot connect to the proxy (ECONNREFUSED)');
  });

  test.each(['accept', 'greeting', 'auth'] as const)(
    'proxy silent after %s: times out in the stage it was in',
    async (silentAfter) => {
      const proxy = await startScriptedProxy({ silentAfter });
      const error = await failure(
        connectSocks5({
          proxy: { host: '127.0.0.1', port: proxy.port },
          target: { host: 'v', port: 1 },
          auth: sap,
          timeoutMs: 300,
        }),
      );
      const stage = { accept: 'greeting', greeting: 'auth', auth: 'auth' }[silentAfter];
      expect(error).toMatchObject({ stage, code: 'ETIMEDOUT' });
      expect(error.meaning).toBe('no answer from the proxy within 300 ms');
    },
  );

  test('proxy closes during the handshake: a clear error, not a hang', async () => {
    const proxy = await startScriptedProxy({ closeAfter: 'greeting' });
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port: proxy.port },
        target: { host: 'v', port: 1 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error.stage).toBe('auth');
    expect(error.meaning).toMatch(/closed the connection during the handshake/);
  });

  test('a non-SOCKS server (HTTP) is named as such', async () => {
    const port = await listen(net.createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n')));
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port },
        target: { host: 'v', port: 1 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error.message).toMatch(/^SOCKS5 greeting failed: not a SOCKS5 proxy \(version byte 0x48/);
  });

  test('SAP 0x80 to an IPv6 target: refused before connecting (the connectivity proxy has no IPv6)', async () => {
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port: 1 },
        target: { host: '[2001:db8::5]', port: 22 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error.message).toBe(
      'SOCKS5 connect failed: the connectivity proxy accepts domain names and IPv4 addresses only, not [2001:db8::5]',
    );
  });

  test('bad input fails before connecting', async () => {
    let connections = 0;
    const port = await listen(net.createServer(() => connections++));
    const error = await failure(
      connectSocks5({
        proxy: { host: '127.0.0.1', port },
        target: { host: 'v', port: 70000 },
        auth: sap,
        timeoutMs: 5000,
      }),
    );
    expect(error.message).toMatch(/invalid target port 70000/);
    await new Promise((r) => setTimeout(r, 50));
    expect(connections).toBe(0);
  });
});

// Loopback peers for the egress unit tests: scripted SOCKS5 and HTTP CONNECT proxies that read frames
// exactly as RFC 1928/1929, SAP's 0x80 and RFC 9110 lay them out, and an upstream that speaks first.
import net from 'node:net';

/** Run and emptied by each test file's afterEach. */
export const cleanups: Array<() => void> = [];

export async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  cleanups.push(() => {
    sockets.forEach((s) => s.destroy());
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

/** Upstream that greets first ("hello\n") and then echoes. */
export async function startEchoUpstream(): Promise<number> {
  return listen(
    net.createServer({ allowHalfOpen: true }, (s) => {
      s.write('hello\n');
      s.pipe(s);
    }),
  );
}

/** Upstream that says "ready\n" and answers "got:<everything received>" only after the client half-closes. */
export async function startHalfCloseUpstream(): Promise<number> {
  return listen(
    net.createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.write('ready\n');
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`got:${Buffer.concat(chunks).toString()}`));
    }),
  );
}

/** Upstream that says "bye\n" and half-closes at once, then records what still arrives. */
export async function startEarlyCloseUpstream(): Promise<{ port: number; received: Promise<string> }> {
  let done: (text: string) => void = () => {};
  const received = new Promise<string>((resolve) => (done = resolve));
  const port = await listen(
    net.createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.end('bye\n');
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => done(Buffer.concat(chunks).toString()));
    }),
  );
  return { port, received };
}

export interface ScriptedSocks5Options {
  /** method byte to answer the greeting with (default: the first offered) */
  select?: number;
  /** status byte of the authentication reply */
  authStatus?: number;
  /** REP of the CONNECT reply; 0 connects to `upstreamPort` on loopback */
  rep?: number;
  upstreamPort?: number;
  /** stop answering after this stage */
  silentAfter?: 'accept' | 'greeting' | 'auth';
  /** close the connection after this stage */
  closeAfter?: 'greeting';
}

export interface RecordedSocks5 {
  greeting?: Buffer;
  auth?: Buffer;
  connect?: Buffer;
}

/** A SOCKS5 server that reads frames exactly as RFC 1928/1929 and SAP's 0x80 lay them out. */
export async function startScriptedSocks5(opts: ScriptedSocks5Options) {
  const recorded: RecordedSocks5[] = [];
  const port = await listen(
    net.createServer({ allowHalfOpen: true }, (socket) => {
      const rec: RecordedSocks5 = {};
      recorded.push(rec);
      let buf = Buffer.alloc(0);
      let state: 'greeting' | 'auth' | 'connect' | 'piping' = 'greeting';
      let method = 0;
      socket.on('error', () => {});
      if (opts.silentAfter === 'accept') return;
      const step = () => {
        if (state === 'greeting' && buf.length >= 2 && buf.length >= 2 + buf[1]!) {
          rec.greeting = buf.subarray(0, 2 + buf[1]!);
          buf = buf.subarray(rec.greeting.length);
          method = opts.select ?? rec.greeting[2]!;
          socket.write(Buffer.from([5, method]));
          if (opts.closeAfter === 'greeting') return void socket.end();
          if (opts.silentAfter === 'greeting') return void (state = 'piping');
          state = method === 0 ? 'connect' : 'auth';
          return step();
        }
        if (state === 'auth') {
          let length: number | undefined;
          if (method === 0x80 && buf.length >= 5) {
            const jwt = buf.readUInt32BE(1);
            if (buf.length >= 6 + jwt) length = 6 + jwt + buf[5 + jwt]!;
          }
          if (method === 0x02 && buf.length >= 2 && buf.length >= 3 + buf[1]!)
            length = 3 + buf[1]! + buf[2 + buf[1]!]!;
          if (length === undefined || buf.length < length) return;
          rec.auth = buf.subarray(0, length);
          buf = buf.subarray(length);
          if (opts.silentAfter === 'auth') return void (state = 'piping');
          const status = opts.authStatus ?? 0;
          socket.write(Buffer.from([1, status]));
          if (status !== 0) return void socket.end();
          state = 'connect';
          return step();
        }
        if (state === 'connect' && buf.length >= 5) {
          const atyp = buf[3];
          const length = atyp === 1 ? 10 : atyp === 4 ? 22 : 7 + buf[4]!;
          if (buf.length < length) return;
          rec.connect = buf.subarray(0, length);
          buf = buf.subarray(length);
          state = 'piping';
          const rep = opts.rep ?? 0;
          if (rep !== 0) return void socket.end(Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]));
          const upstream = net.connect({ port: opts.upstreamPort!, host: '127.0.0.1', allowHalfOpen: true });
          upstream.on('error', () => socket.destroy());
          upstream.once('connect', () => {
            // the reply and the upstream's first bytes arrive together in one segment
            upstream.once('data', (first: Buffer) => {
              socket.write(Buffer.concat([Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]), first]));
              socket.pipe(upstream);
              upstream.pipe(socket);
            });
          });
        }
      };
      socket.on('data', (chunk: Buffer) => {
        if (state === 'piping') return;
        buf = Buffer.concat([buf, chunk]);
        step();
      });
    }),
  );
  return { port, recorded };
}

export interface ScriptedHttpProxyOptions {
  /** `user:password` the proxy requires (407 otherwise) */
  credentials?: string;
  /** answer CONNECT with this status instead of tunnelling */
  status?: number;
  /** never answer */
  silent?: boolean;
  upstreamPort?: number;
}

/** An HTTP proxy that answers CONNECT (and nothing else); records each request head. */
export async function startScriptedHttpProxy(opts: ScriptedHttpProxyOptions) {
  const heads: string[] = [];
  const port = await listen(
    net.createServer({ allowHalfOpen: true }, (socket) => {
      let buf = Buffer.alloc(0);
      socket.on('error', () => {});
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const head = buf.subarray(0, end).toString('latin1');
        heads.push(head);
        if (opts.silent) return;
        const auth = /^proxy-authorization: basic (.*)$/im.exec(head)?.[1];
        const given = auth ? Buffer.from(auth, 'base64').toString('utf8') : undefined;
        if (opts.credentials !== undefined && given !== opts.credentials)
          return void socket.end(
            'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="lab"\r\nContent-Length: 0\r\n\r\n',
          );
        if (opts.status) {
          const reason =
            { 403: 'Forbidden', 502: 'Bad Gateway', 503: 'Service Unavailable' }[opts.status] ?? 'X';
          return void socket.end(`HTTP/1.1 ${opts.status} ${reason}\r\nContent-Length: 0\r\n\r\n`);
        }
        const upstream = net.connect({ port: opts.upstreamPort!, host: '127.0.0.1', allowHalfOpen: true });
        upstream.on('error', () => socket.destroy());
        upstream.once('data', (first: Buffer) => {
          // the 200 and the upstream's first bytes arrive together in one segment
          socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n'), first]));
          socket.pipe(upstream);
          upstream.pipe(socket);
        });
      };
      socket.on('data', onData);
    }),
  );
  return { port, heads };
}

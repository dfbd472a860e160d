// A raw SOCKS5 0x80 client for tests in lab namespaces: one session against the connectivity proxy
// (or anything speaking SAP's protocol), reporting every reply byte as JSON on stdout.
//   CP_JWT=<jwt> node dist/test/peers/socks5-probe-cli.js <proxy host> <proxy port> <target host> <target port>
//       [--location <id>] [--method <hex>] [--send <hex>] [--read-ms <ms>]
// The JWT comes from the environment (CP_JWT), not the command line. Output:
//   {"method":"80","auth":"0100","reply":"00","replyName":"SUCCESS","received":"4e"}
// (fields missing when the proxy closed before that step). --send writes bytes after a successful
// CONNECT and collects what arrives within --read-ms (default 2000) or until the peer closes.
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { buildConnectRequest, buildJwtAuthFrame, replyName } from './connectivity-socks5.js';

export interface ProbeResult {
  method?: string;
  auth?: string;
  reply?: string;
  replyName?: string;
  received?: string;
  closed?: boolean;
}

export interface ProbeOptions {
  proxyHost: string;
  proxyPort: number;
  host: string;
  port: number;
  jwt: string;
  locationId?: string;
  method?: number;
  send?: Buffer;
  readMs?: number;
}

/** Runs one session step by step; resolves with what the proxy answered at each step. */
export function probe(o: ProbeOptions): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const result: ProbeResult = {};
    const socket = net.connect({ host: o.proxyHost, port: o.proxyPort });
    let buf = Buffer.alloc(0);
    let stage: 'method' | 'auth' | 'reply' | 'data' = 'method';
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      if (timer) clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const take = (n: number): Buffer | undefined => {
      if (buf.length < n) return undefined;
      const out = buf.subarray(0, n);
      buf = buf.subarray(n);
      return out;
    };
    socket.on('connect', () => socket.write(Buffer.from([0x05, 0x01, o.method ?? 0x80])));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (stage === 'method') {
        const m = take(2);
        if (!m) return;
        result.method = m.subarray(1).toString('hex');
        if (m[1] !== 0x80) return done();
        socket.write(buildJwtAuthFrame(o.jwt, o.locationId ?? ''));
        stage = 'auth';
      }
      if (stage === 'auth') {
        const a = take(2);
        if (!a) return;
        result.auth = a.toString('hex');
        if (a[1] !== 0x00) return done();
        socket.write(buildConnectRequest(o.host, o.port));
        stage = 'reply';
      }
      if (stage === 'reply') {
        const r = take(10);
        if (!r) return;
        result.reply = r.subarray(1, 2).toString('hex');
        result.replyName = replyName(r[1]!);
        if (r[1] !== 0x00 || !o.send) return done();
        stage = 'data';
        socket.write(o.send);
        timer = setTimeout(done, o.readMs ?? 2000);
      }
      if (stage === 'data' && buf.length > 0) result.received = buf.toString('hex');
    });
    socket.on('close', () => {
      result.closed = true;
      done();
    });
    socket.on('error', () => done());
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [proxyHost, proxyPort, host, port, ...rest] = process.argv.slice(2);
  const flag = (name: string): string | undefined => {
    const i = rest.indexOf(name);
    return i >= 0 ? rest[i + 1] : undefined;
  };
  if (!proxyHost || !proxyPort || !host || !port) {
    console.error(
      'usage: CP_JWT=<jwt> socks5-probe-cli.js <proxy host> <proxy port> <host> <port> [--location id] [--method hex] [--send hex] [--read-ms ms]',
    );
    process.exit(2);
  }
  const options: ProbeOptions = {
    proxyHost,
    proxyPort: Number(proxyPort),
    host,
    port: Number(port),
    jwt: process.env.CP_JWT ?? '',
  };
  const location = flag('--location');
  if (location !== undefined) options.locationId = location;
  const method = flag('--method');
  if (method !== undefined) options.method = parseInt(method, 16);
  const send = flag('--send');
  if (send !== undefined) options.send = Buffer.from(send, 'hex');
  const readMs = flag('--read-ms');
  if (readMs !== undefined) options.readMs = Number(readMs);
  console.log(JSON.stringify(await probe(options)));
}

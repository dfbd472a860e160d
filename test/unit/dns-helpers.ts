// Test helpers for the DNS unit tests: messages built and read with dns2 (an encoder/decoder
// independent of dns/wire.ts), loopback clients, and a scriptable fake upstream (port 0, 127.0.0.1).
import dgram from 'node:dgram';
import net from 'node:net';
import { Packet, type Resource } from 'dns2';
import { FrameReader, frame } from '../../dns/tcp-frames.js';

export type Parsed = ReturnType<typeof Packet.parse>;

export interface QueryOptions {
  id?: number;
  /** EDNS UDP payload size; false (default) for no OPT record. */
  edns?: number | false;
  dnssecOk?: boolean;
  rd?: boolean;
  cls?: number;
}

export function makeQuery(name: string, type: number, opts: QueryOptions = {}): Buffer {
  const p = new Packet();
  p.header = new Packet.Header({ id: opts.id ?? 0x1234, rd: opts.rd === false ? 0 : 1 });
  p.questions = [new Packet.Question(name, type, opts.cls ?? 1)];
  if (opts.edns !== undefined && opts.edns !== false)
    p.additionals = [Packet.Resource.EDNS([], { udpPayloadSize: opts.edns, doFlag: opts.dnssecOk ?? false })];
  return p.toBuffer();
}

export interface ResponseSpec {
  id: number;
  question: { name: string; type: number; cls?: number };
  rcode?: number;
  aa?: boolean;
  tc?: boolean;
  answers?: Array<Partial<Resource>>;
  authorities?: Array<Partial<Resource>>;
  additionals?: Array<Partial<Resource>>;
}

export function makeResponse(spec: ResponseSpec): Buffer {
  const p = new Packet();
  p.header = new Packet.Header({
    id: spec.id,
    qr: 1,
    rd: 1,
    ra: 1,
    aa: spec.aa ? 1 : 0,
    tc: spec.tc ? 1 : 0,
    rcode: spec.rcode ?? 0,
  });
  p.questions = [new Packet.Question(spec.question.name, spec.question.type, spec.question.cls ?? 1)];
  const fill = (r: Partial<Resource>): Resource =>
    ({ class: 1, ttl: 300, name: spec.question.name, ...r }) as Resource;
  p.answers = (spec.answers ?? []).map(fill);
  p.authorities = (spec.authorities ?? []).map(fill);
  p.additionals = (spec.additionals ?? []).map(fill);
  return p.toBuffer();
}

export function soa(name: string, ttl: number, minimum: number): Partial<Resource> {
  return {
    name,
    type: 6,
    ttl,
    primary: 'ns.example.test',
    admin: 'hostmaster.example.test',
    serial: 1,
    refresh: 3600,
    retry: 600,
    expiration: 86400,
    minimum,
  };
}

export function parse(buf: Buffer): Parsed {
  return Packet.parse(buf);
}

export function udpAsk(port: number, message: Buffer, host = '127.0.0.1', timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`no UDP answer from ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(message, port, host);
  });
}

/** Sends raw bytes over UDP without waiting for anything. */
export function udpSend(port: number, message: Buffer, host = '127.0.0.1'): Promise<void> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    socket.send(message, port, host, () => {
      socket.close();
      resolve();
    });
  });
}

/** Sends each message framed over one TCP connection; resolves with the answers (in arrival order). */
export function tcpAsk(
  port: number,
  messages: Buffer[],
  host = '127.0.0.1',
  opts: { expect?: number; timeoutMs?: number; raw?: Buffer } = {},
): Promise<Buffer[]> {
  const expect = opts.expect ?? messages.length;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const answers: Buffer[] = [];
    const reader = new FrameReader();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`got ${answers.length} of ${expect} TCP answers from ${host}:${port}`));
    }, opts.timeoutMs ?? 3000);
    socket.on('connect', () => {
      if (opts.raw) socket.write(opts.raw);
      for (const m of messages) socket.write(frame(m));
      if (expect === 0) {
        clearTimeout(timer);
        socket.end();
        resolve([]);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      answers.push(...reader.push(chunk));
      if (answers.length >= expect) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answers);
      }
    });
    socket.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

export type FakeAnswer = Buffer | 'silent';

export interface FakeUpstream {
  port: number;
  address: string;
  /** Every query received: transport and the dns2-parsed message. */
  queries: Array<{ transport: 'udp' | 'tcp'; query: Parsed }>;
  close(): Promise<void>;
}

/** A UDP+TCP DNS server on 127.0.0.1 (one port for both) answering with `answer(query, transport)`. */
export async function startFakeUpstream(
  answer: (query: Parsed, transport: 'udp' | 'tcp') => FakeAnswer,
): Promise<FakeUpstream> {
  // The UDP port comes first; its TCP twin may be taken by someone else: then try another (bounded).
  for (let attempt = 0; ; attempt++) {
    try {
      return await tryFakeUpstream(answer);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw e;
    }
  }
}

async function tryFakeUpstream(
  answer: (query: Parsed, transport: 'udp' | 'tcp') => FakeAnswer,
): Promise<FakeUpstream> {
  const queries: FakeUpstream['queries'] = [];
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  const port = udp.address().port;
  udp.on('message', (msg, rinfo) => {
    const query = Packet.parse(msg);
    queries.push({ transport: 'udp', query });
    const a = answer(query, 'udp');
    if (a !== 'silent') udp.send(a, rinfo.port, rinfo.address);
  });
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    const reader = new FrameReader();
    s.on('data', (chunk: Buffer) => {
      for (const msg of reader.push(chunk)) {
        const query = Packet.parse(msg);
        queries.push({ transport: 'tcp', query });
        const a = answer(query, 'tcp');
        if (a !== 'silent') s.write(frame(a));
      }
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, '127.0.0.1', () => resolve());
    });
  } catch (e) {
    udp.close();
    throw e;
  }
  return {
    port,
    address: '127.0.0.1',
    queries,
    close: async () => {
      udp.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}

/** A UDP socket that receives and never answers (a dead nameserver that does not even refuse). */
export async function startBlackHole(): Promise<{ port: number; received: () => number; close(): void }> {
  const udp = dgram.createSocket('udp4');
  let received = 0;
  udp.on('message', () => received++);
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  return { port: udp.address().port, received: () => received, close: () => udp.close() };
}

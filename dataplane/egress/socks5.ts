// SOCKS5 client (RFC 1928) with username/password (RFC 1929) and SAP's authentication method 0x80
// (a JWT and an optional Cloud Connector location id, as the connectivity proxy expects). Pure frame
// builders and parsers, and `connectSocks5()` that opens a connection through a proxy and resolves
// with the socket once the CONNECT succeeded, ready to be piped.
import net from 'node:net';

export const SOCKS_VERSION = 0x05;
export const METHOD_NONE = 0x00;
export const METHOD_USERNAME_PASSWORD = 0x02;
/** SAP connectivity proxy: JWT (+ optional location id) authentication */
export const METHOD_SAP_JWT = 0x80;
const METHOD_NO_ACCEPTABLE = 0xff;
const USERNAME_PASSWORD_VERSION = 0x01;
const SAP_JWT_VERSION = 0x01;
const CMD_CONNECT = 0x01;
const ATYP_IPV4 = 0x01;
const ATYP_DOMAIN = 0x03;
const ATYP_IPV6 = 0x04;

export type Socks5Auth =
  | { method: 'none' }
  | { method: 'username-password'; username: string; password: string }
  /** SAP's 0x80: `token` is the connectivity proxy's JWT, `locationId` the CloudConnectorLocationId */
  | { method: 'sap-jwt'; token: string; locationId?: string };

/** Where a SOCKS5 connection failed: reaching the proxy, method selection, authentication, CONNECT. */
export type Socks5Stage = 'proxy-connect' | 'greeting' | 'auth' | 'connect';

/** RFC 1928 section 6: the REP field of a reply. */
const RFC1928_REPLIES: Record<number, string> = {
  0x01: 'general SOCKS server failure',
  0x02: 'connection not allowed by the proxy’s ruleset',
  0x03: 'network unreachable from the proxy',
  0x04: 'host unreachable from the proxy',
  0x05: 'connection refused by the target',
  0x06: 'TTL expired',
  0x07: 'command not supported by the proxy',
  0x08: 'address type not supported by the proxy',
};

/**
 * SAP's meanings of the same codes when the connectivity proxy answers (SAP BTP Connectivity, "Using
 * TCP Protocol for Cloud Applications", troubleshooting table; names as SAP gives them). The
 * connectivity proxy sends them in the CONNECT reply and in the 0x80 authentication reply.
 */
const SAP_REPLIES: Record<number, { name: string; meaning: string }> = {
  0x01: { name: 'FAILURE', meaning: 'the backend closed the connection, or a general failure' },
  0x02: {
    name: 'FORBIDDEN',
    meaning:
      'not allowed by the Cloud Connector’s access control: no host mapping for this virtual host and port',
  },
  0x03: {
    name: 'NETWORK_UNREACHABLE',
    meaning:
      'no Cloud Connector is connected for this subaccount and location id (check CloudConnectorLocationId and that the Cloud Connector is connected)',
  },
  0x04: {
    name: 'HOST_UNREACHABLE',
    meaning: 'the Cloud Connector cannot open a connection to the backend (host unreachable)',
  },
  0x05: { name: 'CONNECTION_REFUSED', meaning: 'authentication failure (the JWT was not accepted)' },
  0x06: { name: 'TTL_EXPIRED', meaning: 'TTL expired (SAP documents this code as not used)' },
  0x07: { name: 'COMMAND_UNSUPPORTED', meaning: 'only the SOCKS5 CONNECT command is supported' },
  0x08: {
    name: 'ADDRESS_UNSUPPORTED',
    meaning: 'only domain-name and IPv4 addresses are supported',
  },
};

export type Socks5Dialect = 'rfc1928' | 'sap';

/** A reply code explained: `sap` uses SAP's connectivity proxy meanings. */
export function describeReply(code: number, dialect: Socks5Dialect): { name?: string; meaning: string } {
  const hex = `0x${code.toString(16).padStart(2, '0')}`;
  if (dialect === 'sap') {
    const sap = SAP_REPLIES[code];
    return sap ?? { meaning: `unknown reply code ${hex} from the connectivity proxy` };
  }
  return { meaning: RFC1928_REPLIES[code] ?? `unknown reply code ${hex}` };
}

export class Socks5Error extends Error {
  readonly stage: Socks5Stage;
  /** the proxy's reply/status code, when it sent one */
  readonly replyCode: number | undefined;
  /** SAP's name of the reply code (e.g. NETWORK_UNREACHABLE), for the connectivity proxy */
  readonly replyName: string | undefined;
  /** one sentence saying what went wrong; never contains a secret */
  readonly meaning: string;
  /** errno-style code of the underlying socket error (ECONNREFUSED, ETIMEDOUT, ...) */
  readonly code: string | undefined;

  constructor(
    stage: Socks5Stage,
    meaning: string,
    extra: { replyCode?: number; replyName?: string; code?: string } = {},
  ) {
    const reply =
      extra.replyCode === undefined
        ? ''
        : ` (reply 0x${extra.replyCode.toString(16).padStart(2, '0')}${extra.replyName ? ` ${extra.replyName}` : ''})`;
    super(`SOCKS5 ${stage} failed${reply}: ${meaning}`);
    this.name = 'Socks5Error';
    this.stage = stage;
    this.replyCode = extra.replyCode;
    this.replyName = extra.replyName;
    this.meaning = meaning;
    this.code = extra.code;
  }
}

// ---------------------------------------------------------------------------------------------------
// Frames (pure)

export function methodOf(auth: Socks5Auth): number {
  if (auth.method === 'none') return METHOD_NONE;
  if (auth.method === 'username-password') return METHOD_USERNAME_PASSWORD;
  return METHOD_SAP_JWT;
}

/** `05 <n> <methods...>` */
export function buildGreeting(methods: number[]): Buffer {
  if (methods.length < 1 || methods.length > 255) throw new RangeError('SOCKS5 greeting: 1 to 255 methods');
  return Buffer.from([SOCKS_VERSION, methods.length, ...methods]);
}

/** `05 <method>` → the chosen method; throws a greeting-stage Socks5Error for bad replies. */
export function parseMethodSelection(reply: Buffer, offered: number[]): number {
  if (reply[0] !== SOCKS_VERSION)
    throw new Socks5Error('greeting', `not a SOCKS5 proxy (version byte 0x${hex(reply[0])} instead of 0x05)`);
  const method = reply[1]!;
  if (method === METHOD_NO_ACCEPTABLE)
    throw new Socks5Error(
      'greeting',
      `the proxy accepts none of the offered authentication methods (${offered.map(methodName).join(', ')})`,
    );
  if (!offered.includes(method))
    throw new Socks5Error('greeting', `the proxy chose method 0x${hex(method)}, which was not offered`);
  return method;
}

/** RFC 1929: `01 <ulen> <user> <plen> <password>`; both 1..255 bytes. */
export function buildUsernamePasswordFrame(username: string, password: string): Buffer {
  const user = Buffer.from(username, 'utf8');
  const pass = Buffer.from(password, 'utf8');
  if (user.length < 1 || user.length > 255)
    throw new Socks5Error('auth', `the proxy username must be 1 to 255 bytes (it is ${user.length})`);
  if (pass.length < 1 || pass.length > 255)
    throw new Socks5Error('auth', `the proxy password must be 1 to 255 bytes (it is ${pass.length})`);
  return Buffer.concat([
    Buffer.from([USERNAME_PASSWORD_VERSION, user.length]),
    user,
    Buffer.from([pass.length]),
    pass,
  ]);
}

/**
 * SAP's 0x80 frame: `01`, JWT length (4 bytes big-endian), JWT, length of the base64-encoded location
 * id (1 byte, 0 without one), the base64 text.
 */
export function buildSapJwtFrame(token: string, locationId?: string): Buffer {
  const jwt = Buffer.from(token, 'utf8');
  const location = Buffer.from(locationId ? Buffer.from(locationId, 'utf8').toString('base64') : '', 'ascii');
  if (location.length > 255)
    throw new Socks5Error(
      'auth',
      `the Cloud Connector location id is too long (${location.length} base64 characters, at most 255)`,
    );
  const frame = Buffer.alloc(1 + 4 + jwt.length + 1 + location.length);
  frame[0] = SAP_JWT_VERSION;
  frame.writeUInt32BE(jwt.length, 1);
  jwt.copy(frame, 5);
  frame[5 + jwt.length] = location.length;
  location.copy(frame, 6 + jwt.length);
  return frame;
}

/** The 2-byte authentication status reply (`01 00` = success) for RFC 1929 and SAP's 0x80. */
export function parseAuthReply(reply: Buffer, method: number): void {
  const sap = method === METHOD_SAP_JWT;
  if (reply[0] !== (sap ? SAP_JWT_VERSION : USERNAME_PASSWORD_VERSION))
    throw new Socks5Error('auth', `unexpected authentication reply version 0x${hex(reply[0])}`);
  const status = reply[1]!;
  if (status === 0x00) return;
  if (sap) {
    // 01 01 from the connectivity proxy: the token itself was not accepted (FAILURE at this stage)
    if (status === 0x01)
      throw new Socks5Error(
        'auth',
        'the connectivity proxy did not accept the token (authentication failed)',
        {
          replyCode: status,
          replyName: 'FAILURE',
        },
      );
    const { name, meaning } = describeReply(status, 'sap');
    throw new Socks5Error('auth', meaning, { replyCode: status, ...(name ? { replyName: name } : {}) });
  }
  throw new Socks5Error('auth', 'the proxy rejected the username or password', { replyCode: status });
}

/** `05 01 00 <atyp> <addr> <port>`: IPv4, IPv6 or domain name (remote resolution). */
export function buildConnectRequest(host: string, port: number): Buffer {
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Socks5Error('connect', `invalid target port ${port}`);
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  const head = Buffer.from([SOCKS_VERSION, CMD_CONNECT, 0x00]);
  const literal = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = net.isIP(literal);
  if (family === 4)
    return Buffer.concat([head, Buffer.from([ATYP_IPV4, ...literal.split('.').map(Number)]), portBytes]);
  if (family === 6) return Buffer.concat([head, Buffer.from([ATYP_IPV6]), ipv6Bytes(literal), portBytes]);
  const name = Buffer.from(host, 'utf8');
  if (name.length < 1 || name.length > 255)
    throw new Socks5Error('connect', `target host name must be 1 to 255 bytes (it is ${name.length})`);
  return Buffer.concat([head, Buffer.from([ATYP_DOMAIN, name.length]), name, portBytes]);
}

export interface ConnectReply {
  /** bytes the reply occupies */
  length: number;
  code: number;
  bound: { host: string; port: number };
}

/**
 * Parses `05 <rep> 00 <atyp> <addr> <port>` from the start of `data`: undefined while incomplete.
 * Throws a connect-stage Socks5Error for a malformed reply or a reply code other than 0x00.
 */
export function parseConnectReply(data: Buffer, dialect: Socks5Dialect): ConnectReply | undefined {
  if (data.length >= 1 && data[0] !== SOCKS_VERSION)
    throw new Socks5Error('connect', `unexpected reply version 0x${hex(data[0])} (not SOCKS5)`);
  if (data.length >= 2 && data[1] !== 0x00) {
    // Servers often close right after a failure reply without the address part: decide on REP alone.
    const { name, meaning } = describeReply(data[1]!, dialect);
    throw new Socks5Error('connect', meaning, { replyCode: data[1]!, ...(name ? { replyName: name } : {}) });
  }
  if (data.length < 5) return undefined;
  const atyp = data[3];
  let addressLength: number;
  let start = 4;
  if (atyp === ATYP_IPV4) addressLength = 4;
  else if (atyp === ATYP_IPV6) addressLength = 16;
  else if (atyp === ATYP_DOMAIN) {
    addressLength = data[4]!;
    start = 5;
  } else throw new Socks5Error('connect', `unexpected address type 0x${hex(atyp)} in the reply`);
  const length = start + addressLength + 2;
  if (data.length < length) return undefined;
  const address = data.subarray(start, start + addressLength);
  const host =
    atyp === ATYP_IPV4
      ? [...address].join('.')
      : atyp === ATYP_IPV6
        ? formatIpv6(address)
        : address.toString('utf8');
  return { length, code: 0, bound: { host, port: data.readUInt16BE(start + addressLength) } };
}

function ipv6Bytes(address: string): Buffer {
  // BlockList-free expansion: split around '::', handle an embedded IPv4 tail.
  let text = address.split('%')[0]!;
  const v4tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4tail) {
    const [a, b, c, d] = v4tail[1]!.split('.').map(Number) as [number, number, number, number];
    text =
      text.slice(0, -v4tail[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [left, right] = text.includes('::') ? text.split('::') : [text, undefined];
  const head = left ? left.split(':') : [];
  const tail = right ? right.split(':') : [];
  const groups =
    right === undefined
      ? head
      : [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function formatIpv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function hex(byte: number | undefined): string {
  return (byte ?? 0).toString(16).padStart(2, '0');
}

function methodName(method: number): string {
  if (method === METHOD_NONE) return '0x00 no authentication';
  if (method === METHOD_USERNAME_PASSWORD) return '0x02 username/password';
  if (method === METHOD_SAP_JWT) return '0x80 SAP JWT';
  return `0x${hex(method)}`;
}

// ---------------------------------------------------------------------------------------------------
// The client

export interface Socks5ConnectOptions {
  proxy: { host: string; port: number };
  /** host name (sent for remote resolution), IPv4 or IPv6 address */
  target: { host: string; port: number };
  auth: Socks5Auth;
  /** for reaching the proxy and the whole handshake (the proxy's own CONNECT included) */
  timeoutMs: number;
}

/**
 * Opens a TCP connection to the proxy (allowHalfOpen, so half-closes can be passed on), negotiates
 * the method, authenticates and sends CONNECT. Resolves with the socket, paused, with any bytes the
 * target sent after the reply put back into it. Rejects with a Socks5Error; the socket is destroyed.
 */
export async function connectSocks5(options: Socks5ConnectOptions): Promise<net.Socket> {
  const frames = buildHandshake(options); // bad input fails before anything is sent
  const socket = net.connect({ host: options.proxy.host, port: options.proxy.port, allowHalfOpen: true });
  return runHandshake(socket, frames, options.timeoutMs);
}

/** The handshake on a socket that is connecting (or connected) to the proxy. */
export async function socks5Handshake(
  socket: net.Socket,
  options: Omit<Socks5ConnectOptions, 'proxy'>,
): Promise<net.Socket> {
  let frames: HandshakeFrames;
  try {
    frames = buildHandshake(options);
  } catch (error) {
    socket.destroy();
    throw error;
  }
  return runHandshake(socket, frames, options.timeoutMs);
}

interface HandshakeFrames {
  method: number;
  auth: Buffer | undefined;
  connect: Buffer;
}

function buildHandshake(options: Omit<Socks5ConnectOptions, 'proxy'>): HandshakeFrames {
  const auth = options.auth;
  if (auth.method === 'sap-jwt' && net.isIPv6(options.target.host.replace(/^\[(.*)\]$/, '$1')))
    throw new Socks5Error(
      'connect',
      `the connectivity proxy accepts domain names and IPv4 addresses only, not ${options.target.host}`,
      { replyName: 'ADDRESS_UNSUPPORTED' },
    );
  return {
    method: methodOf(auth),
    auth:
      auth.method === 'username-password'
        ? buildUsernamePasswordFrame(auth.username, auth.password)
        : auth.method === 'sap-jwt'
          ? buildSapJwtFrame(auth.token, auth.locationId)
          : undefined,
    connect: buildConnectRequest(options.target.host, options.target.port),
  };
}

async function runHandshake(
  socket: net.Socket,
  frames: HandshakeFrames,
  timeoutMs: number,
): Promise<net.Socket> {
  const dialect: Socks5Dialect = frames.method === METHOD_SAP_JWT ? 'sap' : 'rfc1928';
  const reader = new HandshakeReader(socket, timeoutMs);
  try {
    await reader.connected();
    reader.stage = 'greeting';
    socket.write(buildGreeting([frames.method]));
    parseMethodSelection(await reader.take(() => 2), [frames.method]);
    if (frames.auth) {
      reader.stage = 'auth';
      socket.write(frames.auth);
      parseAuthReply(await reader.take(() => 2), frames.method);
    }
    reader.stage = 'connect';
    socket.write(frames.connect);
    await reader.take((data) => parseConnectReply(data, dialect)?.length);
    reader.release();
    return socket;
  } catch (error) {
    reader.release();
    socket.destroy();
    throw error;
  }
}

/** Collects bytes from the socket until a frame is complete; fails with the stage it was in. */
class HandshakeReader {
  stage: Socks5Stage = 'proxy-connect';
  private buffered: Buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private failure: Socks5Error | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly socket: net.Socket,
    private readonly timeoutMs: number,
  ) {
    this.timer = setTimeout(() => {
      const waiting =
        this.stage === 'proxy-connect'
          ? `could not reach the proxy within ${timeoutMs} ms`
          : `no answer from the proxy within ${timeoutMs} ms`;
      this.fail(new Socks5Error(this.stage, waiting, { code: 'ETIMEDOUT' }));
    }, timeoutMs);
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer) => {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    this.wake?.();
  };
  private readonly onEnd = () =>
    this.fail(new Socks5Error(this.stage, 'the proxy closed the connection during the handshake'));
  private readonly onClose = () =>
    this.fail(new Socks5Error(this.stage, 'the connection to the proxy closed during the handshake'));
  private readonly onError = (error: NodeJS.ErrnoException) => {
    const code = error.code ?? 'ERROR';
    const meaning =
      this.stage === 'proxy-connect'
        ? `cannot connect to the proxy (${code})`
        : `connection to the proxy failed (${code})`;
    this.fail(new Socks5Error(this.stage, meaning, { code }));
  };

  private fail(error: Socks5Error) {
    this.failure ??= error;
    this.wake?.();
  }

  connected(): Promise<void> {
    if (!this.socket.connecting && !this.socket.pending) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        this.wake = undefined;
        if (this.failure) reject(this.failure);
        else resolve();
      };
      this.wake = done;
      this.socket.once('connect', done);
      if (this.failure) done();
    });
  }

  /** `need(data)` → the frame length once known (undefined: wait for more); may throw. */
  async take(need: (data: Buffer) => number | undefined): Promise<Buffer> {
    for (;;) {
      const length = need(this.buffered);
      if (length !== undefined && this.buffered.length >= length) {
        const frame = this.buffered.subarray(0, length);
        this.buffered = this.buffered.subarray(length);
        return frame;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /** Stops listening; bytes that arrived after the last frame go back into the (paused) socket. */
  release() {
    clearTimeout(this.timer);
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
    if (this.buffered.length && !this.socket.destroyed) this.socket.unshift(this.buffered);
    this.buffered = Buffer.alloc(0);
  }
}

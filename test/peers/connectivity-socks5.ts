// SOCKS5 (RFC 1928) as SAP's connectivity proxy speaks it: only authentication method 0x80, whose
// sub-negotiation carries the JWT and the base64-encoded Cloud Connector location id:
//   01 | JWT length (4 bytes, big-endian) | JWT | location length (1 byte) | base64(location id)
// answered 01 00 on success; then CONNECT by domain name or IPv4 (SAP supports no other command or
// address type). Pure frame parsers and builders; the server session is in connectivity-proxy.ts.

export const SOCKS_VERSION = 0x05;
export const METHOD_NO_AUTH = 0x00;
export const METHOD_JWT = 0x80;
export const METHOD_NONE_ACCEPTABLE = 0xff;
export const JWT_AUTH_VERSION = 0x01;
export const CMD_CONNECT = 0x01;
export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

/** SAP's CONNECT reply codes and their meaning at the connectivity proxy (see README.md). */
export const SOCKS_REPLY = {
  SUCCESS: 0x00,
  /** connection closed by backend or general scenario failure */
  FAILURE: 0x01,
  /** no matching host mapping in the Cloud Connector's access control */
  FORBIDDEN: 0x02,
  /** no Cloud Connector connected for the location (or the location id cannot be identified) */
  NETWORK_UNREACHABLE: 0x03,
  /** cannot open the connection to the backend */
  HOST_UNREACHABLE: 0x04,
  /** authentication failure */
  CONNECTION_REFUSED: 0x05,
  /** not used */
  TTL_EXPIRED: 0x06,
  /** only CONNECT is supported */
  COMMAND_UNSUPPORTED: 0x07,
  /** only DOMAIN and IPv4 are supported */
  ADDRESS_UNSUPPORTED: 0x08,
} as const;

/** Longest JWT the stand-in reads (a 4-byte length could announce 4 GiB). */
export const MAX_JWT_BYTES = 64 * 1024;

export type Parsed<T> =
  { kind: 'more' } | { kind: 'error'; message: string } | ({ kind: 'ok'; length: number } & T);

/** VER NMETHODS METHODS... */
export function parseGreeting(buf: Buffer): Parsed<{ methods: number[] }> {
  if (buf.length < 1) return { kind: 'more' };
  if (buf[0] !== SOCKS_VERSION)
    return { kind: 'error', message: `greeting: version 0x${hex(buf[0]!)} is not SOCKS5 (0x05)` };
  if (buf.length < 2) return { kind: 'more' };
  const n = buf[1]!;
  if (n === 0) return { kind: 'error', message: 'greeting: no authentication methods offered' };
  if (buf.length < 2 + n) return { kind: 'more' };
  return { kind: 'ok', length: 2 + n, methods: [...buf.subarray(2, 2 + n)] };
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** SAP's 0x80 sub-negotiation frame. The location id is returned decoded ('' when absent). */
export function parseJwtAuthFrame(buf: Buffer): Parsed<{ jwt: string; locationId: string }> {
  if (buf.length < 1) return { kind: 'more' };
  if (buf[0] !== JWT_AUTH_VERSION)
    return { kind: 'error', message: `auth frame: version 0x${hex(buf[0]!)}, expected 0x01` };
  if (buf.length < 5) return { kind: 'more' };
  const jwtLength = buf.readUInt32BE(1);
  if (jwtLength === 0) return { kind: 'error', message: 'auth frame: JWT length is 0' };
  if (jwtLength > MAX_JWT_BYTES)
    return { kind: 'error', message: `auth frame: JWT length ${jwtLength} exceeds ${MAX_JWT_BYTES}` };
  if (buf.length < 5 + jwtLength + 1) return { kind: 'more' };
  const jwt = buf.toString('latin1', 5, 5 + jwtLength);
  const locLength = buf[5 + jwtLength]!;
  const end = 5 + jwtLength + 1 + locLength;
  if (buf.length < end) return { kind: 'more' };
  const encoded = buf.toString('latin1', 5 + jwtLength + 1, end);
  if (!BASE64.test(encoded))
    return {
      kind: 'error',
      message: 'auth frame: the location id is not base64 (SAP expects it base64-encoded)',
    };
  return { kind: 'ok', length: end, jwt, locationId: Buffer.from(encoded, 'base64').toString('utf8') };
}

export interface ConnectRequest {
  command: number;
  addressType: number;
  /** IPv4 dotted quad, domain name, or IPv6 text */
  host: string;
  port: number;
}

/** VER CMD RSV ATYP DST.ADDR DST.PORT. An unknown address type is an error (its length is unknown). */
export function parseConnectRequest(buf: Buffer): Parsed<ConnectRequest> {
  if (buf.length < 1) return { kind: 'more' };
  if (buf[0] !== SOCKS_VERSION)
    return { kind: 'error', message: `request: version 0x${hex(buf[0]!)} is not SOCKS5 (0x05)` };
  if (buf.length < 4) return { kind: 'more' };
  if (buf[2] !== 0x00)
    return { kind: 'error', message: `request: reserved byte is 0x${hex(buf[2]!)}, not 0x00` };
  const command = buf[1]!;
  const addressType = buf[3]!;
  let host: string;
  let at: number;
  if (addressType === ATYP_IPV4) {
    if (buf.length < 4 + 4 + 2) return { kind: 'more' };
    host = [...buf.subarray(4, 8)].join('.');
    at = 8;
  } else if (addressType === ATYP_DOMAIN) {
    if (buf.length < 5) return { kind: 'more' };
    const n = buf[4]!;
    if (n === 0) return { kind: 'error', message: 'request: empty domain name' };
    if (buf.length < 5 + n + 2) return { kind: 'more' };
    host = buf.toString('latin1', 5, 5 + n);
    at = 5 + n;
  } else if (addressType === ATYP_IPV6) {
    if (buf.length < 4 + 16 + 2) return { kind: 'more' };
    const words: string[] = [];
    for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(4 + 2 * i).toString(16));
    host = words.join(':');
    at = 20;
  } else {
    return { kind: 'error', message: `request: unknown address type 0x${hex(addressType)}` };
  }
  return { kind: 'ok', length: at + 2, command, addressType, host, port: buf.readUInt16BE(at) };
}

/** The sub-negotiation frame a client sends (for tests and tools). */
export function buildJwtAuthFrame(jwt: string, locationId = ''): Buffer {
  const token = Buffer.from(jwt, 'latin1');
  const location = Buffer.from(
    locationId === '' ? '' : Buffer.from(locationId, 'utf8').toString('base64'),
    'latin1',
  );
  if (location.length > 255) throw new Error('location id too long: base64 form exceeds 255 bytes');
  const head = Buffer.alloc(5);
  head[0] = JWT_AUTH_VERSION;
  head.writeUInt32BE(token.length, 1);
  return Buffer.concat([head, token, Buffer.from([location.length]), location]);
}

/** A CONNECT request by IPv4 literal or domain name. */
export function buildConnectRequest(host: string, port: number): Buffer {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  const p = Buffer.alloc(2);
  p.writeUInt16BE(port);
  if (v4 && v4.slice(1).every((o) => Number(o) <= 255))
    return Buffer.concat([
      Buffer.from([SOCKS_VERSION, CMD_CONNECT, 0, ATYP_IPV4, ...v4.slice(1).map(Number)]),
      p,
    ]);
  const name = Buffer.from(host, 'latin1');
  return Buffer.concat([Buffer.from([SOCKS_VERSION, CMD_CONNECT, 0, ATYP_DOMAIN, name.length]), name, p]);
}

/** A reply; BND.ADDR is the IPv4 address given (0.0.0.0 for failures). */
export function buildReply(
  code: number,
  bound: { address: string; port: number } = { address: '0.0.0.0', port: 0 },
): Buffer {
  const octets = /^\d+\.\d+\.\d+\.\d+$/.test(bound.address)
    ? bound.address.split('.').map(Number)
    : [0, 0, 0, 0];
  const out = Buffer.from([SOCKS_VERSION, code, 0x00, ATYP_IPV4, ...octets, 0, 0]);
  out.writeUInt16BE(bound.port, 8);
  return out;
}

export function replyName(code: number): string {
  const entry = Object.entries(SOCKS_REPLY).find(([, v]) => v === code);
  return entry ? entry[0] : `UNKNOWN_0x${hex(code)}`;
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}

// A destination's TrustStore (TrustStoreLocation + content) as the PEM CA list Node's TLS wants.
// PEM and DER certificates are read directly; PKCS#12 (.p12/.pfx) trust stores are parsed here, because
// Node can only load a PKCS#12 that holds a private key, and a trust store holds certificates only.
// Supported PKCS#12 certificate protection: none, PBES2 (PBKDF2 + AES-CBC or 3DES; OpenSSL 3's and
// Java 12+'s default) and pbeWithSHAAnd3-KeyTripleDES-CBC. RC2 (old OpenSSL/Java defaults) is rejected
// with a message saying how to re-export the store. The MAC is not checked: a trust store's integrity
// is that of the destination source it came from.
import { createDecipheriv, createHash, pbkdf2Sync, X509Certificate } from 'node:crypto';
import type { TrustStore } from '../destinations/types.js';

export class TrustStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustStoreError';
  }
}

interface Asn1 {
  tag: number;
  constructed: boolean;
  /** primitive content (empty for constructed nodes) */
  value: Buffer;
  children: Asn1[];
}

const MAX_DEPTH = 32;

function readLength(buf: Buffer, pos: number): { length: number | null; next: number } {
  const first = buf[pos];
  if (first === undefined) throw new TrustStoreError('truncated DER length');
  if (first < 0x80) return { length: first, next: pos + 1 };
  if (first === 0x80) return { length: null, next: pos + 1 }; // BER indefinite length
  const count = first & 0x7f;
  if (count > 4) throw new TrustStoreError('DER length too large');
  let length = 0;
  for (let i = 1; i <= count; i++) {
    const b = buf[pos + i];
    if (b === undefined) throw new TrustStoreError('truncated DER length');
    length = length * 256 + b;
  }
  return { length, next: pos + 1 + count };
}

/** One BER/DER element at `pos`; indefinite lengths and constructed strings are accepted (BER). */
function parseAt(buf: Buffer, pos: number, depth: number): { node: Asn1; next: number } {
  if (depth > MAX_DEPTH) throw new TrustStoreError('ASN.1 nesting too deep');
  const tag = buf[pos];
  if (tag === undefined) throw new TrustStoreError('truncated ASN.1 element');
  if ((tag & 0x1f) === 0x1f) throw new TrustStoreError('multi-byte ASN.1 tags are not supported');
  const constructed = (tag & 0x20) !== 0;
  const { length, next: start } = readLength(buf, pos + 1);
  if (!constructed) {
    if (length === null) throw new TrustStoreError('indefinite length on a primitive element');
    const end = start + length;
    if (end > buf.length) throw new TrustStoreError('truncated ASN.1 element');
    return { node: { tag, constructed, value: buf.subarray(start, end), children: [] }, next: end };
  }
  const children: Asn1[] = [];
  let p = start;
  if (length === null) {
    for (;;) {
      if (p + 1 >= buf.length) throw new TrustStoreError('unterminated indefinite-length element');
      if (buf[p] === 0 && buf[p + 1] === 0)
        return { node: { tag, constructed, value: Buffer.alloc(0), children }, next: p + 2 };
      const child = parseAt(buf, p, depth + 1);
      children.push(child.node);
      p = child.next;
    }
  }
  const end = start + length;
  if (end > buf.length) throw new TrustStoreError('truncated ASN.1 element');
  while (p < end) {
    const child = parseAt(buf, p, depth + 1);
    children.push(child.node);
    p = child.next;
  }
  return { node: { tag, constructed, value: Buffer.alloc(0), children }, next: end };
}

function parse(buf: Buffer): Asn1 {
  return parseAt(buf, 0, 0).node;
}

/** Content of an OCTET STRING (or an implicitly tagged one), primitive or constructed. */
function octets(node: Asn1): Buffer {
  return node.constructed ? Buffer.concat(node.children.map(octets)) : node.value;
}

function oid(node: Asn1 | undefined): string {
  if (!node || node.tag !== 0x06) throw new TrustStoreError('expected an OBJECT IDENTIFIER');
  const v = node.value;
  const parts: number[] = [];
  let acc = 0;
  for (const b of v) {
    acc = acc * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      parts.push(acc);
      acc = 0;
    }
  }
  const first = parts.shift() ?? 0;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...parts].join('.');
}

function integer(node: Asn1 | undefined): number {
  if (!node || node.tag !== 0x02) throw new TrustStoreError('expected an INTEGER');
  return node.value.reduce((acc, b) => acc * 256 + b, 0);
}

function child(node: Asn1 | undefined, index: number): Asn1 {
  const c = node?.children[index];
  if (!c) throw new TrustStoreError('unexpected PKCS#12 structure');
  return c;
}

const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  pbeSha3Des: '1.2.840.113549.1.12.1.3',
  pbeSha2Des: '1.2.840.113549.1.12.1.4',
  pbeShaRc2_128: '1.2.840.113549.1.12.1.5',
  pbeShaRc2_40: '1.2.840.113549.1.12.1.6',
} as const;

const PRF: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.8': 'sha224',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};

const CIPHERS: Record<string, { name: string; keyLength: number }> = {
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24 },
};

/** RFC 7292 appendix B.2: PKCS#12 key derivation with SHA-1 (`id` 1 = key, 2 = IV). */
function pkcs12Kdf(password: Buffer, salt: Buffer, id: number, iterations: number, size: number): Buffer {
  const u = 20;
  const v = 64;
  const fill = (src: Buffer): Buffer => {
    const len = src.length === 0 ? 0 : v * Math.ceil(src.length / v);
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) out[i] = src[i % src.length] ?? 0;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([fill(salt), fill(password)]);
  const blocks: Buffer[] = [];
  for (let n = 0; n < Math.ceil(size / u); n++) {
    let A = createHash('sha1').update(D).update(I).digest();
    for (let r = 1; r < iterations; r++) A = createHash('sha1').update(A).digest();
    blocks.push(A);
    const B = fill(A);
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = (I[j + k] ?? 0) + (B[k] ?? 0) + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(blocks).subarray(0, size);
}

/** PKCS#12's password form for its own KDF: BMPString (UTF-16BE) with a terminating NUL. */
function bmpPassword(password: string): Buffer {
  const out = Buffer.alloc(password.length * 2 + 2);
  for (let i = 0; i < password.length; i++) out.writeUInt16BE(password.charCodeAt(i), i * 2);
  return out;
}

function decrypt(algorithm: Asn1, data: Buffer, password: string, location: string): Buffer {
  const algOid = oid(child(algorithm, 0));
  const params = child(algorithm, 1);
  const run = (cipher: string, key: Buffer, iv: Buffer): Buffer => {
    try {
      const d = createDecipheriv(cipher, key, iv);
      return Buffer.concat([d.update(data), d.final()]);
    } catch {
      throw new TrustStoreError(
        `trust store ${location}: cannot decrypt its certificates; is TrustStorePassword right?`,
      );
    }
  };
  if (algOid === OID.pbes2) {
    const kdf = child(params, 0);
    const scheme = child(params, 1);
    if (oid(child(kdf, 0)) !== OID.pbkdf2)
      throw new TrustStoreError(`trust store ${location}: unsupported PBES2 key derivation`);
    const kdfParams = child(kdf, 1);
    const salt = octets(child(kdfParams, 0));
    const iterations = integer(child(kdfParams, 1));
    const prfNode = kdfParams.children.find((c) => c.tag === 0x30);
    const prf = prfNode ? PRF[oid(child(prfNode, 0))] : 'sha1';
    const cipher = CIPHERS[oid(child(scheme, 0))];
    if (!prf || !cipher)
      throw new TrustStoreError(`trust store ${location}: unsupported PBES2 cipher or PRF`);
    const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, cipher.keyLength, prf);
    return run(cipher.name, key, octets(child(scheme, 1)));
  }
  if (algOid === OID.pbeSha3Des) {
    const salt = octets(child(params, 0));
    const iterations = integer(child(params, 1));
    const pw = bmpPassword(password);
    return run('des-ede3-cbc', pkcs12Kdf(pw, salt, 1, iterations, 24), pkcs12Kdf(pw, salt, 2, iterations, 8));
  }
  const rc2 = algOid === OID.pbeShaRc2_40 || algOid === OID.pbeShaRc2_128 || algOid === OID.pbeSha2Des;
  throw new TrustStoreError(
    `trust store ${location}: its certificates are encrypted with ${rc2 ? 'a legacy RC2/2-key-3DES' : `an unsupported (${algOid})`} algorithm; ` +
      're-export it with `openssl pkcs12 -export -nokeys -certpbe AES-256-CBC` or use a PEM trust store',
  );
}

function certsFromSafeContents(safeContents: Asn1, out: Buffer[]): void {
  for (const bag of safeContents.children) {
    if (oid(child(bag, 0)) !== OID.certBag) continue; // keys and other bags are of no use to a trust store
    const certBag = child(child(bag, 1), 0);
    if (oid(child(certBag, 0)) !== OID.x509Certificate) continue;
    out.push(octets(child(child(certBag, 1), 0)));
  }
}

/** Every X.509 certificate (DER) in a PKCS#12 file. */
export function pkcs12Certificates(content: Buffer, password: string, location: string): Buffer[] {
  let pfx: Asn1;
  try {
    pfx = parse(content);
  } catch (error) {
    throw new TrustStoreError(`trust store ${location}: not a PKCS#12 file (${(error as Error).message})`);
  }
  const authSafe = child(pfx, 1);
  if (oid(child(authSafe, 0)) !== OID.data)
    throw new TrustStoreError(`trust store ${location}: public-key-protected PKCS#12 is not supported`);
  const contentInfos = parse(octets(child(child(authSafe, 1), 0)));
  const certs: Buffer[] = [];
  for (const info of contentInfos.children) {
    const type = oid(child(info, 0));
    if (type === OID.data) {
      certsFromSafeContents(parse(octets(child(child(info, 1), 0))), certs);
    } else if (type === OID.encryptedData) {
      const encryptedContentInfo = child(child(child(info, 1), 0), 1);
      const algorithm = child(encryptedContentInfo, 1);
      const encrypted = encryptedContentInfo.children.find(
        (c) => (c.tag & 0x1f) === 0 && (c.tag & 0xc0) === 0x80,
      );
      if (!encrypted) continue;
      certsFromSafeContents(parse(decrypt(algorithm, octets(encrypted), password, location)), certs);
    }
  }
  return certs;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function derToPem(der: Buffer): string {
  return new X509Certificate(der).toString();
}

/**
 * The trust store's certificates as PEM strings (for `tls.connect({ ca })`). The format follows the
 * content (PEM text, one DER certificate, or PKCS#12), whatever the location's extension says.
 */
export function trustStoreCertificates(store: TrustStore): string[] {
  const text = store.content.toString('latin1');
  const pems = text.match(PEM_CERT);
  if (pems) return pems;
  try {
    return [derToPem(store.content)];
  } catch {
    // not a single DER certificate: PKCS#12 below
  }
  if (/\.jks$/i.test(store.location))
    throw new TrustStoreError(
      `trust store ${store.location}: JKS is not supported; convert it with ` +
        '`keytool -importkeystore -deststoretype PKCS12` or export the certificates as PEM',
    );
  const ders = pkcs12Certificates(store.content, store.password ?? '', store.location);
  if (ders.length === 0) throw new TrustStoreError(`trust store ${store.location} holds no certificate`);
  return ders.map(derToPem);
}

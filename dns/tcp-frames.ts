// DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766): every message is preceded by its length as a
// 16-bit big-endian number. Pure.

export function frame(message: Buffer): Buffer {
  if (message.length > 0xffff) throw new Error(`DNS message of ${message.length} octets is too long for TCP`);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}

/** Collects stream chunks and hands out complete messages (without their length prefix). */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    while (this.pending.length >= 2) {
      const length = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + length) break;
      out.push(this.pending.subarray(2, 2 + length));
      this.pending = this.pending.subarray(2 + length);
    }
    return out;
  }

  /** Octets received but not yet part of a complete message. */
  get buffered(): number {
    return this.pending.length;
  }
}

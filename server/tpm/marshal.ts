// TPM 2.0 wire structures are big-endian with 16-bit length-prefixed buffers
// (TPM2B_*), TPM 2.0 Part 2 §5. The reader checks every length against what is
// left: a public area arrives from the network and is hostile until parsed.

export class TpmFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TpmFormatError';
  }
}

export class TpmReader {
  private offset = 0;

  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.buf.length - this.offset;
  }

  private take(n: number, field: string): Buffer {
    if (n > this.remaining) throw new TpmFormatError(`${this.what}: ${field} needs ${n} bytes, ${this.remaining} left`);
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  u16(field: string): number {
    return this.take(2, field).readUInt16BE(0);
  }

  u32(field: string): number {
    return this.take(4, field).readUInt32BE(0);
  }

  /** A TPM2B: a 16-bit size, then that many bytes (at most `max`, the structure's own bound). */
  sized(field: string, max: number): Buffer {
    const size = this.u16(`${field} size`);
    if (size > max) throw new TpmFormatError(`${this.what}: ${field} is ${size} bytes, at most ${max} allowed`);
    return this.take(size, field);
  }

  bytesBetween(start: number, end: number): Buffer {
    return this.buf.subarray(start, end);
  }

  end(): void {
    if (this.remaining !== 0) throw new TpmFormatError(`${this.what}: ${this.remaining} bytes after the end of the structure`);
  }
}

export function u16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value, 0);
  return out;
}

export function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out;
}

/** Marshals a TPM2B: 16-bit size, then the bytes. */
export function sized(bytes: Buffer): Buffer {
  if (bytes.length > 0xffff) throw new RangeError(`a TPM2B holds at most 65535 bytes, not ${bytes.length}`);
  return Buffer.concat([u16(bytes.length), bytes]);
}

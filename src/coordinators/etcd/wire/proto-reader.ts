/**
 * The smallest protobuf reader the watch and listing decoders need: varints, length-delimited
 * fields, and skipping what they do not read. Generic decoding (protobufjs through etcd3) builds
 * an object per message, a Buffer copy per bytes field and a decimal string per 64-bit number;
 * every node decodes every task event of the namespace, so that cost is paid nodes × events
 * times. This reader works on the received buffer in place.
 */
import type { Buffer } from "node:buffer";

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH_DELIMITED = 2;
export const WIRE_FIXED32 = 5;

const TWO_32 = 4294967296;
const INTERN_MAX_BYTES = 64;

/** A few recent (bytes → string) pairs, most recent first, replaced round-robin. */
export class InternCache {
  private readonly bytes: Uint8Array[] = [];
  private readonly texts: string[] = [];
  private next = 0;

  constructor(private readonly capacity = 16) {}

  lookup(buf: Uint8Array, start: number, len: number): string | undefined {
    const all = this.bytes;
    outer: for (let i = 0; i < all.length; i++) {
      const b = all[i]!;
      if (b.length !== len) continue;
      for (let j = 0; j < len; j++) if (b[j] !== buf[start + j]) continue outer;
      return this.texts[i];
    }
    return undefined;
  }

  add(buf: Uint8Array, start: number, len: number, text: string): string {
    const slot = this.next;
    this.next = (this.next + 1) % this.capacity;
    this.bytes[slot] = buf.slice(start, start + len);
    this.texts[slot] = text;
    return text;
  }
}

export class ProtoReader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** The next field's tag: field number × 8 + wire type. */
  tag(): number {
    return this.varint();
  }

  /**
   * A varint as a number: exact up to 2^53 (revisions, counts and flags are far below it). Ids
   * that use all 64 bits (leases) go through int64Decimal.
   */
  varint(): number {
    const buf = this.buf;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError("protobuf: truncated varint");
      const byte = buf[this.pos++]!;
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) return result;
      scale *= 128;
    }
    throw new RangeError("protobuf: varint longer than 10 bytes");
  }

  /**
   * An int64 varint as an exact signed decimal string, as etcd3 reports such fields (lease ids
   * are random 63-bit numbers, past what a double holds exactly).
   */
  int64Decimal(): string {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError("protobuf: truncated varint");
      const byte = buf[this.pos++]!;
      const bits = byte & 0x7f;
      if (shift < 28) lo += bits * 2 ** shift;
      else if (shift === 28) {
        lo += (bits & 0x0f) * 2 ** 28;
        hi += bits >>> 4;
      } else hi += bits * 2 ** (shift - 32);
      if (byte < 0x80) {
        hi %= TWO_32; // a negative int64 is 10 bytes long; keep its low 64 bits
        if (hi < 0x200000) return String(hi * TWO_32 + lo);
        return BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)).toString();
      }
      shift += 7;
    }
    throw new RangeError("protobuf: varint longer than 10 bytes");
  }

  bool(): boolean {
    return this.varint() !== 0;
  }

  /** The length of a length-delimited field; the reader then stands at its first byte. */
  length(): number {
    const len = this.varint();
    if (this.pos + len > this.end) throw new RangeError("protobuf: length past the end of the message");
    return len;
  }

  /** A length-delimited field as UTF-8 text. */
  string(): string {
    const len = this.length();
    const start = this.pos;
    this.pos += len;
    return len === 0 ? "" : this.buf.toString("utf8", start, start + len);
  }

  /**
   * Like string(), but a value equal to one in `cache` returns the cached string without
   * making a new one (compared byte by byte, nothing allocated). For values that repeat across
   * thousands of keys (owner values: one per node).
   */
  internedString(cache: InternCache): string {
    const len = this.length();
    const start = this.pos;
    this.pos += len;
    if (len === 0) return "";
    if (len > INTERN_MAX_BYTES) return this.buf.toString("utf8", start, start + len);
    return (
      cache.lookup(this.buf, start, len) ??
      cache.add(this.buf, start, len, this.buf.toString("utf8", start, start + len))
    );
  }

  /** int64Decimal() through a cache of the raw varint bytes (lease ids repeat on every owner key). */
  internedInt64Decimal(cache: InternCache): string {
    const start = this.pos;
    const buf = this.buf;
    let last = start;
    while (last < this.end && buf[last]! >= 0x80) last++;
    if (last >= this.end) return this.int64Decimal(); // truncated: let it throw
    const len = last + 1 - start;
    const hit = len <= INTERN_MAX_BYTES ? cache.lookup(buf, start, len) : undefined;
    if (hit !== undefined) {
      this.pos = start + len;
      return hit;
    }
    const text = this.int64Decimal();
    return len <= INTERN_MAX_BYTES ? cache.add(buf, start, len, text) : text;
  }

  /** A nested message: a reader over its bytes (this reader moves past them). */
  message(): ProtoReader {
    const len = this.length();
    const sub = new ProtoReader(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return sub;
  }

  /** Skip a field of this wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_FIXED64:
        this.pos += 8;
        break;
      case WIRE_LENGTH_DELIMITED: {
        const len = this.length(); // moves past the length prefix first
        this.pos += len;
        return;
      }
      case WIRE_FIXED32:
        this.pos += 4;
        break;
      default:
        throw new RangeError(`protobuf: unsupported wire type ${wireType}`);
    }
    if (this.pos > this.end) throw new RangeError("protobuf: field past the end of the message");
  }
}

/**
 * The smallest protobuf writer the claim transaction needs: varint and length-delimited fields
 * into one growing buffer. Nested messages are written in place: their length prefix is
 * reserved, the body written after it, and the prefix filled in (moving the body only when
 * the length needs more than the reserved byte, which our small messages rarely do).
 */
import { Buffer } from "node:buffer";
import { WIRE_LENGTH_DELIMITED, WIRE_VARINT } from "./proto-reader.ts";

export class ProtoWriter {
  private buf: Buffer;
  pos = 0;

  constructor(initial = 1024) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** The bytes written so far (a copy, so the writer can be reused). */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + extra));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** An unsigned varint below 2^53 (revisions, versions, lengths, enum values). */
  varint(value: number): void {
    this.ensure(10);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** A 64-bit integer given as decimal text (lease ids use the whole range, sign included). */
  int64Decimal(decimal: string): void {
    let v = BigInt.asUintN(64, BigInt(decimal));
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  varintField(field: number, value: number): void {
    if (value === 0) return; // proto3: the default is not written
    this.tag(field, WIRE_VARINT);
    this.varint(value);
  }

  boolField(field: number, value: boolean): void {
    if (value) this.varintField(field, 1);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.varint(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** A nested message: `body` writes its fields into this writer. */
  messageField(field: number, body: (w: ProtoWriter) => void): void {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.ensure(1);
    const lengthAt = this.pos++;
    body(this);
    const length = this.pos - lengthAt - 1;
    if (length < 0x80) {
      this.buf[lengthAt] = length;
      return;
    }
    // The length needs more bytes than reserved: move the body up.
    let size = 1;
    for (let v = length; v >= 0x80; v = Math.floor(v / 0x80)) size++;
    this.ensure(size - 1);
    this.buf.copy(this.buf, lengthAt + size, lengthAt + 1, this.pos);
    const end = this.pos + size - 1;
    this.pos = lengthAt;
    this.varint(length);
    this.pos = end;
  }
}

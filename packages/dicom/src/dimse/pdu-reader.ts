import { ABORT_REASON, PDU_NAMES, ProtocolError } from './pdu-constants.ts';

/** One complete upper-layer PDU: its type and the bytes after the 6-byte header. */
export interface Pdu {
  type: number;
  body: Buffer;
}

export interface PduReaderOptions {
  /** Largest PDU length (the header's length field) accepted for a PDU type; undefined rejects the type. */
  maxLength: (type: number) => number | undefined;
}

const HEADER_BYTES = 6;
const EMPTY = Buffer.alloc(0);

/**
 * Cuts a TCP byte stream into PDUs without ever concatenating the growing
 * stream: socket chunks are kept in a list and a PDU body is a zero-copy view
 * when it lies inside one chunk, or a single copy of its pieces when it spans
 * several. Headers are checked as soon as they arrive, so a bad type or an
 * oversized length is refused before its body is buffered.
 */
export class PduReader {
  private readonly chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private offset = 0;
  private buffered = 0;
  private header: { type: number; length: number } | undefined;
  private readonly maxLength: PduReaderOptions['maxLength'];

  constructor(options: PduReaderOptions) {
    this.maxLength = options.maxLength;
  }

  /** Bytes received but not yet returned as part of a PDU (a started header counts as pending). */
  get pendingBytes(): number {
    return this.buffered + (this.header === undefined ? 0 : HEADER_BYTES);
  }

  /** Lets go of everything buffered (the connection is gone). */
  clear(): void {
    this.chunks.length = 0;
    this.offset = 0;
    this.buffered = 0;
    this.header = undefined;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete PDU, or undefined until more bytes arrive.
   * @throws ProtocolError for an unknown PDU type or a length above the limit.
   */
  next(): Pdu | undefined {
    if (this.header === undefined) {
      if (this.buffered === 0) return undefined;
      const type = this.chunks[0]![this.offset]!;
      const max = this.maxLength(type);
      if (max === undefined) {
        const name = PDU_NAMES[type];
        throw name === undefined
          ? new ProtocolError(`unknown PDU type 0x${hex(type)}`, { abortReason: ABORT_REASON.unrecognizedPdu })
          : new ProtocolError(`unexpected ${name}`, { abortReason: ABORT_REASON.unexpectedPdu });
      }
      if (this.buffered < HEADER_BYTES) return undefined;
      const length = this.take(HEADER_BYTES).readUInt32BE(2);
      if (length > max) {
        throw new ProtocolError(`${PDU_NAMES[type] ?? 'PDU'} of length ${length}, above the limit of ${max}`, {
          abortReason: ABORT_REASON.invalidPduParameterValue,
        });
      }
      this.header = { type, length };
    }
    if (this.buffered < this.header.length) return undefined;
    const pdu = { type: this.header.type, body: this.take(this.header.length) };
    this.header = undefined;
    return pdu;
  }

  private take(n: number): Buffer {
    if (n === 0) return EMPTY;
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.advance(first, n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const chunk = this.chunks[0]!;
      const count = Math.min(n - written, chunk.length - this.offset);
      chunk.copy(out, written, this.offset, this.offset + count);
      written += count;
      this.advance(chunk, count);
    }
    return out;
  }

  private advance(chunk: Buffer, count: number): void {
    this.offset += count;
    if (this.offset === chunk.length) {
      this.chunks.shift();
      this.offset = 0;
    }
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

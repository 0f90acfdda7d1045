import { TesseraError } from '@tessera/model';

/** The layout an RLE Lossless frame decodes to. */
export interface RleLayout {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  /** 8, 16 or 32. */
  bitsAllocated: number;
  /** 0: samples interleaved per pixel; 1: one plane per sample. */
  planarConfiguration: 0 | 1;
}

const HEADER_BYTES = 64;
const MAX_SEGMENTS = 15;

/**
 * Decodes one RLE Lossless frame (DICOM PS3.5 Annex G) to native little-endian bytes in
 * the given planar configuration.
 *
 * The frame is a 64-byte header (segment count and up to 15 segment offsets) followed by
 * PackBits segments: one per byte of each sample, the most significant byte first, sample
 * by sample. Each segment holds that byte of every pixel in turn.
 *
 * @throws TesseraError TESSERA_INVALID_DICOM when the header or a segment is malformed or short.
 */
export function decodeRle(frame: Buffer, layout: RleLayout): Buffer {
  const { rows, columns, samplesPerPixel, bitsAllocated, planarConfiguration } = layout;
  const bytesPerSample = bitsAllocated / 8;
  const pixels = rows * columns;
  const expected = samplesPerPixel * bytesPerSample;
  if (frame.length < HEADER_BYTES) throw invalid(`the frame has ${frame.length} bytes, less than its 64-byte header`);
  const count = frame.readUInt32LE(0);
  if (count > MAX_SEGMENTS) throw invalid(`the header lists ${count} segments, more than the 15 it can hold`);
  if (count !== expected) {
    throw invalid(`the header lists ${count} segments, expected ${expected} (${samplesPerPixel} samples of ${bytesPerSample} bytes)`);
  }
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) offsets.push(frame.readUInt32LE(4 + 4 * i));
  const out = Buffer.alloc(pixels * expected);
  const stride = planarConfiguration === 1 ? bytesPerSample : expected;
  for (let segment = 0; segment < count; segment++) {
    const start = offsets[segment]!;
    const end = segment + 1 < count ? offsets[segment + 1]! : frame.length;
    if (start < HEADER_BYTES || end > frame.length || end < start) {
      throw invalid(`segment ${segment + 1} has offsets ${start}..${end} outside the ${frame.length}-byte frame`);
    }
    const sample = Math.floor(segment / bytesPerSample);
    // Segments go from the most significant byte; little-endian output puts it last.
    const byte = bytesPerSample - 1 - (segment % bytesPerSample);
    const first = planarConfiguration === 1 ? sample * pixels * bytesPerSample + byte : sample * bytesPerSample + byte;
    const written = unpackBits(frame, start, end, out, first, stride, pixels);
    if (written < pixels) throw invalid(`segment ${segment + 1} decodes to ${written} bytes, expected ${pixels}`);
  }
  return out;
}

/**
 * PackBits: a header byte n, then n+1 literal bytes (n in 0..127) or one byte repeated 1-n
 * times (n in -127..-1); -128 is a no-op. Writes every `stride`-th byte of `out` from
 * `first`, at most `limit` bytes (segments may be padded), and returns how many it wrote.
 */
function unpackBits(src: Buffer, start: number, end: number, out: Buffer, first: number, stride: number, limit: number): number {
  let i = start;
  let written = 0;
  let o = first;
  while (i < end && written < limit) {
    const n = src[i++]!;
    if (n < 128) {
      const count = Math.min(n + 1, end - i, limit - written);
      for (let k = 0; k < count; k++, o += stride) out[o] = src[i + k]!;
      i += n + 1;
      written += count;
    } else if (n > 128) {
      if (i >= end) break;
      const value = src[i++]!;
      const count = Math.min(257 - n, limit - written);
      for (let k = 0; k < count; k++, o += stride) out[o] = value;
      written += count;
    }
  }
  return written;
}

function invalid(message: string): TesseraError {
  return new TesseraError('TESSERA_INVALID_DICOM', `RLE Lossless frame: ${message}`);
}

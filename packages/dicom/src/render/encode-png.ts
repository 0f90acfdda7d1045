import { deflateSync } from 'node:zlib';
import type { Image8 } from './downscale.ts';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const COLOR_TYPE_GREY = 0;
const COLOR_TYPE_RGB = 2;
const FILTER_UP = 2;

/**
 * Encodes an 8-bit grey or RGB image as PNG: signature, IHDR, one IDAT, IEND. Every row
 * uses the Up filter (the difference with the row above), which suits smooth medical
 * images and costs one subtraction per byte, and zlib compresses at a fast level: a
 * rendered frame is produced per request, so encoding time matters more than the last
 * few percent of size.
 */
export function encodePng(image: Image8): Buffer {
  const { width, height, channels, data } = image;
  const stride = width * channels;
  const raw = Buffer.allocUnsafe((stride + 1) * height);
  for (let y = 0; y < height; y++) {
    const at = y * (stride + 1);
    const row = y * stride;
    raw[at] = FILTER_UP;
    if (y === 0) {
      raw.set(data.subarray(0, stride), at + 1);
      continue;
    }
    for (let i = 0; i < stride; i++) raw[at + 1 + i] = (data[row + i]! - data[row - stride + i]!) & 0xff;
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = channels === 1 ? COLOR_TYPE_GREY : COLOR_TYPE_RGB;
  // Bytes 10-12: deflate compression, adaptive filtering, no interlace (all 0).
  return Buffer.concat([
    SIGNATURE,
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 3 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  body.copy(out, 8);
  out.writeUInt32BE(crc32(out, 4, 8 + body.length), 8 + body.length);
  return out;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, as PNG specifies) of bytes start..end-1. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

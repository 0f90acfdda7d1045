import { inflateSync } from 'node:zlib';
import { crc32 } from '../encode-png.ts';

/** A decoded 8-bit PNG. */
export interface DecodedPng {
  width: number;
  height: number;
  channels: number;
  /** Chunk types in file order. */
  chunks: string[];
  pixels: Uint8Array;
}

const SIGNATURE = '89504e470d0a1a0a';

/**
 * Test-only PNG reader for 8-bit grey / RGB, non-interlaced: checks the signature and
 * every chunk's CRC, inflates the IDAT data and undoes all five row filters, so it checks
 * the encoder independently of the filter the encoder happens to choose.
 */
export function readPng(png: Buffer): DecodedPng {
  if (png.subarray(0, 8).toString('hex') !== SIGNATURE) throw new Error('not a PNG signature');
  const chunks: string[] = [];
  const idat: Buffer[] = [];
  let header: Buffer | undefined;
  for (let pos = 8; pos < png.length; ) {
    const length = png.readUInt32BE(pos);
    const type = png.toString('latin1', pos + 4, pos + 8);
    const body = png.subarray(pos + 8, pos + 8 + length);
    const crc = png.readUInt32BE(pos + 8 + length);
    if (crc !== crc32(png, pos + 4, pos + 8 + length)) throw new Error(`bad CRC in ${type}`);
    chunks.push(type);
    if (type === 'IHDR') header = body;
    if (type === 'IDAT') idat.push(body);
    pos += 12 + length;
  }
  if (header === undefined) throw new Error('no IHDR');
  const width = header.readUInt32BE(0);
  const height = header.readUInt32BE(4);
  if (header[8] !== 8 || header[12] !== 0) throw new Error('only 8-bit non-interlaced PNGs are read here');
  const channels = header[9] === 0 ? 1 : header[9] === 2 ? 3 : 0;
  if (channels === 0) throw new Error(`colour type ${header[9]} is not read here`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length !== (stride + 1) * height) throw new Error(`IDAT inflates to ${raw.length} bytes, expected ${(stride + 1) * height}`);
  const pixels = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= channels ? pixels[y * stride + x - channels]! : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels]! : 0;
      pixels[y * stride + x] = (value + predict(filter, a, b, c)) & 0xff;
    }
  }
  return { width, height, channels, chunks, pixels };
}

function predict(filter: number, a: number, b: number, c: number): number {
  switch (filter) {
    case 0:
      return 0;
    case 1:
      return a;
    case 2:
      return b;
    case 3:
      return (a + b) >>> 1;
    case 4: {
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    default:
      throw new Error(`unknown PNG filter ${filter}`);
  }
}

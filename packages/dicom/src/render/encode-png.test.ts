import { describe, expect, it } from 'vitest';
import { readPng } from './__fixtures__/read-png.ts';
import { crc32, encodePng } from './encode-png.ts';

function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    out[i] = seed >> 16;
  }
  return out;
}

describe('crc32', () => {
  it('matches the standard check value and the IEND chunk CRC', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.from('IEND'))).toBe(0xae426082);
  });
});

describe('encodePng', () => {
  it.each([
    [1, 1, 1],
    [7, 3, 1],
    [64, 33, 3],
    [1, 50, 3],
  ] as const)('round-trips a %ix%i image of %i channel(s) through an independent reader', (width, height, channels) => {
    const data = noise(width * height * channels, width * 31 + height);
    const png = encodePng({ width, height, channels, data });
    const decoded = readPng(png);
    expect(decoded.chunks).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect([decoded.width, decoded.height, decoded.channels]).toEqual([width, height, channels]);
    expect(decoded.pixels).toEqual(data);
  });

  it('compresses smooth images well', () => {
    const width = 256;
    const data = Uint8Array.from({ length: width * width }, (_, i) => (i % width) ^ (i >> 8));
    expect(encodePng({ width, height: width, channels: 1, data }).length).toBeLessThan(width * width / 10);
  });
});

import { describe, expect, it } from 'vitest';
import { caught } from './__fixtures__/caught.ts';
import { decodeRle } from './decode-rle.ts';

/** An RLE frame: 64-byte header then the given segments. */
function rleFrame(segments: number[][]): Buffer {
  const header = Buffer.alloc(64);
  header.writeUInt32LE(segments.length, 0);
  let offset = 64;
  segments.forEach((s, i) => {
    header.writeUInt32LE(offset, 4 + 4 * i);
    offset += s.length;
  });
  return Buffer.concat([header, ...segments.map((s) => Buffer.from(s))]);
}

/** PackBits for a literal run. */
const literal = (...bytes: number[]): number[] => [bytes.length - 1, ...bytes];
/** PackBits for a byte repeated `count` times (2..128). */
const repeat = (value: number, count: number): number[] => [257 - count, value];


describe('decodeRle', () => {
  const layout = { rows: 2, columns: 3, samplesPerPixel: 1, bitsAllocated: 8, planarConfiguration: 0 } as const;

  it('decodes literal and repeat runs and skips the -128 no-op', () => {
    const frame = rleFrame([[...literal(1, 2), 128, ...repeat(7, 3), ...literal(9)]]);
    expect([...decodeRle(frame, layout)]).toEqual([1, 2, 7, 7, 7, 9]);
  });

  it('ignores segment padding beyond the pixel count', () => {
    expect([...decodeRle(rleFrame([[...repeat(5, 6), 0, 0]]), layout)]).toEqual([5, 5, 5, 5, 5, 5]);
  });

  it('puts the most significant byte segment last in little-endian output', () => {
    const frame = rleFrame([literal(0x12, 0xab), literal(0x34, 0xcd)]);
    const out = decodeRle(frame, { rows: 1, columns: 2, samplesPerPixel: 1, bitsAllocated: 16, planarConfiguration: 0 });
    expect([out.readUInt16LE(0), out.readUInt16LE(2)]).toEqual([0x1234, 0xabcd]);
  });

  it('orders 32-bit segments from the most significant byte', () => {
    const frame = rleFrame([literal(0x01), literal(0x02), literal(0x03), literal(0x04)]);
    const out = decodeRle(frame, { rows: 1, columns: 1, samplesPerPixel: 1, bitsAllocated: 32, planarConfiguration: 0 });
    expect(out.readUInt32LE(0)).toBe(0x01020304);
  });

  it('interleaves colour samples, or keeps them as planes for Planar Configuration 1', () => {
    const frame = rleFrame([literal(1, 2), literal(3, 4), literal(5, 6)]);
    const colour = { rows: 1, columns: 2, samplesPerPixel: 3, bitsAllocated: 8 } as const;
    expect([...decodeRle(frame, { ...colour, planarConfiguration: 0 })]).toEqual([1, 3, 5, 2, 4, 6]);
    expect([...decodeRle(frame, { ...colour, planarConfiguration: 1 })]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses a header with the wrong segment count', () => {
    const err = caught(() => decodeRle(rleFrame([literal(1, 2, 3, 4, 5, 6), literal(1)]), layout));
    expect(err.code).toBe('TESSERA_INVALID_DICOM');
    expect(err.message).toMatch(/lists 2 segments, expected 1/);
  });

  it('refuses a segment that decodes short', () => {
    const err = caught(() => decodeRle(rleFrame([literal(1, 2, 3)]), layout));
    expect(err.message).toMatch(/segment 1 decodes to 3 bytes, expected 6/);
  });

  it('refuses a frame shorter than its header or with offsets outside it', () => {
    expect(caught(() => decodeRle(Buffer.alloc(10), layout)).message).toMatch(/less than its 64-byte header/);
    const frame = rleFrame([literal(1, 2, 3, 4, 5, 6)]);
    frame.writeUInt32LE(500, 4);
    expect(caught(() => decodeRle(frame, layout)).message).toMatch(/outside the 71-byte frame/);
  });
});

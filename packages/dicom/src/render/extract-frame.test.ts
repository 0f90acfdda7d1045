import { describe, expect, it } from 'vitest';
import { caught } from './__fixtures__/caught.ts';
import { pydicomFile, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { pixelModuleFromFile } from './__fixtures__/pixel-module-from-file.ts';
import { encapsulate, monochromeModule } from './__fixtures__/synthetic.ts';
import { extractFrame } from './extract-frame.ts';
import type { PixelModule } from './pixel-module.ts';

const RLE = '1.2.840.10008.1.2.5';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';


function encapsulated(value: Buffer, numberOfFrames: number): PixelModule {
  return {
    ...monochromeModule(new Uint8Array(4), { rows: 2, columns: 2, numberOfFrames }),
    transferSyntaxUid: JPEG_BASELINE,
    pixelData: { encapsulated: true, value },
  };
}

/** A fake JPEG codestream body: SOI, some bytes, EOI, optionally split across fragments. */
function jpegLike(id: number, length: number): Buffer {
  const body = Buffer.alloc(length, id);
  body[0] = 0xff;
  body[1] = 0xd8;
  body[length - 2] = 0xff;
  body[length - 1] = 0xd9;
  return body;
}

describe('extractFrame, native', () => {
  it('slices each frame by Rows x Columns x Samples x Bits Allocated', () => {
    const pixels = Uint16Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    const pm = monochromeModule(pixels, { rows: 2, columns: 3, numberOfFrames: 4 });
    for (let f = 0; f < 4; f++) {
      const frame = extractFrame(pm, f);
      expect(frame.length).toBe(12);
      expect(Array.from(new Uint16Array(Uint8Array.from(frame).buffer))).toEqual([0, 1, 2, 3, 4, 5].map((i) => f * 6 + i));
    }
  });

  it('realigns bit-packed frames that do not start on a byte boundary (Bits Allocated 1, 3x3 = 9 bits a frame)', () => {
    // Frames 0, 1, 2 are all-ones, all-zeros, then alternate; packed least significant bit first.
    const bits = [...Array(9).fill(1), ...Array(9).fill(0), ...Array.from({ length: 9 }, (_, i) => i % 2)];
    const value = Buffer.alloc(Math.ceil(bits.length / 8) + 1);
    bits.forEach((b, i) => (value[i >> 3]! |= b << (i & 7)));
    const pm: PixelModule = {
      ...monochromeModule(new Uint8Array(0), { rows: 3, columns: 3, numberOfFrames: 3 }),
      bitsAllocated: 1,
      bitsStored: 1,
      highBit: 0,
      pixelData: { encapsulated: false, value },
    };
    expect([...extractFrame(pm, 0)]).toEqual([0xff, 0x01]);
    expect([...extractFrame(pm, 1)]).toEqual([0x00, 0x00]);
    expect([...extractFrame(pm, 2)]).toEqual([0b10101010, 0x00]);
  });

  it('ignores the padding byte of an odd-length value', () => {
    const pm = monochromeModule(Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]), { rows: 3, columns: 3 });
    expect([...extractFrame(pm, 0)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('takes YBR_FULL_422 frames as two samples per pixel', () => {
    const pm: PixelModule = {
      ...monochromeModule(Uint8Array.from({ length: 16 }, (_, i) => i), { rows: 2, columns: 2, numberOfFrames: 2 }),
      samplesPerPixel: 3,
      photometricInterpretation: 'YBR_FULL_422',
    };
    expect([...extractFrame(pm, 1)]).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
  });

  it('refuses a frame index out of range with NOT_FOUND, numbering frames from 1', () => {
    const pm = monochromeModule(new Uint16Array(8), { rows: 2, columns: 2, numberOfFrames: 2 });
    const err = caught(() => extractFrame(pm, 2));
    expect(err.code).toBe('TESSERA_NOT_FOUND');
    expect(err.message).toBe('frame 3 does not exist: the instance has 2 frames');
    expect(caught(() => extractFrame(pm, -1)).code).toBe('TESSERA_NOT_FOUND');
    expect(caught(() => extractFrame(pm, 0.5)).code).toBe('TESSERA_NOT_FOUND');
  });

  it('says a truncated value is truncated', () => {
    const pm = monochromeModule(new Uint16Array(7), { rows: 2, columns: 2, numberOfFrames: 2 });
    const err = caught(() => extractFrame(pm, 1));
    expect(err.code).toBe('TESSERA_INVALID_DICOM');
    expect(err.message).toMatch(/truncated, shorter than the image it claims: frame 2 of \d+ rows x \d+ columns x \d+ samples x \d+ bits needs bytes 8 to 16, but the value has 14 bytes/);
  });
});

describe('extractFrame, encapsulated', () => {
  const a = jpegLike(1, 10);
  const b = jpegLike(2, 12);

  it('uses the Basic Offset Table to group fragments', () => {
    const [a1, a2] = [a.subarray(0, 4), a.subarray(4)];
    const value = encapsulate([a1, a2, b], { offsets: [0, 8 + a1.length + 8 + a2.length] });
    const pm = encapsulated(value, 2);
    expect(extractFrame(pm, 0).equals(a)).toBe(true);
    expect(extractFrame(pm, 1).equals(b)).toBe(true);
  });

  it('without a table, takes one fragment per frame when counts match, with or without a trailing delimiter', () => {
    for (const delimiter of [true, false]) {
      const pm = encapsulated(encapsulate([a, b], { delimiter }), 2);
      expect(extractFrame(pm, 1).equals(b)).toBe(true);
    }
  });

  it('without a table, gives a single frame all the fragments', () => {
    const pm = encapsulated(encapsulate([a.subarray(0, 3), a.subarray(3, 7), a.subarray(7)]), 1);
    expect(extractFrame(pm, 0).equals(a)).toBe(true);
  });

  it('without a table, splits fragments at end-of-image markers (padding byte allowed)', () => {
    const padded = Buffer.concat([b, Buffer.from([0])]);
    const pm = encapsulated(encapsulate([a.subarray(0, 5), a.subarray(5), padded.subarray(0, 6), padded.subarray(6)]), 2);
    expect(extractFrame(pm, 0).equals(a)).toBe(true);
    expect(extractFrame(pm, 1).equals(padded)).toBe(true);
  });

  it('ignores a Basic Offset Table that does not point at fragments', () => {
    const pm = encapsulated(encapsulate([a, b], { offsets: [0, 7] }), 2);
    expect(extractFrame(pm, 1).equals(b)).toBe(true);
  });

  it('says when fragments cannot be split into frames', () => {
    const pm = encapsulated(encapsulate([a, b, Buffer.from([1, 2])]), 2);
    const err = caught(() => extractFrame(pm, 0));
    expect(err.code).toBe('TESSERA_INVALID_DICOM');
    expect(err.message).toMatch(/cannot split 3 fragments into 2 frames/);
  });

  it('says an item running past the value is truncated', () => {
    const value = encapsulate([a, b], { delimiter: false });
    const err = caught(() => extractFrame(encapsulated(value.subarray(0, value.length - 3), 2), 0));
    expect(err.code).toBe('TESSERA_INVALID_DICOM');
    expect(err.message).toMatch(/truncated: item 2 .* declares 12 bytes but only 9 remain/);
  });

  it('refuses a value that is not an item sequence', () => {
    const err = caught(() => extractFrame(encapsulated(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), 1), 0));
    expect(err.code).toBe('TESSERA_INVALID_DICOM');
    expect(err.message).toMatch(/expected an item tag \(FFFE,E000\) at byte 0, found \(0201,0403\)/);
  });

  it('refuses encapsulated pixel data with no fragment', () => {
    expect(caught(() => extractFrame(encapsulated(encapsulate([]), 1), 0)).message).toMatch(/no fragment/);
  });
});

describe.skipIf(skipDicomTools)('extractFrame on pydicom files', () => {
  it('slices native multi-frame data (rtdose: 15 frames of 10x10 32-bit)', () => {
    const pm = pixelModuleFromFile(pydicomFile('rtdose.dcm'));
    expect(pm.numberOfFrames).toBe(15);
    expect(extractFrame(pm, 14).equals(pm.pixelData.value.subarray(14 * 400, 15 * 400))).toBe(true);
    expect(caught(() => extractFrame(pm, 15)).message).toBe('frame 16 does not exist: the instance has 15 frames');
  });

  it('takes RLE frames from the Basic Offset Table (SC_rgb_rle_2frame) and one per fragment without it (rtdose_rle)', () => {
    const withTable = pixelModuleFromFile(pydicomFile('SC_rgb_rle_2frame.dcm'));
    expect(withTable.transferSyntaxUid).toBe(RLE);
    expect(extractFrame(withTable, 1).length).toBe(664);
    const withoutTable = pixelModuleFromFile(pydicomFile('rtdose_rle.dcm'));
    const frames = Array.from({ length: 15 }, (_, i) => extractFrame(withoutTable, i));
    // Every RLE frame starts with its 64-byte header: 4 segments for 32-bit samples.
    expect(frames.every((f) => f.readUInt32LE(0) === 4 && f.readUInt32LE(4) === 64)).toBe(true);
  });

  it('reads fragments by item length, not by scanning for delimiters (a codestream containing FFFE,E0DD)', () => {
    const pm = pixelModuleFromFile(pydicomFile('JPEG2000-embedded-sequence-delimiter.dcm'));
    const frame = extractFrame(pm, 0);
    expect(frame.length).toBe(250);
    expect(frame.includes(Buffer.from([0xfe, 0xff, 0xdd, 0xe0]))).toBe(true);
    expect(frame.subarray(-2).toString('hex')).toBe('ffd9');
  });
});

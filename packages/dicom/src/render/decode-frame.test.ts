import { describe, expect, it } from 'vitest';
import { rejection } from './__fixtures__/caught.ts';
import { encapsulate, monochromeModule } from './__fixtures__/synthetic.ts';
import { decodeFrame } from './decode-frame.ts';
import type { PixelModule } from './pixel-module.ts';

function colourModule(samples: number[], overrides: Partial<PixelModule> & { rows: number; columns: number }): PixelModule {
  return { ...monochromeModule(Uint8Array.from(samples), overrides), samplesPerPixel: 3, photometricInterpretation: 'RGB', ...overrides };
}

describe('decodeFrame, stored values', () => {
  it('masks unsigned values to Bits Stored (bits above it may hold overlays)', async () => {
    const pm = monochromeModule(Uint16Array.from([0x0fff, 0xf001, 0x1234]), { rows: 1, columns: 3, bitsStored: 12, highBit: 11 });
    expect(Array.from((await decodeFrame(pm, 0)).data)).toEqual([4095, 1, 0x234]);
  });

  it('sign-extends signed values from Bits Stored', async () => {
    const raw = Uint16Array.from([0x0800, 0x0fff, 0x07ff, 0xf7ff]);
    const pm = monochromeModule(raw, { rows: 2, columns: 2, bitsStored: 12, highBit: 11, pixelRepresentation: 1 });
    expect(Array.from((await decodeFrame(pm, 0)).data)).toEqual([-2048, -1, 2047, 2047]);
  });

  it('shifts values whose High Bit is not Bits Stored - 1', async () => {
    const pm = monochromeModule(Uint16Array.from([0xabc0, 0x0010]), { rows: 1, columns: 2, bitsStored: 12, highBit: 15 });
    expect(Array.from((await decodeFrame(pm, 0)).data)).toEqual([0xabc, 0x001]);
  });

  it('reads signed 8-bit and signed 32-bit values', async () => {
    const eight = monochromeModule(Uint8Array.from([0x80, 0x7f]), { rows: 1, columns: 2, pixelRepresentation: 1 });
    expect(Array.from((await decodeFrame(eight, 0)).data)).toEqual([-128, 127]);
    const wide = monochromeModule(Int32Array.from([-70000, 70000]), { rows: 1, columns: 2 });
    expect(Array.from((await decodeFrame(wide, 0)).data)).toEqual([-70000, 70000]);
  });

  it('keeps unsigned 32-bit values above 2^31 in a Uint32Array', async () => {
    const frame = await decodeFrame(monochromeModule(Uint32Array.from([0xffffffff, 1]), { rows: 1, columns: 2 }), 0);
    expect(frame.data).toBeInstanceOf(Uint32Array);
    expect(Array.from(frame.data)).toEqual([0xffffffff, 1]);
  });

  it('reads a value at an odd byte offset (a view into a larger dataset buffer)', async () => {
    const dataset = Buffer.alloc(9);
    dataset.writeInt16LE(-5, 1);
    dataset.writeInt16LE(300, 3);
    const pm = monochromeModule(new Int16Array(2), { rows: 1, columns: 2 });
    const frame = await decodeFrame({ ...pm, pixelData: { encapsulated: false, value: dataset.subarray(1, 5) } }, 0);
    expect(Array.from(frame.data)).toEqual([-5, 300]);
  });
});

describe('decodeFrame, colour', () => {
  it('interleaves Planar Configuration 1', async () => {
    const pm = colourModule([1, 2, 3, 4, 5, 6], { rows: 1, columns: 2, planarConfiguration: 1 });
    expect(Array.from((await decodeFrame(pm, 0)).data)).toEqual([1, 3, 5, 2, 4, 6]);
  });

  it('converts native YBR_FULL to RGB', async () => {
    const pm = colourModule([76, 85, 255, 128, 128, 128], { rows: 1, columns: 2, photometricInterpretation: 'YBR_FULL' });
    expect(Array.from((await decodeFrame(pm, 0)).data)).toEqual([254, 0, 0, 128, 128, 128]);
  });

  it('keeps the 8 most significant stored bits of 16-bit RGB', async () => {
    const samples = Uint16Array.from([0xffff, 0x8080, 0x0100]);
    const pm: PixelModule = { ...monochromeModule(samples, { rows: 1, columns: 1 }), samplesPerPixel: 3, photometricInterpretation: 'RGB' };
    expect(Array.from((await decodeFrame(pm, 0)).data)).toEqual([255, 128, 1]);
  });

  it('maps PALETTE COLOR through the palette, clamping indices outside it', async () => {
    const palette = {
      red: Uint16Array.from([0x0000, 0xff00, 0x8000]),
      green: Uint16Array.from([0x1000, 0x2000, 0x3000]),
      blue: Uint16Array.from([0xffff, 0x0000, 0x0100]),
      firstMapped: 10,
      bits: 16,
    };
    const pm = monochromeModule(Uint8Array.from([9, 10, 11, 12, 200]), { rows: 1, columns: 5, photometricInterpretation: 'PALETTE COLOR', palette });
    const frame = await decodeFrame(pm, 0);
    expect(frame.samples).toBe(3);
    expect(Array.from(frame.data)).toEqual([0, 16, 255, 0, 16, 255, 255, 32, 0, 128, 48, 1, 128, 48, 1]);
  });
});

describe('decodeFrame refuses what it cannot decode, naming it', () => {
  const base = monochromeModule(new Uint16Array(4), { rows: 2, columns: 2 });

  it.each([
    [{ transferSyntaxUid: '1.2.840.10008.1.2.4.100' }, 'transfer syntax 1.2.840.10008.1.2.4.100 is not supported for decoding'],
    [{ transferSyntaxUid: '1.2.840.10008.1.2.4.201' }, 'transfer syntax 1.2.840.10008.1.2.4.201 is not supported for decoding'],
    [{ photometricInterpretation: 'CMYK' }, 'photometric interpretation CMYK is not supported'],
    [{ photometricInterpretation: 'RGB' }, 'photometric interpretation RGB with 1 samples per pixel is not supported'],
    [{ photometricInterpretation: 'PALETTE COLOR' }, 'PALETTE COLOR is not supported without its palette lookup tables'],
    [{ bitsAllocated: 12, bitsStored: 12, highBit: 11 }, 'Bits Allocated 12 is not supported'],
    [{ samplesPerPixel: 4 }, 'Samples per Pixel 4 is not supported'],
  ])('%o: NOT_ACCEPTABLE', async (overrides, message) => {
    const err = await rejection(decodeFrame({ ...base, ...overrides }, 0));
    expect(err.code).toBe('TESSERA_NOT_ACCEPTABLE');
    expect(err.message).toContain(message);
  });

  it('YBR_RCT outside JPEG 2000: NOT_ACCEPTABLE', async () => {
    const pm = colourModule([1, 2, 3], { rows: 1, columns: 1, photometricInterpretation: 'YBR_RCT' });
    expect((await rejection(decodeFrame(pm, 0))).message).toBe('photometric interpretation YBR_RCT is only supported in JPEG 2000 frames');
  });

  it.each([
    [{ rows: 0 }, 'Rows 0 and Columns 2 must be positive integers'],
    [{ bitsStored: 17 }, 'Bits Stored 17 and High Bit 15 do not fit in Bits Allocated 16'],
    [{ pixelData: { encapsulated: true, value: encapsulate([Buffer.alloc(8)]) } }, 'the pixel data is encapsulated but the transfer syntax is Explicit VR Little Endian'],
    [{ transferSyntaxUid: '1.2.840.10008.1.2.5' }, 'the pixel data is native but the transfer syntax is RLE Lossless'],
  ])('%o: INVALID_DICOM', async (overrides, message) => {
    const err = await rejection(decodeFrame({ ...base, ...overrides } as PixelModule, 0));
    expect(err.code).toBe('TESSERA_INVALID_DICOM');
    expect(err.message).toContain(message);
  });

  it('a frame out of range: NOT_FOUND', async () => {
    const err = await rejection(decodeFrame(base, 1));
    expect(err.code).toBe('TESSERA_NOT_FOUND');
    expect(err.message).toBe('frame 2 does not exist: the instance has 1 frame');
  });
});

import type { FrameSamples } from './frame-samples.ts';
import type { PixelModule } from './pixel-module.ts';

/**
 * Reads the samples of one native (uncompressed) frame: bit-packed (Bits Allocated 1),
 * 8, 16 or 32 bits, little or big endian. Stored YBR_FULL_422 (two luminance samples
 * sharing one Cb and one Cr) is expanded to three samples per pixel; RLE output, which is
 * never subsampled, passes `subsampled422: false`.
 */
export function nativeSamples(
  frame: Buffer,
  pm: PixelModule,
  options: { littleEndian: boolean; subsampled422: boolean },
): FrameSamples {
  const pixels = pm.rows * pm.columns;
  const base = {
    width: pm.columns,
    height: pm.rows,
    components: pm.samplesPerPixel,
    lowBit: pm.highBit + 1 - pm.bitsStored,
    alreadyRgb: false,
  };
  const planar = pm.samplesPerPixel > 1 && pm.planarConfiguration === 1;
  if (pm.bitsAllocated === 1) return { ...base, data: unpackBits(frame, pixels), planar: false };
  const data = typedSamples(frame, pm.bitsAllocated, options.littleEndian);
  if (options.subsampled422 && pm.photometricInterpretation === 'YBR_FULL_422' && pm.samplesPerPixel === 3) {
    return { ...base, data: expandYbr422(data, pixels), planar: false };
  }
  return { ...base, data, planar };
}

/** Bits Allocated 1 packs eight pixels per byte, the first pixel in the least significant bit. */
function unpackBits(frame: Buffer, pixels: number): Uint8Array {
  const out = new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) out[i] = (frame[i >>> 3]! >>> (i & 7)) & 1;
  return out;
}

function typedSamples(frame: Buffer, bitsAllocated: number, littleEndian: boolean): Uint8Array | Uint16Array | Uint32Array {
  if (bitsAllocated === 8) return frame;
  const size = bitsAllocated >>> 3;
  const count = Math.floor(frame.length / size);
  // A typed-array view needs an aligned offset; the frame is copied only when it is not.
  const aligned = frame.byteOffset % size === 0;
  if (littleEndian && aligned) {
    return size === 2 ? new Uint16Array(frame.buffer, frame.byteOffset, count) : new Uint32Array(frame.buffer, frame.byteOffset, count);
  }
  const copy = Buffer.alloc(count * size);
  frame.copy(copy, 0, 0, count * size);
  if (!littleEndian) {
    if (size === 2) copy.swap16();
    else copy.swap32();
  }
  return size === 2 ? new Uint16Array(copy.buffer, copy.byteOffset, count) : new Uint32Array(copy.buffer, copy.byteOffset, count);
}

/** Y1 Y2 Cb Cr per pair of pixels becomes Y1 Cb Cr Y2 Cb Cr (PS3.3 C.7.6.3.1.2). */
function expandYbr422(data: Uint8Array | Uint16Array | Uint32Array, pixels: number): Uint8Array | Uint16Array | Uint32Array {
  const out = new (data.constructor as new (length: number) => typeof data)(pixels * 3);
  for (let pair = 0, i = 0, o = 0; pair < pixels >>> 1; pair++, i += 4, o += 6) {
    const cb = data[i + 2]!;
    const cr = data[i + 3]!;
    out[o] = data[i]!;
    out[o + 1] = cb;
    out[o + 2] = cr;
    out[o + 3] = data[i + 1]!;
    out[o + 4] = cb;
    out[o + 5] = cr;
  }
  return out;
}

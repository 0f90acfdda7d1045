import type { FrameSamples } from './frame-samples.ts';
import type { PixelModule } from './pixel-module.ts';

/**
 * The stored pixel values of a single-sample frame: each sample shifted down to its low
 * bit, masked to Bits Stored and, when Pixel Representation is 1, sign-extended. Values are
 * in an Int32Array, except unsigned 32-bit values, which only a Uint32Array holds.
 */
export function storedValues(samples: FrameSamples, pm: PixelModule): Int32Array | Uint32Array {
  const n = samples.width * samples.height;
  const src = samples.data.subarray(0, n);
  const bits = pm.bitsStored;
  const low = samples.lowBit;
  const signed = pm.pixelRepresentation === 1;
  if (bits === 32) return signed ? Int32Array.from(new Int32Array(src.buffer, src.byteOffset, n)) : Uint32Array.from(src);
  // The widening copy is native (TypedArray#set); the loops then only touch an Int32Array,
  // which keeps them monomorphic and fast whatever the source sample width.
  const out = new Int32Array(n);
  out.set(src);
  const full = low === 0 && bits === src.BYTES_PER_ELEMENT * 8;
  if (signed) {
    // Shifting the sign bit up to bit 31 and back extends it.
    const up = 32 - bits;
    for (let i = 0; i < n; i++) out[i] = ((out[i]! >>> low) << up) >> up;
  } else if (!full) {
    const mask = (1 << bits) - 1;
    for (let i = 0; i < n; i++) out[i] = (out[i]! >>> low) & mask;
  }
  return out;
}

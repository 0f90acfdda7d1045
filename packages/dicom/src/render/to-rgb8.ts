import { TesseraError } from '@tessera/model';
import type { FrameSamples } from './frame-samples.ts';
import type { PixelModule } from './pixel-module.ts';

/**
 * Turns the samples of a colour frame into 8-bit RGB, interleaved: planes are interleaved,
 * samples of more than 8 bits keep their 8 most significant stored bits, and YBR_FULL /
 * YBR_FULL_422 is converted with the full-range ITU-R BT.601 matrix of PS3.3 C.7.6.3.1.2.
 *
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE for YBR_RCT / YBR_ICT outside JPEG 2000, where no codec undid the transform.
 */
export function toRgb8(samples: FrameSamples, pm: PixelModule): Uint8Array {
  const photometric = pm.photometricInterpretation;
  const isYbr = photometric === 'YBR_FULL' || photometric === 'YBR_FULL_422';
  if (!samples.alreadyRgb && (photometric === 'YBR_RCT' || photometric === 'YBR_ICT')) {
    throw new TesseraError('TESSERA_NOT_ACCEPTABLE', `photometric interpretation ${photometric} is only supported in JPEG 2000 frames`);
  }
  const n = samples.width * samples.height;
  const src = samples.data;
  const bits = Math.min(pm.bitsStored, src.BYTES_PER_ELEMENT * 8);
  const shift = samples.lowBit + Math.max(0, bits - 8);
  const out = new Uint8Array(n * 3);
  if (samples.planar) {
    for (let p = 0, o = 0; p < n; p++, o += 3) {
      out[o] = src[p]! >>> shift;
      out[o + 1] = src[n + p]! >>> shift;
      out[o + 2] = src[2 * n + p]! >>> shift;
    }
  } else if (shift === 0 && src instanceof Uint8Array) {
    out.set(src.subarray(0, n * 3));
  } else {
    for (let i = 0; i < n * 3; i++) out[i] = src[i]! >>> shift;
  }
  if (isYbr && !samples.alreadyRgb) ybrFullToRgb(out);
  return out;
}

/** In place. */
function ybrFullToRgb(rgb: Uint8Array): void {
  for (let o = 0; o < rgb.length; o += 3) {
    const y = rgb[o]!;
    const cb = rgb[o + 1]! - 128;
    const cr = rgb[o + 2]! - 128;
    // A Uint8Array stores values modulo 256, so clamp first.
    rgb[o] = clamp(y + 1.402 * cr);
    rgb[o + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    rgb[o + 2] = clamp(y + 1.772 * cb);
  }
}

function clamp(v: number): number {
  return v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
}

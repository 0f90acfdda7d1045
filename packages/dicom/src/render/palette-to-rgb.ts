import { TesseraError } from '@tessera/model';
import type { PixelModule } from './pixel-module.ts';

/**
 * Maps PALETTE COLOR indices to 8-bit RGB through the palette lookup tables. Indices below
 * the first mapped value take the first entry and those past the end the last, as PS3.3
 * C.7.6.3.1.5 says; 16-bit entries keep their 8 most significant bits.
 *
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE when the palette is missing.
 */
export function paletteToRgb(indices: Int32Array | Uint32Array, pm: PixelModule): Uint8Array {
  const palette = pm.palette;
  if (palette === undefined) {
    throw new TesseraError('TESSERA_NOT_ACCEPTABLE', 'photometric interpretation PALETTE COLOR is not supported without its palette lookup tables');
  }
  const entries = Math.min(palette.red.length, palette.green.length, palette.blue.length);
  if (entries === 0) throw new TesseraError('TESSERA_INVALID_DICOM', 'the PALETTE COLOR lookup tables are empty');
  const shift = Math.max(0, palette.bits - 8);
  const out = new Uint8Array(indices.length * 3);
  const last = entries - 1;
  for (let i = 0, o = 0; i < indices.length; i++, o += 3) {
    const at = indices[i]! - palette.firstMapped;
    const e = at < 0 ? 0 : at > last ? last : at;
    out[o] = palette.red[e]! >>> shift;
    out[o + 1] = palette.green[e]! >>> shift;
    out[o + 2] = palette.blue[e]! >>> shift;
  }
  return out;
}

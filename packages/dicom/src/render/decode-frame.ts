import { TesseraError } from '@tessera/model';
import { decodableTransferSyntax, decodeSamples } from './decode-samples.ts';
import { paletteToRgb } from './palette-to-rgb.ts';
import type { PixelModule } from './pixel-module.ts';
import { storedValues } from './stored-values.ts';
import { toRgb8 } from './to-rgb8.ts';

/** A decoded monochrome frame. */
export interface MonochromeFrame {
  width: number;
  height: number;
  samples: 1;
  /**
   * Stored pixel values, row by row: masked to Bits Stored and sign-extended, but neither
   * rescaled (slope / intercept) nor inverted for MONOCHROME1; rendering does both. A
   * Uint32Array only for unsigned 32-bit values, an Int32Array otherwise.
   */
  data: Int32Array | Uint32Array;
}

/** A decoded colour frame: RGB, PALETTE COLOR and YBR frames all end up as 8-bit RGB. */
export interface ColorFrame {
  width: number;
  height: number;
  samples: 3;
  /** 8-bit RGB, interleaved, row by row. */
  data: Uint8Array;
}

/** One frame's pixels, ready to be windowed and rendered. */
export type DecodedFrame = MonochromeFrame | ColorFrame;

const MONOCHROME = new Set(['MONOCHROME1', 'MONOCHROME2']);
const COLOR = new Set(['RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_RCT', 'YBR_ICT']);

/**
 * Decodes one frame. Monochrome frames keep their stored values (see
 * {@link MonochromeFrame}); colour frames become 8-bit RGB.
 *
 * @param index 0-based frame index.
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE when the transfer syntax, photometric
 * interpretation or bit depth is not supported (the message names it).
 * @throws TesseraError TESSERA_NOT_FOUND when the frame does not exist.
 * @throws TesseraError TESSERA_INVALID_DICOM when the pixel data is truncated or corrupt.
 */
export async function decodeFrame(pm: PixelModule, index: number): Promise<DecodedFrame> {
  decodableTransferSyntax(pm);
  checkPhotometric(pm);
  const samples = await decodeSamples(pm, index);
  const { width, height } = samples;
  const photometric = pm.photometricInterpretation;
  if (MONOCHROME.has(photometric)) return { width, height, samples: 1, data: storedValues(samples, pm) };
  if (photometric === 'PALETTE COLOR') return { width, height, samples: 3, data: paletteToRgb(storedValues(samples, pm), pm) };
  return { width, height, samples: 3, data: toRgb8(samples, pm) };
}

function checkPhotometric(pm: PixelModule): void {
  const photometric = pm.photometricInterpretation;
  const single = MONOCHROME.has(photometric) || photometric === 'PALETTE COLOR';
  if (!single && !COLOR.has(photometric)) {
    throw new TesseraError('TESSERA_NOT_ACCEPTABLE', `photometric interpretation ${photometric} is not supported`);
  }
  if (pm.samplesPerPixel !== (single ? 1 : 3)) {
    throw new TesseraError(
      'TESSERA_NOT_ACCEPTABLE',
      `photometric interpretation ${photometric} with ${pm.samplesPerPixel} samples per pixel is not supported`,
    );
  }
  if (photometric === 'PALETTE COLOR' && pm.palette === undefined) {
    throw new TesseraError('TESSERA_NOT_ACCEPTABLE', 'photometric interpretation PALETTE COLOR is not supported without its palette lookup tables');
  }
}

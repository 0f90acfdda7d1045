import { createRequire } from 'node:module';
import { TesseraError } from '@tessera/model';
import { checkEndOfImage } from './check-end-of-image.ts';
import type { FrameSamples } from './frame-samples.ts';

/** The part of jpeg-lossless-decoder-js's Decoder used here (the package ships no typings). */
interface LosslessDecoder {
  decode(buffer: ArrayBuffer, offset: number, length: number): Uint8Array | Uint16Array;
  frame: { dimX: number; dimY: number; numComp: number; precision: number };
}
type LosslessModule = { Decoder: new () => LosslessDecoder };

const requireFromHere = createRequire(import.meta.url);
let losslessModule: LosslessModule | undefined;

/**
 * Decodes a JPEG Lossless (Process 14, any selection value) frame with
 * jpeg-lossless-decoder-js. Lossless JPEG applies no colour transform.
 *
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE for colour samples of more than 8 bits, which the decoder does not handle.
 * @throws TesseraError TESSERA_INVALID_DICOM when the codestream is corrupt.
 */
export function decodeJpegLossless(frame: Buffer, transferSyntaxName: string): FrameSamples {
  checkEndOfImage(frame, transferSyntaxName);
  losslessModule ??= requireFromHere('jpeg-lossless-decoder-js') as LosslessModule;
  const decoder = new losslessModule.Decoder();
  let data: Uint8Array | Uint16Array;
  try {
    data = decoder.decode(frame.buffer as ArrayBuffer, frame.byteOffset, frame.byteLength);
  } catch (err) {
    throw new TesseraError('TESSERA_INVALID_DICOM', `the ${transferSyntaxName} frame cannot be decoded: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const { dimX, dimY, numComp, precision } = decoder.frame;
  if (numComp > 1 && precision > 8) {
    throw new TesseraError(
      'TESSERA_NOT_ACCEPTABLE',
      `${transferSyntaxName} with ${numComp} components of ${precision} bits is not supported: the lossless JPEG decoder handles colour at 8 bits only`,
    );
  }
  return { width: dimX, height: dimY, components: numComp, data, lowBit: 0, planar: false, alreadyRgb: false };
}

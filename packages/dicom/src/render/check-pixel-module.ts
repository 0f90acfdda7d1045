import { TesseraError } from '@tessera/model';
import type { PixelModule } from './pixel-module.ts';

const BITS_ALLOCATED = new Set([1, 8, 16, 32]);

/**
 * Checks the attributes decoding relies on, so that an unsupported image fails with a
 * message naming the attribute rather than deep in a codec.
 * @throws TesseraError TESSERA_INVALID_DICOM for values no valid instance has.
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE for valid values this folder does not decode.
 */
export function checkPixelModule(pm: PixelModule): void {
  const { rows, columns, samplesPerPixel, bitsAllocated, bitsStored, highBit } = pm;
  if (!(rows > 0 && columns > 0 && Number.isInteger(rows) && Number.isInteger(columns))) {
    throw invalid(`Rows ${rows} and Columns ${columns} must be positive integers`);
  }
  if (!(Number.isInteger(pm.numberOfFrames) && pm.numberOfFrames > 0)) {
    throw invalid(`Number of Frames ${pm.numberOfFrames} must be a positive integer`);
  }
  if (!(bitsStored >= 1 && bitsStored <= bitsAllocated && highBit >= bitsStored - 1 && highBit < bitsAllocated)) {
    throw invalid(`Bits Stored ${bitsStored} and High Bit ${highBit} do not fit in Bits Allocated ${bitsAllocated}`);
  }
  if (!BITS_ALLOCATED.has(bitsAllocated)) {
    throw notAcceptable(`Bits Allocated ${bitsAllocated} is not supported (only 1, 8, 16 and 32 are)`);
  }
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) {
    throw notAcceptable(`Samples per Pixel ${samplesPerPixel} is not supported (only 1 and 3 are)`);
  }
  if (bitsAllocated === 1 && samplesPerPixel !== 1) {
    throw notAcceptable(`Bits Allocated 1 with ${samplesPerPixel} samples per pixel is not supported`);
  }
}

function invalid(message: string): TesseraError {
  return new TesseraError('TESSERA_INVALID_DICOM', `invalid Image Pixel module: ${message}`);
}

function notAcceptable(message: string): TesseraError {
  return new TesseraError('TESSERA_NOT_ACCEPTABLE', message);
}

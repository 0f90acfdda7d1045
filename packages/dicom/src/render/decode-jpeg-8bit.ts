import { TesseraError } from '@tessera/model';
import { checkEndOfImage } from './check-end-of-image.ts';
import type { FrameSamples } from './frame-samples.ts';
import { withColorTransform } from './jpeg-color-transform.ts';
import { freeWasmObject, libjpegTurbo } from './wasm-codecs.ts';

/**
 * Decodes an 8-bit DCT JPEG frame (JPEG Baseline, 8-bit JPEG Extended) with libjpeg-turbo.
 * Colour frames come out as RGB: libjpeg-turbo converts YCbCr itself (see
 * {@link withColorTransform} for how it knows when).
 *
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE for 12-bit JPEG Extended, which the 8-bit build cannot decode.
 * @throws TesseraError TESSERA_INVALID_DICOM when the codestream is corrupt.
 */
export async function decodeJpeg8Bit(frame: Buffer, transferSyntaxName: string, photometric: string): Promise<FrameSamples> {
  const precision = jpegPrecision(frame);
  if (precision !== undefined && precision !== 8) {
    throw new TesseraError(
      'TESSERA_NOT_ACCEPTABLE',
      `${transferSyntaxName} with ${precision}-bit samples is not supported: the JPEG decoder (libjpeg-turbo) handles 8-bit samples only`,
    );
  }
  checkEndOfImage(frame, transferSyntaxName);
  const codestream = withColorTransform(frame, photometric);
  const codec = await libjpegTurbo();
  const decoder = codec.createDecoder();
  try {
    decoder.getEncodedBuffer(codestream.length).set(codestream);
    decoder.decode();
    const info = decoder.getFrameInfo();
    return {
      width: info.width,
      height: info.height,
      components: info.componentCount,
      data: decoder.getDecodedBuffer().slice(),
      lowBit: 0,
      planar: false,
      alreadyRgb: info.componentCount === 3,
    };
  } catch (err) {
    // A failure inside the module may have left its memory corrupt: the next call gets a fresh one.
    codec.discard();
    throw new TesseraError('TESSERA_INVALID_DICOM', `the ${transferSyntaxName} frame cannot be decoded: libjpeg-turbo rejected the codestream`, { cause: err });
  } finally {
    freeWasmObject(codec, decoder);
  }
}

/**
 * The sample precision in the frame header (SOF0..SOF15, except DHT, JPG and DAC), or
 * undefined when no frame header is found before the first scan.
 */
export function jpegPrecision(data: Uint8Array): number | undefined {
  let pos = 2;
  while (pos + 4 < data.length) {
    if (data[pos] !== 0xff) return undefined;
    const marker = data[pos + 1]!;
    if (marker === 0xff) {
      pos++;
      continue;
    }
    if (marker === 0xda) return undefined;
    const isFrameHeader = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrameHeader) return data[pos + 4];
    pos += 2 + ((data[pos + 2]! << 8) | data[pos + 3]!);
  }
  return undefined;
}

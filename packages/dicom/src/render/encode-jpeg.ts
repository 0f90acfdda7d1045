import { TesseraError } from '@tessera/model';
import type { Image8 } from './downscale.ts';
import { libjpegTurbo } from './wasm-codecs.ts';

/**
 * Encodes an 8-bit grey or RGB image as a baseline JPEG with libjpeg-turbo (4:4:4, so
 * colour edges in overlays and annotations stay sharp). jpeg-js was measured first: it
 * rebuilds its tables on every call (tens of ms) and then encodes a 512x512 frame an order
 * of magnitude slower than the wasm build that decoding loads anyway.
 *
 * @param quality 1 to 100.
 */
export async function encodeJpeg(image: Image8, quality: number): Promise<Buffer> {
  const { width, height, channels, data } = image;
  const codec = await libjpegTurbo();
  const encoder = codec.createEncoder();
  try {
    encoder.getDecodedBuffer({ width, height, bitsPerSample: 8, componentCount: channels, isSigned: false }).set(data);
    encoder.setQuality(quality);
    encoder.setProgressive(0);
    encoder.encode();
    return Buffer.from(encoder.getEncodedBuffer());
  } catch (err) {
    throw new TesseraError('TESSERA_INTERNAL', `libjpeg-turbo could not encode a ${width}x${height} image`, { cause: err });
  } finally {
    encoder.delete();
  }
}

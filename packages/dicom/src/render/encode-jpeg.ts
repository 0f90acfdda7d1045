import { encode as encodeJpegJs } from 'jpeg-js';
import { TesseraError } from '@tessera/model';
import type { Image8 } from './downscale.ts';
import { freeWasmObject, libjpegTurbo } from './wasm-codecs.ts';

/**
 * Below this many pixels the wasm encoder is not used: libjpeg-turbo's build sizes its
 * output buffer from the image, and for a tiny image (10x10, 17x17: an RT Dose grid) the
 * JPEG headers alone overrun it and trap. jpeg-js is slow to start (tens of ms of tables)
 * but right, and such images are rare.
 */
const SMALLEST_FOR_WASM = 32 * 32;

/**
 * Encodes an 8-bit grey or RGB image as a baseline JPEG with libjpeg-turbo (4:4:4, so
 * colour edges in overlays and annotations stay sharp). jpeg-js was measured first: it
 * rebuilds its tables on every call (tens of ms) and then encodes a 512x512 frame an order
 * of magnitude slower than the wasm build that decoding loads anyway; it encodes the tiny
 * images the wasm build cannot.
 *
 * @param quality 1 to 100.
 */
export async function encodeJpeg(image: Image8, quality: number): Promise<Buffer> {
  if (image.width * image.height < SMALLEST_FOR_WASM) return encodeSmall(image, quality);
  return encodeJpegWasm(image, quality);
}

/** With libjpeg-turbo's wasm build; exported for the tests of what a failure in it leaves behind. */
export async function encodeJpegWasm(image: Image8, quality: number): Promise<Buffer> {
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
    // A failure inside the module may have left its memory corrupt: the next call gets a fresh one.
    codec.discard();
    throw new TesseraError('TESSERA_INTERNAL', `libjpeg-turbo could not encode a ${width}x${height} image`, { cause: err });
  } finally {
    freeWasmObject(codec, encoder);
  }
}

function encodeSmall(image: Image8, quality: number): Buffer {
  const { width, height, channels, data } = image;
  const rgba = Buffer.alloc(width * height * 4);
  for (let i = 0, o = 0; i < width * height; i++, o += 4) {
    const s = i * channels;
    rgba[o] = data[s]!;
    rgba[o + 1] = data[channels === 3 ? s + 1 : s]!;
    rgba[o + 2] = data[channels === 3 ? s + 2 : s]!;
    rgba[o + 3] = 255;
  }
  return Buffer.from(encodeJpegJs({ data: rgba, width, height }, quality).data);
}

import { TesseraError } from '@tessera/model';
import { checkEndOfImage } from './check-end-of-image.ts';
import type { FrameSamples } from './frame-samples.ts';
import { charls, freeWasmObject } from './wasm-codecs.ts';

const INTERLEAVE_NONE = 0;

/**
 * Decodes a JPEG-LS (lossless or near-lossless) frame with CharLS. CharLS yields one plane
 * per component for uninterleaved streams and interleaved samples otherwise.
 *
 * @throws TesseraError TESSERA_INVALID_DICOM when the codestream is corrupt.
 */
export async function decodeJpegLs(frame: Buffer, transferSyntaxName: string): Promise<FrameSamples> {
  checkEndOfImage(frame, transferSyntaxName);
  const codec = await charls();
  const decoder = codec.createDecoder();
  try {
    decoder.getEncodedBuffer(frame.length).set(frame);
    decoder.decode();
    const info = decoder.getFrameInfo();
    const bytes = decoder.getDecodedBuffer().slice();
    const data = info.bitsPerSample > 8 ? new Uint16Array(bytes.buffer, 0, bytes.length >>> 1) : bytes;
    const planar = info.componentCount > 1 && decoder.getInterleaveMode() === INTERLEAVE_NONE;
    return { width: info.width, height: info.height, components: info.componentCount, data, lowBit: 0, planar, alreadyRgb: false };
  } catch (err) {
    // A failure inside the module may have left its memory corrupt: the next call gets a fresh one.
    codec.discard();
    const reason = codec.exceptionMessage(err) ?? (err instanceof Error ? err.message : 'CharLS rejected the codestream');
    throw new TesseraError('TESSERA_INVALID_DICOM', `the ${transferSyntaxName} frame cannot be decoded: ${reason}`, { cause: err });
  } finally {
    freeWasmObject(codec, decoder);
  }
}

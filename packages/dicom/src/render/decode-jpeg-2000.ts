import { TesseraError } from '@tessera/model';
import type { FrameSamples } from './frame-samples.ts';
import { freeWasmObject, openJpeg } from './wasm-codecs.ts';

/** Photometric interpretations whose colour transform is in the codestream, so OpenJPEG undoes it. */
const TRANSFORMED_IN_CODESTREAM = new Set(['YBR_RCT', 'YBR_ICT']);

/**
 * Decodes a JPEG 2000 frame (codestream or JP2) with OpenJPEG, which yields interleaved
 * samples and applies the inverse multi-component transform (YBR_RCT / YBR_ICT to RGB).
 *
 * @throws TesseraError TESSERA_INVALID_DICOM when the codestream is corrupt.
 */
export async function decodeJpeg2000(frame: Buffer, transferSyntaxName: string, photometric: string): Promise<FrameSamples> {
  const codec = await openJpeg();
  const decoder = codec.createDecoder();
  codec.takeMessages();
  try {
    decoder.getEncodedBuffer(frame.length).set(frame);
    decoder.decode();
    const info = decoder.getFrameInfo();
    // OpenJPEG reports failures only by printing them and leaving an empty image.
    if (info.width === 0 || info.height === 0) {
      const errors = codec.takeMessages().filter((m) => m.includes('[ERROR]'));
      throw new Error(errors.map((m) => m.replace('[ERROR] ', '')).join('; ') || 'OpenJPEG decoded an empty image');
    }
    const bytes = decoder.getDecodedBuffer().slice();
    const data = info.bitsPerSample > 8 ? new Uint16Array(bytes.buffer, 0, bytes.length >>> 1) : bytes;
    return {
      width: info.width,
      height: info.height,
      components: info.componentCount,
      data,
      lowBit: 0,
      planar: false,
      alreadyRgb: TRANSFORMED_IN_CODESTREAM.has(photometric),
    };
  } catch (err) {
    // A failure inside the module may have left its memory corrupt: the next call gets a fresh one.
    codec.discard();
    const reason = err instanceof Error ? err.message : 'OpenJPEG rejected the codestream';
    throw new TesseraError('TESSERA_INVALID_DICOM', `the ${transferSyntaxName} frame cannot be decoded: ${reason}`, { cause: err });
  } finally {
    codec.takeMessages();
    freeWasmObject(codec, decoder);
  }
}

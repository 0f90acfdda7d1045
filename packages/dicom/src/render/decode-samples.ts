import { TesseraError } from '@tessera/model';
import { checkPixelModule } from './check-pixel-module.ts';
import { decodeJpeg2000 } from './decode-jpeg-2000.ts';
import { decodeJpeg8Bit } from './decode-jpeg-8bit.ts';
import { decodeJpegLossless } from './decode-jpeg-lossless.ts';
import { decodeJpegLs } from './decode-jpeg-ls.ts';
import { decodeRle } from './decode-rle.ts';
import { extractFrame } from './extract-frame.ts';
import type { FrameSamples } from './frame-samples.ts';
import { nativeSamples } from './native-samples.ts';
import type { PixelModule } from './pixel-module.ts';
import { transferSyntaxInfo, type TransferSyntaxInfo } from './transfer-syntax.ts';

/**
 * The samples of one frame, whatever the transfer syntax: the common first step of
 * {@link decodeFrame} and {@link decodeFrameToNative}.
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE, TESSERA_NOT_FOUND or TESSERA_INVALID_DICOM.
 */
export async function decodeSamples(pm: PixelModule, index: number): Promise<FrameSamples> {
  const ts = decodableTransferSyntax(pm);
  const frame = extractFrame(pm, index);
  checkDecodedSize(pm);
  const samples = await decodeWithCodec(pm, ts, frame);
  if (samples.width !== pm.columns || samples.height !== pm.rows || samples.components !== pm.samplesPerPixel) {
    throw new TesseraError(
      'TESSERA_INVALID_DICOM',
      `the ${ts.name} frame ${index + 1} is ${samples.width}x${samples.height} with ${samples.components} components but the dataset says ${pm.columns}x${pm.rows} with ${pm.samplesPerPixel}`,
    );
  }
  const expected = pm.rows * pm.columns * pm.samplesPerPixel;
  if (samples.data.length < expected) {
    throw new TesseraError('TESSERA_INVALID_DICOM', `the ${ts.name} frame ${index + 1} decodes to ${samples.data.length} samples, expected ${expected}`);
  }
  return samples;
}

/**
 * The most samples one frame may decode to (16384 x 16384 grey, about 1 GiB as 32-bit
 * values): a header claiming more (65535 x 65535) is refused before a buffer is allocated.
 */
export const MAX_DECODED_SAMPLES = 16384 * 16384;

/** @throws TesseraError TESSERA_NOT_ACCEPTABLE when one frame would decode to more than {@link MAX_DECODED_SAMPLES}. */
function checkDecodedSize(pm: PixelModule): void {
  const samples = pm.rows * pm.columns * pm.samplesPerPixel;
  if (samples > MAX_DECODED_SAMPLES) {
    throw new TesseraError(
      'TESSERA_NOT_ACCEPTABLE',
      `a frame of ${pm.rows} rows x ${pm.columns} columns x ${pm.samplesPerPixel} samples is too large to decode (${samples} samples; the limit is ${MAX_DECODED_SAMPLES}, 16384 x 16384); its frames can be retrieved as stored (transfer-syntax=*)`,
    );
  }
}

/**
 * The transfer syntax of `pm` once checked decodable: known, with pixel data encapsulated
 * exactly when the transfer syntax says so, and with attributes within what is supported.
 */
export function decodableTransferSyntax(pm: PixelModule): TransferSyntaxInfo {
  const ts = transferSyntaxInfo(pm.transferSyntaxUid);
  checkPixelModule(pm);
  const encapsulated = ts.codec !== 'native' && ts.codec !== 'native-big-endian';
  if (encapsulated !== pm.pixelData.encapsulated) {
    throw new TesseraError(
      'TESSERA_INVALID_DICOM',
      `the pixel data is ${pm.pixelData.encapsulated ? 'encapsulated' : 'native'} but the transfer syntax is ${ts.name}`,
    );
  }
  if (pm.bitsAllocated === 1 && encapsulated) {
    throw new TesseraError('TESSERA_NOT_ACCEPTABLE', `Bits Allocated 1 is not supported with ${ts.name}`);
  }
  // A compressed frame's decoded size is only what the header claims: checked before a codec allocates it.
  // (A native frame is checked against its value first, which names a header that claims more than is there.)
  if (encapsulated) checkDecodedSize(pm);
  return ts;
}

function decodeWithCodec(pm: PixelModule, ts: TransferSyntaxInfo, frame: Buffer): FrameSamples | Promise<FrameSamples> {
  switch (ts.codec) {
    case 'native':
    case 'encapsulated-native':
      return nativeSamples(frame, pm, { littleEndian: true, subsampled422: true });
    case 'native-big-endian':
      return nativeSamples(frame, pm, { littleEndian: false, subsampled422: true });
    case 'rle': {
      const planarConfiguration = pm.samplesPerPixel > 1 && pm.planarConfiguration === 1 ? 1 : 0;
      const bytes = decodeRle(frame, { ...pm, planarConfiguration });
      return nativeSamples(bytes, pm, { littleEndian: true, subsampled422: false });
    }
    case 'jpeg-8bit':
      return decodeJpeg8Bit(frame, ts.name, pm.photometricInterpretation);
    case 'jpeg-lossless':
      return decodeJpegLossless(frame, ts.name);
    case 'jpeg-ls':
      return decodeJpegLs(frame, ts.name);
    case 'jpeg-2000':
      return decodeJpeg2000(frame, ts.name, pm.photometricInterpretation);
  }
}

import { TesseraError } from '@tessera/model';
import { decodableTransferSyntax, decodeSamples } from './decode-samples.ts';
import { decodeRle } from './decode-rle.ts';
import { extractFrame } from './extract-frame.ts';
import type { PixelModule } from './pixel-module.ts';

/**
 * One frame as uncompressed little-endian bytes, for WADO-RS frames requested as
 * application/octet-stream (Explicit VR Little Endian) from an instance stored otherwise.
 *
 * - Native little endian: the stored frame bytes (see {@link extractFrame}; a view, not a copy).
 * - Explicit VR Big Endian: the same with 16- and 32-bit samples byte-swapped.
 * - RLE Lossless: decoded in the dataset's Planar Configuration.
 * - JPEG family: Bits Allocated wide samples, pixel-interleaved (Planar Configuration 0);
 *   colour that the codec converted is RGB, see {@link nativePhotometricInterpretation}.
 *
 * @param index 0-based frame index.
 * @throws TesseraError as {@link decodeFrame} does, for the transfer syntax and bit depth only.
 */
export async function decodeFrameToNative(pm: PixelModule, index: number): Promise<Buffer> {
  const ts = decodableTransferSyntax(pm);
  switch (ts.codec) {
    case 'native':
    case 'encapsulated-native':
      return extractFrame(pm, index);
    case 'native-big-endian':
      return swapToLittleEndian(extractFrame(pm, index), pm.bitsAllocated);
    case 'rle':
      return decodeRle(extractFrame(pm, index), { ...pm, planarConfiguration: pm.planarConfiguration === 1 ? 1 : 0 });
    default:
      return interleavedBytes(pm, index);
  }
}

/**
 * The photometric interpretation of {@link decodeFrameToNative}'s bytes: RGB where the
 * codec converted colour (8-bit JPEG with three components, JPEG 2000 YBR_RCT / YBR_ICT),
 * else the stored one. The web layer puts it in the metadata of frames it serves decoded.
 * @throws TesseraError as {@link decodeFrameToNative} does for the transfer syntax.
 */
export function nativePhotometricInterpretation(pm: PixelModule): string {
  const codec = decodableTransferSyntax(pm).codec;
  if (pm.samplesPerPixel === 3 && codec === 'jpeg-8bit') return 'RGB';
  if (codec === 'jpeg-2000' && (pm.photometricInterpretation === 'YBR_RCT' || pm.photometricInterpretation === 'YBR_ICT')) return 'RGB';
  return pm.photometricInterpretation;
}

function swapToLittleEndian(frame: Buffer, bitsAllocated: number): Buffer {
  if (bitsAllocated !== 16 && bitsAllocated !== 32) return frame;
  const copy = Buffer.from(frame);
  return bitsAllocated === 16 ? copy.swap16() : copy.swap32();
}

async function interleavedBytes(pm: PixelModule, index: number): Promise<Buffer> {
  const samples = await decodeSamples(pm, index);
  const n = pm.rows * pm.columns;
  const components = pm.samplesPerPixel;
  const count = n * components;
  const size = pm.bitsAllocated >>> 3;
  if (samples.data.BYTES_PER_ELEMENT > size) {
    throw new TesseraError(
      'TESSERA_INVALID_DICOM',
      `frame ${index + 1} decodes to ${samples.data.BYTES_PER_ELEMENT * 8}-bit samples, wider than Bits Allocated ${pm.bitsAllocated}`,
    );
  }
  const out = Buffer.alloc(count * size);
  const src = samples.data;
  for (let i = 0; i < count; i++) {
    // Planar codec output (uninterleaved JPEG-LS) is read plane by plane into pixel order.
    const v = samples.planar ? src[(i % components) * n + Math.floor(i / components)]! : src[i]!;
    if (size === 1) out[i] = v;
    else if (size === 2) out.writeUInt16LE(v, i * 2);
    else out.writeUInt32LE(v, i * 4);
  }
  return out;
}

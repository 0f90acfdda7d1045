import { TesseraError } from '@tessera/model';

/** How the pixel data of a transfer syntax is stored, i.e. which decoder undoes it. */
export type PixelCodec =
  | 'native'
  | 'native-big-endian'
  | 'encapsulated-native'
  | 'jpeg-8bit'
  | 'jpeg-lossless'
  | 'jpeg-ls'
  | 'jpeg-2000'
  | 'rle';

/** A transfer syntax this folder can decode. */
export interface TransferSyntaxInfo {
  uid: string;
  name: string;
  codec: PixelCodec;
}

const SUPPORTED: readonly TransferSyntaxInfo[] = [
  { uid: '1.2.840.10008.1.2', name: 'Implicit VR Little Endian', codec: 'native' },
  { uid: '1.2.840.10008.1.2.1', name: 'Explicit VR Little Endian', codec: 'native' },
  // The parser inflates the dataset, so the pixel data arrives as plain little endian.
  { uid: '1.2.840.10008.1.2.1.99', name: 'Deflated Explicit VR Little Endian', codec: 'native' },
  { uid: '1.2.840.10008.1.2.2', name: 'Explicit VR Big Endian', codec: 'native-big-endian' },
  { uid: '1.2.840.10008.1.2.1.98', name: 'Encapsulated Uncompressed Explicit VR Little Endian', codec: 'encapsulated-native' },
  { uid: '1.2.840.10008.1.2.4.50', name: 'JPEG Baseline (Process 1)', codec: 'jpeg-8bit' },
  { uid: '1.2.840.10008.1.2.4.51', name: 'JPEG Extended (Process 2 & 4)', codec: 'jpeg-8bit' },
  { uid: '1.2.840.10008.1.2.4.57', name: 'JPEG Lossless (Process 14)', codec: 'jpeg-lossless' },
  { uid: '1.2.840.10008.1.2.4.70', name: 'JPEG Lossless SV1 (Process 14, Selection Value 1)', codec: 'jpeg-lossless' },
  { uid: '1.2.840.10008.1.2.4.80', name: 'JPEG-LS Lossless', codec: 'jpeg-ls' },
  { uid: '1.2.840.10008.1.2.4.81', name: 'JPEG-LS Near-Lossless', codec: 'jpeg-ls' },
  { uid: '1.2.840.10008.1.2.4.90', name: 'JPEG 2000 Lossless', codec: 'jpeg-2000' },
  { uid: '1.2.840.10008.1.2.4.91', name: 'JPEG 2000', codec: 'jpeg-2000' },
  { uid: '1.2.840.10008.1.2.5', name: 'RLE Lossless', codec: 'rle' },
];

const BY_UID = new Map(SUPPORTED.map((ts) => [ts.uid, ts]));

/** The transfer syntaxes whose frames {@link decodeFrame} can decode. */
export const DECODABLE_TRANSFER_SYNTAXES: readonly string[] = SUPPORTED.map((ts) => ts.uid);

/**
 * The decoder of a transfer syntax.
 * @throws TesseraError TESSERA_NOT_ACCEPTABLE when the transfer syntax cannot be decoded here.
 */
export function transferSyntaxInfo(uid: string): TransferSyntaxInfo {
  const info = BY_UID.get(uid);
  if (info === undefined) {
    throw new TesseraError(
      'TESSERA_NOT_ACCEPTABLE',
      `transfer syntax ${uid} is not supported for decoding: the frame can only be served as stored`,
    );
  }
  return info;
}

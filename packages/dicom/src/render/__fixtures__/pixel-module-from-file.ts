import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { inflateRawSync } from 'node:zlib';
import type { PixelModule } from '../pixel-module.ts';

// dicom-parser is a UMD bundle: Node's ESM loader sees none of its named exports.
const dicomParser = createRequire(import.meta.url)('dicom-parser') as typeof import('dicom-parser');

/**
 * Test-only stand-in for the DICOM parser: reads a Part 10 file with dicom-parser and
 * returns its Image Pixel module. Deflated datasets are inflated after the meta header.
 */
export function pixelModuleFromFile(path: string): PixelModule {
  return pixelModuleFromBytes(readFileSync(path));
}

/** As {@link pixelModuleFromFile}, for Part 10 bytes. */
export function pixelModuleFromBytes(bytes: Uint8Array): PixelModule {
  const ds = dicomParser.parseDicom(bytes, {
    inflater: (byteArray: Uint8Array, position: number) => {
      const inflated = inflateRawSync(byteArray.subarray(position));
      return Buffer.concat([byteArray.subarray(0, position), inflated]);
    },
  } as never);
  const transferSyntaxUid = required(ds.string('x00020010'), 'Transfer Syntax UID');
  const pixel = ds.elements['x7fe00010'];
  if (pixel === undefined) throw new Error('the file has no Pixel Data');
  const encapsulated = pixel.encapsulatedPixelData === true;
  const value = Buffer.from(ds.byteArray.buffer, ds.byteArray.byteOffset + pixel.dataOffset, pixel.length);
  const planar = ds.uint16('x00280006');
  return {
    transferSyntaxUid,
    rows: required(ds.uint16('x00280010'), 'Rows'),
    columns: required(ds.uint16('x00280011'), 'Columns'),
    samplesPerPixel: ds.uint16('x00280002') ?? 1,
    bitsAllocated: required(ds.uint16('x00280100'), 'Bits Allocated'),
    bitsStored: required(ds.uint16('x00280101'), 'Bits Stored'),
    highBit: required(ds.uint16('x00280102'), 'High Bit'),
    pixelRepresentation: ds.uint16('x00280103') === 1 ? 1 : 0,
    photometricInterpretation: required(ds.string('x00280004'), 'Photometric Interpretation'),
    planarConfiguration: planar === undefined ? undefined : planar === 1 ? 1 : 0,
    numberOfFrames: ds.intString('x00280008') ?? 1,
    rescaleSlope: ds.floatString('x00281053'),
    rescaleIntercept: ds.floatString('x00281052'),
    windowCenter: ds.floatString('x00281050', 0),
    windowWidth: ds.floatString('x00281051', 0),
    pixelData: { encapsulated, value },
  };
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`the file has no ${name}`);
  return value;
}

import type { PixelModule } from '../render/pixel-module.ts';
import { PIXEL_DATA, type DicomDataset } from './dataset-reader.ts';
import { elementNumbers, getNumber, getString } from './dataset-values.ts';

const T = {
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  PlanarConfiguration: 0x00280006,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  HighBit: 0x00280102,
  PixelRepresentation: 0x00280103,
  WindowCenter: 0x00281050,
  WindowWidth: 0x00281051,
  RescaleIntercept: 0x00281052,
  RescaleSlope: 0x00281053,
  RedDescriptor: 0x00281101,
  RedData: 0x00281201,
  GreenData: 0x00281202,
  BlueData: 0x00281203,
};

/** The Image Pixel module of a dataset for frame extraction and rendering, or undefined when it has no pixel data. */
export function pixelModuleOf(ds: DicomDataset, transferSyntaxUid: string): PixelModule | undefined {
  const px = ds.elements.get(PIXEL_DATA);
  const rows = getNumber(ds, T.Rows);
  const columns = getNumber(ds, T.Columns);
  if (!px || !rows || !columns) return undefined;
  const bitsAllocated = getNumber(ds, T.BitsAllocated) ?? 16;
  const pm: PixelModule = {
    transferSyntaxUid,
    rows,
    columns,
    samplesPerPixel: getNumber(ds, T.SamplesPerPixel) ?? 1,
    bitsAllocated,
    bitsStored: getNumber(ds, T.BitsStored) ?? bitsAllocated,
    highBit: getNumber(ds, T.HighBit) ?? (getNumber(ds, T.BitsStored) ?? bitsAllocated) - 1,
    pixelRepresentation: getNumber(ds, T.PixelRepresentation) === 1 ? 1 : 0,
    photometricInterpretation: getString(ds, T.PhotometricInterpretation) ?? 'MONOCHROME2',
    planarConfiguration: getNumber(ds, T.PlanarConfiguration) === 1 ? 1 : 0,
    numberOfFrames: Math.max(1, Math.trunc(getNumber(ds, T.NumberOfFrames) ?? 1)),
    rescaleSlope: getNumber(ds, T.RescaleSlope),
    rescaleIntercept: getNumber(ds, T.RescaleIntercept),
    windowCenter: getNumber(ds, T.WindowCenter),
    windowWidth: getNumber(ds, T.WindowWidth),
    pixelData: { encapsulated: px.encapsulated === true, value: ds.buffer.subarray(px.offset, px.offset + px.length) },
  };
  const desc = ds.elements.get(T.RedDescriptor);
  const red = ds.elements.get(T.RedData);
  const green = ds.elements.get(T.GreenData);
  const blue = ds.elements.get(T.BlueData);
  if (pm.photometricInterpretation === 'PALETTE COLOR' && desc && red && green && blue) {
    // The descriptor's first mapped value is US or SS depending on the pixel representation; read as US.
    const d = elementNumbers(ds, { ...desc, vr: 'US' });
    const lut = (el: typeof red) => {
      const n = elementNumbers(ds, { ...el, vr: 'US' });
      return Uint16Array.from(n);
    };
    pm.palette = { red: lut(red), green: lut(green), blue: lut(blue), firstMapped: d[1] ?? 0, bits: d[2] ?? 16 };
  }
  return pm;
}

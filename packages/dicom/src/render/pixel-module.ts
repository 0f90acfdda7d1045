/**
 * The attributes of an instance's Image Pixel module that frame extraction, decoding and
 * rendering need, with the raw value of (7FE0,0010). The DICOM parser fills it; this
 * folder never parses a dataset itself.
 */
export interface PixelModule {
  /** (0002,0010) of the stored instance. */
  transferSyntaxUid: string;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  pixelRepresentation: 0 | 1;
  /** MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422, YBR_RCT, YBR_ICT, PALETTE COLOR. */
  photometricInterpretation: string;
  planarConfiguration?: 0 | 1;
  /** 1 when (0028,0008) is absent. */
  numberOfFrames: number;
  rescaleSlope?: number;
  rescaleIntercept?: number;
  /** First value of (0028,1050). */
  windowCenter?: number;
  /** First value of (0028,1051). */
  windowWidth?: number;
  /**
   * Palette LUT data when PALETTE COLOR: entries of `bits` bits each, the first one mapping
   * the stored value `firstMapped`. Without it PALETTE COLOR cannot be rendered.
   */
  palette?: { red: Uint16Array; green: Uint16Array; blue: Uint16Array; firstMapped: number; bits: number };
  pixelData: {
    encapsulated: boolean;
    /**
     * The value bytes of (7FE0,0010). Native: the pixel bytes in the dataset's byte order
     * (big endian for 1.2.840.10008.1.2.2). Encapsulated: the item sequence (Basic Offset
     * Table item first, then fragment items; a trailing sequence delimitation item may or
     * may not be present).
     */
    value: Buffer;
  };
}

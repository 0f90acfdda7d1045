/**
 * A frame's samples as a codec or the native reader yields them, before the photometric
 * interpretation and the pixel representation are applied.
 */
export interface FrameSamples {
  width: number;
  height: number;
  /** Samples per pixel. */
  components: number;
  /** Sample values as unsigned bit patterns: the sign comes from Pixel Representation later. */
  data: Uint8Array | Uint16Array | Uint32Array;
  /**
   * Where the stored bits start in a sample: High Bit + 1 - Bits Stored for native data
   * (almost always 0), 0 for codec output, whose samples hold just the stored bits.
   */
  lowBit: number;
  /** One plane per component (RRR…GGG…BBB…) rather than interleaved (RGBRGB…). */
  planar: boolean;
  /**
   * The samples are RGB whatever the stored photometric interpretation says: libjpeg-turbo
   * and OpenJPEG undo the colour transforms their codestreams declare.
   */
  alreadyRgb: boolean;
}

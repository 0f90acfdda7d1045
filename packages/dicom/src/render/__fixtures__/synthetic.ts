import type { PixelModule } from '../pixel-module.ts';

/** A native little-endian monochrome PixelModule over `pixels`, with attributes overridable. */
export function monochromeModule(
  pixels: Int16Array | Uint16Array | Uint8Array | Int32Array | Uint32Array,
  overrides: Partial<PixelModule> & { rows: number; columns: number },
): PixelModule {
  const bits = pixels.BYTES_PER_ELEMENT * 8;
  const signed = pixels instanceof Int16Array || pixels instanceof Int32Array;
  return {
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    samplesPerPixel: 1,
    bitsAllocated: bits,
    bitsStored: bits,
    highBit: bits - 1,
    pixelRepresentation: signed ? 1 : 0,
    photometricInterpretation: 'MONOCHROME2',
    numberOfFrames: 1,
    pixelData: { encapsulated: false, value: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength) },
    ...overrides,
  };
}

/** The (7FE0,0010) value of encapsulated pixel data: a Basic Offset Table item, fragment items and a sequence delimiter. */
export function encapsulate(fragments: Buffer[], options: { offsets?: number[]; delimiter?: boolean } = {}): Buffer {
  const table = Buffer.alloc(4 * (options.offsets?.length ?? 0));
  options.offsets?.forEach((o, i) => table.writeUInt32LE(o, i * 4));
  const items = [table, ...fragments].map((body) => {
    const header = Buffer.alloc(8);
    header.writeUInt32LE(0xe000fffe, 0);
    header.writeUInt32LE(body.length, 4);
    return Buffer.concat([header, body]);
  });
  const delimiter = Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]);
  return Buffer.concat(options.delimiter === false ? items : [...items, delimiter]);
}

/**
 * A CT-like 16-bit signed frame: air outside a disc of soft tissue with a bright core and
 * a faint stripe pattern, plus deterministic noise, so it compresses like a real slice.
 */
export function syntheticCt(size: number): PixelModule {
  const pixels = new Int16Array(size * size);
  let seed = 1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      const r = Math.hypot(x - size / 2, y - size / 2);
      const tissue = r < size * 0.1 ? 1040 : 40 + (Math.floor(x / 16) % 2) * 20;
      pixels[y * size + x] = (r < size * 0.45 ? tissue : -1024) + 1024 + (seed % 20);
    }
  }
  return monochromeModule(pixels, {
    rows: size,
    columns: size,
    rescaleSlope: 1,
    rescaleIntercept: -1024,
    windowCenter: 40,
    windowWidth: 400,
  });
}

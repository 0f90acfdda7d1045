/** A VOI window over modality values (after rescale). */
export interface VoiWindow {
  center: number;
  /** At least 1. */
  width: number;
}

/** How stored values become 8-bit grey. */
export interface GreyOptions {
  /** Modality LUT: modality value = stored * slope + intercept. */
  slope: number;
  intercept: number;
  /** When undefined, the frame's modality value range is stretched over 0..255. */
  window: VoiWindow | undefined;
  /** MONOCHROME1: the lowest value is white. */
  invert: boolean;
}

/** Largest stored value range mapped through a lookup table rather than value by value. */
const MAX_LUT_ENTRIES = 1 << 20;

/**
 * Applies the rescale, the linear VOI window of PS3.3 C.11.2.1.2.1 and, for MONOCHROME1,
 * the inversion, turning stored values into 8-bit grey. The stored value range is mapped
 * once into a lookup table so each pixel costs one subtraction and one load.
 */
export function windowToGrey(values: Int32Array | Uint32Array, options: GreyOptions): Uint8Array {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const out = new Uint8Array(values.length);
  if (values.length === 0) return out;
  const { slope, intercept, invert } = options;
  const window = options.window ?? rangeWindow(min * slope + intercept, max * slope + intercept);
  const grey = windowFunction(window, invert);
  if (max - min < MAX_LUT_ENTRIES) {
    const lut = new Uint8Array(max - min + 1);
    for (let s = min; s <= max; s++) lut[s - min] = grey(s * slope + intercept);
    for (let i = 0; i < values.length; i++) out[i] = lut[values[i]! - min]!;
  } else {
    for (let i = 0; i < values.length; i++) out[i] = grey(values[i]! * slope + intercept);
  }
  return out;
}

/** The window whose edges are exactly `a` and `b` (in either order). */
function rangeWindow(a: number, b: number): VoiWindow {
  const low = Math.min(a, b);
  const high = Math.max(a, b);
  return { center: (low + high) / 2 + 0.5, width: high - low + 1 };
}

function windowFunction({ center, width }: VoiWindow, invert: boolean): (x: number) => number {
  const c = center - 0.5;
  const w = width - 1;
  const low = c - w / 2;
  const high = c + w / 2;
  const black = invert ? 255 : 0;
  const white = invert ? 0 : 255;
  // Width 1 is a threshold: PS3.3 allows it, and the linear part would divide by zero.
  if (w <= 0) return (x) => (x <= c ? black : white);
  return (x) => {
    if (x <= low) return black;
    if (x > high) return white;
    const g = Math.round(((x - c) / w + 0.5) * 255);
    return invert ? 255 - g : g;
  };
}

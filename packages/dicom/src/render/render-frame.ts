import { TesseraError } from '@tessera/model';
import { decodeFrame } from './decode-frame.ts';
import { downscale, type Image8 } from './downscale.ts';
import { encodeJpeg } from './encode-jpeg.ts';
import { encodePng } from './encode-png.ts';
import type { PixelModule } from './pixel-module.ts';
import { windowToGrey, type VoiWindow } from './window-to-grey.ts';

/** How to render a frame. */
export interface RenderOptions {
  format: 'png' | 'jpeg';
  /** JPEG quality, 1 to 100; default 90. Ignored for PNG. */
  quality?: number;
  /** Longest side of the output in pixels (thumbnails); the aspect ratio is kept and nothing is enlarged. */
  maxSize?: number;
  /** VOI window over modality values, for monochrome frames; default: the dataset's first window, else the frame's value range. */
  window?: VoiWindow;
}

const DEFAULT_QUALITY = 90;

/**
 * Renders one frame to an 8-bit PNG or JPEG, as the WADO-RS rendered and thumbnail
 * resources serve it. Monochrome frames are rescaled (slope / intercept), windowed and,
 * for MONOCHROME1, inverted, giving grey; colour frames give RGB.
 *
 * @param index 0-based frame index.
 * @throws TesseraError TESSERA_INVALID_REQUEST for invalid options.
 * @throws TesseraError as {@link decodeFrame} does.
 */
export async function renderFrame(pm: PixelModule, index: number, options: RenderOptions): Promise<Buffer> {
  const quality = options.quality ?? DEFAULT_QUALITY;
  checkOptions(options, quality);
  const frame = await decodeFrame(pm, index);
  const { width, height } = frame;
  let image: Image8;
  if (frame.samples === 3) {
    image = { width, height, channels: 3, data: frame.data };
  } else {
    const data = windowToGrey(frame.data, {
      slope: pm.rescaleSlope ?? 1,
      intercept: pm.rescaleIntercept ?? 0,
      window: options.window ?? datasetWindow(pm),
      invert: pm.photometricInterpretation === 'MONOCHROME1',
    });
    image = { width, height, channels: 1, data };
  }
  if (options.maxSize !== undefined) image = downscale(image, options.maxSize);
  return options.format === 'png' ? encodePng(image) : encodeJpeg(image, quality);
}

/** The dataset's window, when it has a usable one (some writers put 0 in Window Width). */
function datasetWindow(pm: PixelModule): VoiWindow | undefined {
  const { windowCenter: center, windowWidth: width } = pm;
  if (center === undefined || width === undefined || !Number.isFinite(center) || !(width >= 1)) return undefined;
  return { center, width };
}

function checkOptions(options: RenderOptions, quality: number): void {
  if (options.format !== 'png' && options.format !== 'jpeg') {
    throw new TesseraError('TESSERA_INVALID_REQUEST', `cannot render to format "${String(options.format)}": only png and jpeg are supported`);
  }
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new TesseraError('TESSERA_INVALID_REQUEST', `JPEG quality must be an integer from 1 to 100, not ${quality}`);
  }
  if (options.maxSize !== undefined && !(Number.isInteger(options.maxSize) && options.maxSize >= 1)) {
    throw new TesseraError('TESSERA_INVALID_REQUEST', `the maximum size must be a positive integer, not ${options.maxSize}`);
  }
  const window = options.window;
  if (window !== undefined && !(Number.isFinite(window.center) && Number.isFinite(window.width) && window.width >= 1)) {
    throw new TesseraError(
      'TESSERA_INVALID_REQUEST',
      `the window must have a finite center and a width of at least 1, not center ${window.center} width ${window.width}`,
    );
  }
}

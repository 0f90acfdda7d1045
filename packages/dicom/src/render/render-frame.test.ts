import { decode as decodeJpeg } from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { pydicomFile, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { rejection } from './__fixtures__/caught.ts';
import { pixelModuleFromFile } from './__fixtures__/pixel-module-from-file.ts';
import { readPng } from './__fixtures__/read-png.ts';
import { monochromeModule, syntheticCt } from './__fixtures__/synthetic.ts';
import type { PixelModule } from './pixel-module.ts';
import { renderFrame, type RenderOptions } from './render-frame.ts';

const ct = syntheticCt(512);
const at = (png: ReturnType<typeof readPng>, x: number, y: number): number[] =>
  Array.from(png.pixels.subarray((y * png.width + x) * png.channels, (y * png.width + x + 1) * png.channels));

function distinctValues(pixels: Uint8Array): number {
  return new Set(pixels).size;
}

describe('renderFrame to PNG', () => {
  it('renders a 16-bit CT frame to grey with the dataset’s window (40/400)', async () => {
    const png = readPng(await renderFrame(ct, 0, { format: 'png' }));
    expect([png.width, png.height, png.channels]).toEqual([512, 512, 1]);
    expect(at(png, 0, 0)).toEqual([0]);
    expect(at(png, 256, 256)).toEqual([255]);
    const tissue = at(png, 256 + 150, 256)[0]!;
    expect(tissue).toBeGreaterThan(90);
    expect(tissue).toBeLessThan(180);
  });

  it('applies a requested window instead', async () => {
    const png = readPng(await renderFrame(ct, 0, { format: 'png', window: { center: -1000, width: 100 } }));
    expect(at(png, 0, 0)[0]).toBeGreaterThan(50);
    expect(at(png, 256 + 150, 256)).toEqual([255]);
  });

  it('stretches the frame’s range when neither the request nor the dataset has a window', async () => {
    const pm = monochromeModule(Uint16Array.from([100, 200, 300, 400]), { rows: 2, columns: 2 });
    expect(Array.from(readPng(await renderFrame(pm, 0, { format: 'png' })).pixels)).toEqual([0, 85, 170, 255]);
  });

  it('ignores an unusable dataset window (width 0)', async () => {
    const pm = monochromeModule(Uint16Array.from([100, 400]), { rows: 1, columns: 2, windowCenter: 0, windowWidth: 0 });
    expect(Array.from(readPng(await renderFrame(pm, 0, { format: 'png' })).pixels)).toEqual([0, 255]);
  });

  it('inverts MONOCHROME1', async () => {
    const pm = monochromeModule(Uint16Array.from([100, 200, 300, 400]), { rows: 2, columns: 2, photometricInterpretation: 'MONOCHROME1' });
    expect(Array.from(readPng(await renderFrame(pm, 0, { format: 'png' })).pixels)).toEqual([255, 170, 85, 0]);
  });

  it('renders colour frames as RGB', async () => {
    const pm: PixelModule = {
      ...monochromeModule(Uint8Array.from([255, 0, 0, 0, 0, 255]), { rows: 1, columns: 2 }),
      samplesPerPixel: 3,
      photometricInterpretation: 'RGB',
    };
    const png = readPng(await renderFrame(pm, 0, { format: 'png' }));
    expect(png.channels).toBe(3);
    expect(Array.from(png.pixels)).toEqual([255, 0, 0, 0, 0, 255]);
  });

  it('makes thumbnails no larger than maxSize, keeping the aspect ratio', async () => {
    const square = readPng(await renderFrame(ct, 0, { format: 'png', maxSize: 64 }));
    expect([square.width, square.height]).toEqual([64, 64]);
    expect(distinctValues(square.pixels)).toBeGreaterThan(10);
    const wide = monochromeModule(Uint16Array.from({ length: 300 * 100 }, (_, i) => i % 300), { rows: 100, columns: 300 });
    const thumb = readPng(await renderFrame(wide, 0, { format: 'png', maxSize: 30 }));
    expect([thumb.width, thumb.height]).toEqual([30, 10]);
    const small = readPng(await renderFrame(wide, 0, { format: 'png', maxSize: 1000 }));
    expect([small.width, small.height]).toEqual([300, 100]);
  });

  it('renders a 512x512 16-bit frame to PNG in a few milliseconds', async () => {
    await renderFrame(ct, 0, { format: 'png' });
    const times: number[] = [];
    for (let i = 0; i < 9; i++) {
      const start = performance.now();
      await renderFrame(ct, 0, { format: 'png' });
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    // Typically 3-5 ms; the bound only catches a regression to per-pixel allocation or slow encoding on a busy machine.
    expect(times[4]).toBeLessThan(100);
  });
});

describe('renderFrame to JPEG', () => {
  it('gives a baseline JPEG that decodes to the frame', async () => {
    const jpeg = await renderFrame(ct, 0, { format: 'jpeg' });
    expect(jpeg.subarray(0, 2).toString('hex')).toBe('ffd8');
    const decoded = decodeJpeg(jpeg, { useTArray: true });
    expect([decoded.width, decoded.height]).toEqual([512, 512]);
    const png = readPng(await renderFrame(ct, 0, { format: 'png' }));
    let error = 0;
    for (let p = 0; p < 512 * 512; p++) error += Math.abs(decoded.data[p * 4]! - png.pixels[p]!);
    expect(error / (512 * 512)).toBeLessThan(4);
  });

  it('honours quality and maxSize', async () => {
    const high = await renderFrame(ct, 0, { format: 'jpeg', quality: 95 });
    const low = await renderFrame(ct, 0, { format: 'jpeg', quality: 10 });
    expect(low.length).toBeLessThan(high.length);
    const thumb = decodeJpeg(await renderFrame(ct, 0, { format: 'jpeg', maxSize: 100 }), { useTArray: true });
    expect([thumb.width, thumb.height]).toEqual([100, 100]);
  });
});

describe('renderFrame refuses invalid options', () => {
  it.each([
    [{ format: 'gif' }, 'cannot render to format "gif"'],
    [{ format: 'jpeg', quality: 0 }, 'JPEG quality must be an integer from 1 to 100, not 0'],
    [{ format: 'jpeg', quality: 100.5 }, 'not 100.5'],
    [{ format: 'png', maxSize: 0 }, 'the maximum size must be a positive integer, not 0'],
    [{ format: 'png', window: { center: 40, width: 0 } }, 'a width of at least 1'],
    [{ format: 'png', window: { center: Number.NaN, width: 10 } }, 'a finite center'],
  ])('%o', async (options, message) => {
    const err = await rejection(renderFrame(ct, 0, options as RenderOptions));
    expect(err.code).toBe('TESSERA_INVALID_REQUEST');
    expect(err.message).toContain(message);
  });
});

describe.skipIf(skipDicomTools)('renderFrame on pydicom files', () => {
  it('CT_small to PNG and JPEG', async () => {
    const pm = pixelModuleFromFile(pydicomFile('CT_small.dcm'));
    const png = readPng(await renderFrame(pm, 0, { format: 'png' }));
    expect([png.width, png.height, png.channels]).toEqual([128, 128, 1]);
    expect(distinctValues(png.pixels)).toBeGreaterThan(100);
    const jpeg = decodeJpeg(await renderFrame(pm, 0, { format: 'jpeg' }), { useTArray: true });
    expect([jpeg.width, jpeg.height]).toEqual([128, 128]);
  });

  it('MR_small uses its own window (600/1600)', async () => {
    const pm = pixelModuleFromFile(pydicomFile('MR_small.dcm'));
    expect([pm.windowCenter, pm.windowWidth]).toEqual([600, 1600]);
    const windowed = await renderFrame(pm, 0, { format: 'png' });
    const stretched = await renderFrame({ ...pm, windowCenter: undefined, windowWidth: undefined }, 0, { format: 'png' });
    expect(windowed.equals(stretched)).toBe(false);
  });

  it('an RGB RLE frame renders in colour', async () => {
    const png = readPng(await renderFrame(pixelModuleFromFile(pydicomFile('SC_rgb_rle.dcm')), 0, { format: 'png' }));
    expect(png.channels).toBe(3);
    expect(at(png, 50, 5)).toEqual([255, 0, 0]);
    expect(at(png, 50, 45)).toEqual([0, 0, 255]);
  });

  it('a JPEG 2000 thumbnail of a 256x1024 frame is 25x100', async () => {
    const png = readPng(await renderFrame(pixelModuleFromFile(pydicomFile('JPEG2000.dcm')), 0, { format: 'png', maxSize: 100 }));
    expect([png.width, png.height]).toEqual([25, 100]);
  });

  it('the last frame of a multi-frame dose grid, and a 1-bit frame', async () => {
    const dose = readPng(await renderFrame(pixelModuleFromFile(pydicomFile('rtdose.dcm')), 14, { format: 'png' }));
    expect([dose.width, dose.height]).toEqual([10, 10]);
    const liver = readPng(await renderFrame(pixelModuleFromFile(pydicomFile('liver_1frame.dcm')), 0, { format: 'png' }));
    expect(new Set(liver.pixels)).toEqual(new Set([0, 255]));
  });

  it('a frame that cannot be decoded rejects with NOT_ACCEPTABLE', async () => {
    const err = await rejection(renderFrame(pixelModuleFromFile(pydicomFile('JPGExtended.dcm')), 0, { format: 'png' }));
    expect(err.code).toBe('TESSERA_NOT_ACCEPTABLE');
  });
});

import { decode } from 'jpeg-js';
import { describe, expect, it } from 'vitest';
import { encodeJpeg, encodeJpegWasm } from './encode-jpeg.ts';

const grey = (width: number, height: number, value = 100) => ({ width, height, channels: 1 as const, data: new Uint8Array(width * height).fill(value) });

describe('encodeJpeg', () => {
  it('encodes tiny images (an RT Dose grid of 10x10, 17x17 in colour) that the wasm encoder cannot', async () => {
    const small = decode(await encodeJpeg(grey(10, 10, 200), 90));
    expect([small.width, small.height]).toEqual([10, 10]);
    expect(Math.abs(small.data[0]! - 200)).toBeLessThanOrEqual(2);
    const rgb = { width: 17, height: 17, channels: 3 as const, data: new Uint8Array(17 * 17 * 3).map((_, i) => (i % 3 === 0 ? 250 : 10)) };
    const colour = decode(await encodeJpeg(rgb, 90));
    expect([colour.width, colour.height]).toEqual([17, 17]);
    expect(colour.data[0]!).toBeGreaterThan(200);
    expect(colour.data[1]!).toBeLessThan(60);
  });

  it('keeps a failure in the wasm encoder to its own call: the next image encodes', async () => {
    // The wasm build traps on an image this small (its output buffer overruns).
    await expect(encodeJpegWasm(grey(10, 10), 90)).rejects.toMatchObject({ code: 'TESSERA_INTERNAL', message: 'libjpeg-turbo could not encode a 10x10 image' });
    const after = decode(await encodeJpeg(grey(64, 64, 50), 90));
    expect([after.width, after.height]).toEqual([64, 64]);
    const again = decode(await encodeJpeg(grey(128, 64, 50), 90));
    expect([again.width, again.height]).toEqual([128, 64]);
  });
});

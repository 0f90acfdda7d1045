import { describe, expect, it } from 'vitest';
import { downscale } from './downscale.ts';

describe('downscale', () => {
  it('averages whole blocks', () => {
    const data = Uint8Array.from([0, 2, 10, 20, 4, 6, 30, 40, 100, 100, 0, 0, 100, 100, 0, 255]);
    const out = downscale({ width: 4, height: 4, channels: 1, data }, 2);
    expect([out.width, out.height]).toEqual([2, 2]);
    expect(Array.from(out.data)).toEqual([3, 25, 100, 64]);
  });

  it('weights partly covered pixels by coverage', () => {
    const data = Uint8Array.from([0, 3, 6, 0, 3, 6, 0, 3, 6]);
    const out = downscale({ width: 3, height: 3, channels: 1, data }, 2);
    expect(Array.from(out.data)).toEqual([1, 5, 1, 5]);
  });

  it('keeps the aspect ratio and averages channels separately', () => {
    const data = new Uint8Array(100 * 50 * 3);
    for (let i = 0; i < data.length; i += 3) data.set([255, 0, 128], i);
    const out = downscale({ width: 100, height: 50, channels: 3, data }, 10);
    expect([out.width, out.height, out.channels]).toEqual([10, 5, 3]);
    expect(Array.from(out.data.subarray(0, 6))).toEqual([255, 0, 128, 255, 0, 128]);
  });

  it('keeps a one-pixel line visible at 1/8 scale', () => {
    const data = new Uint8Array(512 * 512);
    data.fill(255, 100 * 512, 101 * 512);
    const out = downscale({ width: 512, height: 512, channels: 1, data }, 64);
    expect(Math.max(...out.data)).toBe(32);
  });

  it('never enlarges', () => {
    const image = { width: 20, height: 10, channels: 1 as const, data: new Uint8Array(200) };
    expect(downscale(image, 20)).toBe(image);
    expect(downscale(image, 500)).toBe(image);
  });
});

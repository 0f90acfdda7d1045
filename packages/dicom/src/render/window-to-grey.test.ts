import { describe, expect, it } from 'vitest';
import { windowToGrey } from './window-to-grey.ts';

const identity = { slope: 1, intercept: 0, invert: false };

describe('windowToGrey', () => {
  it('applies the linear window of PS3.3 C.11.2.1.2.1', () => {
    const values = Int32Array.from([-51, -50, -49, 0, 48, 49, 50]);
    const grey = windowToGrey(values, { ...identity, window: { center: 0, width: 100 } });
    // Edges: x <= c - 0.5 - (w-1)/2 = -50 is black, x > c - 0.5 + (w-1)/2 = 49 is white.
    expect(Array.from(grey)).toEqual([0, 0, 3, 129, 252, 255, 255]);
  });

  it('rescales before windowing', () => {
    const grey = windowToGrey(Int32Array.from([0, 1024, 1064, 2048]), { slope: 1, intercept: -1024, invert: false, window: { center: 40, width: 400 } });
    expect(Array.from(grey)).toEqual([0, 102, 128, 255]);
    const scaled = windowToGrey(Int32Array.from([5, 10]), { slope: 2, intercept: -10, invert: false, window: { center: 5, width: 11 } });
    expect(Array.from(scaled)).toEqual([13, 255]);
  });

  it('thresholds at width 1: above c - 0.5 is white', () => {
    const grey = windowToGrey(Int32Array.from([9, 10, 11]), { ...identity, window: { center: 10, width: 1 } });
    expect(Array.from(grey)).toEqual([0, 255, 255]);
  });

  it('stretches the frame’s own range when there is no window', () => {
    const grey = windowToGrey(Int32Array.from([-100, 0, 100]), { ...identity, window: undefined });
    expect(Array.from(grey)).toEqual([0, 128, 255]);
    const negativeSlope = windowToGrey(Int32Array.from([-100, 100]), { slope: -1, intercept: 0, invert: false, window: undefined });
    expect(Array.from(negativeSlope)).toEqual([255, 0]);
  });

  it('inverts MONOCHROME1', () => {
    const grey = windowToGrey(Int32Array.from([0, 25, 100]), { ...identity, invert: true, window: undefined });
    expect(Array.from(grey)).toEqual([255, 191, 0]);
  });

  it('gives the same result without a lookup table for a range too wide for one', () => {
    const values = Uint32Array.from([0, 1_000_000, 2_000_000, 4_000_000_000]);
    const grey = windowToGrey(values, { ...identity, window: { center: 1_000_000, width: 2_000_000 } });
    expect(Array.from(grey)).toEqual([0, 128, 255, 255]);
  });

  it('renders a constant frame black', () => {
    expect(Array.from(windowToGrey(Int32Array.from([7, 7]), { ...identity, window: undefined }))).toEqual([0, 0]);
  });
});

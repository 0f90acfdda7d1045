import { describe, expect, it } from 'vitest';
import { withColorTransform } from './jpeg-color-transform.ts';

function segment(marker: number, body: number[]): number[] {
  const length = body.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...body];
}

/** SOI, optional extra segments, SOF0 (3 components with the given IDs), SOS, a byte of scan data, EOI. */
function jpeg(ids: number[], extra: number[][] = []): Buffer {
  const sof = segment(0xc0, [8, 0, 1, 0, 1, 3, ...ids.flatMap((id) => [id, 0x11, 0])]);
  const sos = segment(0xda, [3, ...ids.flatMap((id) => [id, 0]), 0, 63, 0]);
  return Buffer.from([0xff, 0xd8, ...extra.flat(), ...sof, ...sos, 0x42, 0xff, 0xd9]);
}

const JFIF = segment(0xe0, [...Buffer.from('JFIF\0'), 1, 1, 0, 0, 1, 0, 1, 0, 0]);
const ADOBE = segment(0xee, [...Buffer.from('Adobe'), 0, 100, 0, 0, 0, 0, 1]);

/** The Adobe transform flag the codestream carries right after SOI, if any. */
function insertedTransform(out: Buffer): number | undefined {
  return out.toString('latin1', 6, 11) === 'Adobe' ? out[17] : undefined;
}

describe('withColorTransform', () => {
  it('lets the Photometric Interpretation decide when the codestream does not', () => {
    const frame = jpeg([0, 1, 2]);
    expect(insertedTransform(withColorTransform(frame, 'RGB'))).toBe(0);
    expect(insertedTransform(withColorTransform(frame, 'YBR_FULL_422'))).toBe(1);
    expect(withColorTransform(frame, 'RGB').subarray(18).equals(frame.subarray(2))).toBe(true);
  });

  it.each([
    ['a JFIF marker', jpeg([0, 1, 2], [JFIF])],
    ['an Adobe marker', jpeg([0, 1, 2], [ADOBE])],
    ['component IDs 1, 2, 3', jpeg([1, 2, 3])],
    ["component IDs 'R', 'G', 'B'", jpeg([82, 71, 66])],
    ['a header that cannot be walked', Buffer.from([0xff, 0xd8, 0x00, 0x01, 0x02, 0x03])],
  ])('leaves the codestream alone when it has %s', (_, frame) => {
    expect(withColorTransform(frame, 'RGB')).toBe(frame);
  });
});

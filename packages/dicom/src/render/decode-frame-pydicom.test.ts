import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pydicomFile, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { rejection } from './__fixtures__/caught.ts';
import { dcmtkConvert } from './__fixtures__/dcmtk-convert.ts';
import { pixelModuleFromFile } from './__fixtures__/pixel-module-from-file.ts';
import { encapsulate } from './__fixtures__/synthetic.ts';
import { decodeFrame, type DecodedFrame } from './decode-frame.ts';
import { extractFrame } from './extract-frame.ts';
import type { PixelModule } from './pixel-module.ts';

const TS = {
  implicit: '1.2.840.10008.1.2',
  explicit: '1.2.840.10008.1.2.1',
  deflated: '1.2.840.10008.1.2.1.99',
  bigEndian: '1.2.840.10008.1.2.2',
  jpegBaseline: '1.2.840.10008.1.2.4.50',
  jpegExtended: '1.2.840.10008.1.2.4.51',
  jpegLossless: '1.2.840.10008.1.2.4.57',
  jpegLosslessSv1: '1.2.840.10008.1.2.4.70',
  jpegLs: '1.2.840.10008.1.2.4.80',
  jpegLsNear: '1.2.840.10008.1.2.4.81',
  j2kLossless: '1.2.840.10008.1.2.4.90',
  j2k: '1.2.840.10008.1.2.4.91',
  rle: '1.2.840.10008.1.2.5',
};

/** Pixel (row 5 + 10k, column 50) of pydicom's 100x100 colour test image: ten horizontal bands. */
const BANDS = [
  [255, 0, 0],
  [255, 128, 128],
  [0, 255, 0],
  [128, 255, 128],
  [0, 0, 255],
  [128, 128, 255],
  [0, 0, 0],
  [64, 64, 64],
  [192, 192, 192],
  [255, 255, 255],
];
/** The second frame of the 2-frame variants is the first inverted. */
const INVERTED_BANDS = BANDS.map((rgb) => rgb.map((v) => (v === 128 ? 127 : 255 - v)));

function bands(frame: DecodedFrame): number[][] {
  expect([frame.width, frame.height, frame.samples]).toEqual([100, 100, 3]);
  return BANDS.map((_, k) => Array.from(frame.data.subarray(((5 + 10 * k) * 100 + 50) * 3, ((5 + 10 * k) * 100 + 50) * 3 + 3)));
}

function maxDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

function sum(values: ArrayLike<number>): number {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i]!;
  return total;
}

function minimum(values: ArrayLike<number>): number {
  let min = Infinity;
  for (let i = 0; i < values.length; i++) min = Math.min(min, values[i]!);
  return min;
}

function load(name: string, transferSyntaxUid: string): PixelModule {
  const pm = pixelModuleFromFile(name.startsWith('/') ? name : pydicomFile(name));
  // Guards the test itself: each case must exercise the transfer syntax it names.
  expect(pm.transferSyntaxUid).toBe(transferSyntaxUid);
  return pm;
}

describe.skipIf(skipDicomTools)('decodeFrame on pydicom files', () => {
  let dir = '';
  let mr: DecodedFrame;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-render-'));
    mr = await decodeFrame(load('MR_small.dcm', TS.explicit), 0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const convert = (tool: string, args: string[], input: string, name: string): string =>
    dcmtkConvert({ tool, args, input: pydicomFile(input), dir, name });

  describe('lossless transfer syntaxes give exactly the pixels of MR_small.dcm', () => {
    it('has the reference values (64x64 signed 16-bit)', () => {
      expect([mr.width, mr.height, mr.samples, mr.data.constructor]).toEqual([64, 64, 1, Int32Array]);
      expect(Array.from(mr.data.subarray(0, 5))).toEqual([905, 1019, 1227, 1259, 761]);
    });

    it.each([
      ['MR_small_implicit.dcm', TS.implicit],
      ['MR_small_padded.dcm', TS.explicit],
      ['MR_small_bigendian.dcm', TS.bigEndian],
      ['MR_small_expb.dcm', TS.bigEndian],
      ['MR_small_RLE.dcm', TS.rle],
      ['MR_small_jpeg_ls_lossless.dcm', TS.jpegLs],
      ['MR_small_jp2klossless.dcm', TS.j2kLossless],
    ])('%s (%s)', async (name, uid) => {
      const frame = await decodeFrame(load(name, uid), 0);
      expect(frame.data).toEqual(mr.data);
    });

    it('JPEG Lossless SV1 (dcmcjpeg +e1)', async () => {
      const file = convert('dcmcjpeg', ['+e1'], 'MR_small.dcm', 'mr-sv1.dcm');
      expect((await decodeFrame(load(file, TS.jpegLosslessSv1), 0)).data).toEqual(mr.data);
    });

    it.each([1, 2, 3, 4, 5, 6, 7])('JPEG Lossless Process 14, selection value %i (dcmcjpeg +el +sv)', async (sv) => {
      const file = convert('dcmcjpeg', ['+el', '+sv', String(sv)], 'MR_small.dcm', `mr-sv${sv}-57.dcm`);
      expect((await decodeFrame(load(file, TS.jpegLossless), 0)).data).toEqual(mr.data);
    });
  });

  describe('monochrome', () => {
    it('CT_small: signed 16-bit explicit little endian, and the same through JPEG Lossless', async () => {
      const ct = await decodeFrame(load('CT_small.dcm', TS.explicit), 0);
      expect([ct.width, ct.height]).toEqual([128, 128]);
      expect(Array.from(ct.data.subarray(0, 5))).toEqual([175, 180, 166, 143, 139]);
      expect(ct.data[64 * 128 + 64]).toBe(1928);
      const lossless = convert('dcmcjpeg', ['+e1'], 'CT_small.dcm', 'ct-sv1.dcm');
      expect((await decodeFrame(load(lossless, TS.jpegLosslessSv1), 0)).data).toEqual(ct.data);
    });

    it('image_dfl.dcm: deflated explicit little endian, 8-bit', async () => {
      const frame = await decodeFrame(load('image_dfl.dcm', TS.deflated), 0);
      expect([frame.width, frame.height]).toEqual([512, 512]);
      expect(sum(frame.data)).toBe(33322688);
    });

    it('rtdose: 15 frames of unsigned 32-bit, identical native, big endian and RLE', async () => {
      const native = load('rtdose.dcm', TS.implicit);
      const big = load('rtdose_expb.dcm', TS.bigEndian);
      const rle = load('rtdose_rle.dcm', TS.rle);
      for (let f = 0; f < 15; f++) {
        const reference = await decodeFrame(native, f);
        expect(reference.data).toBeInstanceOf(Uint32Array);
        expect((await decodeFrame(big, f)).data).toEqual(reference.data);
        expect((await decodeFrame(rle, f)).data).toEqual(reference.data);
      }
      expect(Array.from((await decodeFrame(native, 14)).data.subarray(50, 55))).toEqual([979000, 982000, 983000, 982000, 982000]);
    });

    it('liver_1frame: Bits Allocated 1, little and big endian', async () => {
      const little = await decodeFrame(load('liver_1frame.dcm', TS.explicit), 0);
      const big = await decodeFrame(load('liver_expb_1frame.dcm', TS.bigEndian), 0);
      expect(sum(little.data)).toBe(36233);
      expect(big.data).toEqual(little.data);
    });

    it('JPEG 2000 lossy and signed J2K files decode to plausible signed values', async () => {
      const j2k = await decodeFrame(load('JPEG2000.dcm', TS.j2k), 0);
      expect([j2k.width, j2k.height]).toEqual([256, 1024]);
      const mismatch = await decodeFrame(load('J2K_pixelrep_mismatch.dcm', TS.j2kLossless), 0);
      expect(minimum(mismatch.data)).toBe(-2000);
      const j2ki = await decodeFrame(load('693_J2KI.dcm', TS.j2k), 0);
      expect(minimum(j2ki.data)).toBeLessThan(0);
    });

    it('JPEG-LS near-lossless stays within its NEAR bound (dcmcjpls +en: 2)', async () => {
      const reference = await decodeFrame(load('image_dfl.dcm', TS.deflated), 0);
      const file = convert('dcmcjpls', ['+en'], 'image_dfl.dcm', 'dfl-near.dcm');
      const near = await decodeFrame(load(file, TS.jpegLsNear), 0);
      expect(maxDifference(near.data, reference.data)).toBeLessThanOrEqual(2);
    });

    it('a single JPEG frame split over many fragments without an offset table (dcmcjpeg +fs 1 -ot)', async () => {
      const reference = await decodeFrame(load('image_dfl.dcm', TS.deflated), 0);
      const file = convert('dcmcjpeg', ['+eb', '+fs', '1', '-ot'], 'image_dfl.dcm', 'dfl-fragments.dcm');
      const pm = load(file, TS.jpegBaseline);
      expect(extractFrame(pm, 0).length).toBeGreaterThan(1024);
      expect(maxDifference((await decodeFrame(pm, 0)).data, reference.data)).toBeLessThan(32);
    });
  });

  describe('colour', () => {
    it.each([
      ['SC_rgb_rle.dcm', TS.rle],
      ['SC_rgb_rle_16bit.dcm', TS.rle],
      ['SC_rgb_rle_32bit.dcm', TS.rle],
      ['SC_rgb_jpeg_gdcm.dcm', TS.jpegLosslessSv1],
      ['SC_rgb_gdcm_KY.dcm', TS.j2k],
      ['SC_rgb_dcmtk_+eb+cr.dcm', TS.jpegBaseline],
    ])('%s (%s) has the exact bands', async (name, uid) => {
      expect(bands(await decodeFrame(load(name, uid), 0))).toEqual(BANDS);
    });

    it.each(['SC_rgb_rle_2frame.dcm', 'SC_rgb_rle_16bit_2frame.dcm', 'SC_rgb_rle_32bit_2frame.dcm'])(
      '%s: both frames of multi-frame RLE',
      async (name) => {
        const pm = load(name, TS.rle);
        expect(bands(await decodeFrame(pm, 0))).toEqual(BANDS);
        expect(bands(await decodeFrame(pm, 1))).toEqual(INVERTED_BANDS);
      },
    );

    it.each([
      ['SC_ybr_full_422_uncompressed.dcm', TS.explicit],
      ['SC_rgb_jpeg_dcmtk.dcm', TS.jpegBaseline],
      ['SC_rgb_jpeg_lossy_gdcm.dcm', TS.jpegBaseline],
      ['SC_rgb_dcmtk_+eb+cy+n1.dcm', TS.jpegBaseline],
      ['SC_rgb_dcmtk_+eb+cy+n2.dcm', TS.jpegBaseline],
      ['SC_rgb_dcmtk_+eb+cy+np.dcm', TS.jpegBaseline],
      ['SC_rgb_dcmtk_+eb+cy+s2.dcm', TS.jpegBaseline],
      ['SC_rgb_dcmtk_+eb+cy+s4.dcm', TS.jpegBaseline],
    ])('%s (YBR_FULL, YBR_FULL_422 or lossy) is within a few levels of the bands', async (name, uid) => {
      const got = bands(await decodeFrame(load(name, uid), 0));
      expect(maxDifference(got.flat(), BANDS.flat())).toBeLessThanOrEqual(5);
    });

    it('SC_rgb_small_odd: 3x3 RGB, and its JPEG (YBR_FULL) within a few levels', async () => {
      const rgb = await decodeFrame(load('SC_rgb_small_odd.dcm', TS.explicit), 0);
      const row = (r: number[]): number[] => [...r, ...r, ...r];
      expect(Array.from(rgb.data)).toEqual([...row([166, 141, 52]), ...row([63, 87, 176]), ...row([158, 158, 158])]);
      const jpeg = await decodeFrame(load('SC_rgb_small_odd_jpeg.dcm', TS.jpegBaseline), 0);
      expect(maxDifference(jpeg.data, rgb.data)).toBeLessThanOrEqual(5);
    });

    it('ExplVR_BigEnd: 8-bit RGB in explicit big endian', async () => {
      const frame = await decodeFrame(load('ExplVR_BigEnd.dcm', TS.bigEndian), 0);
      expect([frame.width, frame.height]).toEqual([80, 60]);
      expect(Array.from(frame.data.subarray(0, 3))).toEqual([171, 171, 171]);
      expect(sum(frame.data)).toBe(2470716);
    });

    it.each([
      ['+il', 'line'],
      ['+is', 'sample'],
      ['+in', 'no'],
    ])('JPEG-LS colour with %s (%s interleave) gives the source RGB exactly', async (flag) => {
      const reference = await decodeFrame(load('ExplVR_BigEnd.dcm', TS.bigEndian), 0);
      const file = convert('dcmcjpls', [flag], 'ExplVR_BigEnd.dcm', `rgb${flag}.dcm`);
      expect((await decodeFrame(load(file, TS.jpegLs), 0)).data).toEqual(reference.data);
    });

    it('RGB JPEG without colour transform or markers follows the Photometric Interpretation, as dcmtk does', async () => {
      const frame = await decodeFrame(load('SC_jpeg_no_color_transform.dcm', TS.jpegBaseline), 0);
      expect(Array.from(frame.data.subarray(0, 6))).toEqual([244, 244, 244, 244, 244, 244]);
      const withAdobe = await decodeFrame(load('SC_jpeg_no_color_transform_2.dcm', TS.jpegBaseline), 0);
      const app14 = await decodeFrame(load('SC_rgb_jpeg_app14_dcmd.dcm', TS.jpegBaseline), 0);
      expect(withAdobe.data).toEqual(app14.data);
    });

    it('JPEG 2000 YBR_RCT comes out as RGB (OpenJPEG undoes the transform)', async () => {
      const frame = await decodeFrame(load('GDCMJ2K_TextGBR.dcm', TS.j2kLossless), 0);
      expect([frame.width, frame.height, frame.samples]).toEqual([400, 400, 3]);
      // Grey background: R = G = B, which would not hold if Y Cb Cr were left as they are.
      expect(Array.from(frame.data.subarray(0, 3))).toEqual([128, 128, 128]);
    });

    it('splits a multi-frame JPEG without an offset table at end-of-image markers', async () => {
      const first = load('SC_rgb_dcmtk_+eb+cr.dcm', TS.jpegBaseline);
      const second = load('SC_rgb_dcmtk_+eb+cy+s4.dcm', TS.jpegBaseline);
      const [a, b] = [extractFrame(first, 0), extractFrame(second, 0)];
      const value = encapsulate([a.subarray(0, 100), a.subarray(100, 300), a.subarray(300), b.subarray(0, 500), b.subarray(500)]);
      const pm: PixelModule = { ...second, numberOfFrames: 2, pixelData: { encapsulated: true, value } };
      // Frame 1 was RGB-coded but the module now says YBR_FULL: the Adobe marker in it still decides.
      expect((await decodeFrame(pm, 0)).data).toEqual((await decodeFrame(first, 0)).data);
      expect((await decodeFrame(pm, 1)).data).toEqual((await decodeFrame(second, 0)).data);
    });
  });

  describe('what cannot be decoded says why', () => {
    it.each(['JPEG-lossy.dcm', 'JPGExtended.dcm'])('%s: 12-bit JPEG Extended is NOT_ACCEPTABLE', async (name) => {
      const err = await rejection(decodeFrame(load(name, TS.jpegExtended), 0));
      expect(err.code).toBe('TESSERA_NOT_ACCEPTABLE');
      expect(err.message).toBe(
        'JPEG Extended (Process 2 & 4) with 12-bit samples is not supported: the JPEG decoder (libjpeg-turbo) handles 8-bit samples only',
      );
    });

    it('a corrupt JPEG 2000 codestream is INVALID_DICOM with OpenJPEG’s reason', async () => {
      const err = await rejection(decodeFrame(load('JPEG2000-embedded-sequence-delimiter.dcm', TS.j2k), 0));
      expect(err.code).toBe('TESSERA_INVALID_DICOM');
      expect(err.message).toMatch(/^the JPEG 2000 frame cannot be decoded: .*tiles/);
    });

    it.each([
      ['SC_rgb_dcmtk_+eb+cr.dcm', TS.jpegBaseline, /^the JPEG Baseline \(Process 1\) frame cannot be decoded: libjpeg-turbo rejected the codestream$/],
      ['MR_small_jpeg_ls_lossless.dcm', TS.jpegLs, /^the JPEG-LS Lossless frame cannot be decoded: Invalid JPEG-LS stream/],
      ['MR_small_jp2klossless.dcm', TS.j2kLossless, /^the JPEG 2000 Lossless frame cannot be decoded: /],
      ['SC_rgb_jpeg_gdcm.dcm', TS.jpegLosslessSv1, /^the JPEG Lossless SV1 .* frame cannot be decoded: /],
    ])('%s with its codestream gutted (first 40 bytes, then EOI) is INVALID_DICOM with the codec’s reason', async (name, uid, message) => {
      const pm = load(name, uid);
      const value = encapsulate([Buffer.concat([extractFrame(pm, 0).subarray(0, 40), Buffer.from([0xff, 0xd9])])]);
      const err = await rejection(decodeFrame({ ...pm, pixelData: { encapsulated: true, value } }, 0));
      expect(err.code).toBe('TESSERA_INVALID_DICOM');
      expect(err.message).toMatch(message);
    });

    it.each([
      ['SC_rgb_dcmtk_+eb+cr.dcm', TS.jpegBaseline],
      ['MR_small_jpeg_ls_lossless.dcm', TS.jpegLs],
      ['SC_rgb_jpeg_gdcm.dcm', TS.jpegLosslessSv1],
    ])('%s cut short is INVALID_DICOM at once (no garbage, no slow codec)', async (name, uid) => {
      const pm = load(name, uid);
      const frame = extractFrame(pm, 0);
      const value = encapsulate([frame.subarray(0, Math.floor(frame.length / 2))]);
      const start = performance.now();
      const err = await rejection(decodeFrame({ ...pm, pixelData: { encapsulated: true, value } }, 0));
      expect(performance.now() - start).toBeLessThan(1000);
      expect(err.code).toBe('TESSERA_INVALID_DICOM');
      expect(err.message).toMatch(/frame is truncated: its \d+-byte codestream does not end with an end-of-image marker \(FF D9\)/);
    });

    it('a truncated native value is INVALID_DICOM', async () => {
      const pm = load('MR_small.dcm', TS.explicit);
      const err = await rejection(decodeFrame({ ...pm, pixelData: { encapsulated: false, value: pm.pixelData.value.subarray(0, 5000) } }, 0));
      expect(err.code).toBe('TESSERA_INVALID_DICOM');
      expect(err.message).toMatch(/truncated/);
    });

    it('the codecs survive errors and serve concurrent requests', async () => {
      const jls = load('MR_small_jpeg_ls_lossless.dcm', TS.jpegLs);
      const j2k = load('MR_small_jp2klossless.dcm', TS.j2kLossless);
      const frames = await Promise.all(Array.from({ length: 8 }, (_, i) => decodeFrame(i % 2 ? jls : j2k, 0)));
      for (const frame of frames) expect(frame.data).toEqual(mr.data);
    });
  });
});

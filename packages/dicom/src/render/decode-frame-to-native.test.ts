import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pydicomFile, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { rejection } from './__fixtures__/caught.ts';
import { dcmtkConvert } from './__fixtures__/dcmtk-convert.ts';
import { pixelModuleFromFile } from './__fixtures__/pixel-module-from-file.ts';
import { monochromeModule } from './__fixtures__/synthetic.ts';
import { decodeFrame } from './decode-frame.ts';
import { decodeFrameToNative, nativePhotometricInterpretation } from './decode-frame-to-native.ts';
import { extractFrame } from './extract-frame.ts';

const load = (name: string) => pixelModuleFromFile(name.startsWith('/') ? name : pydicomFile(name));

describe('decodeFrameToNative', () => {
  it('refuses an unsupported transfer syntax with NOT_ACCEPTABLE', async () => {
    const pm = { ...monochromeModule(new Uint16Array(1), { rows: 1, columns: 1 }), transferSyntaxUid: '1.2.840.10008.1.2.4.102' };
    const err = await rejection(decodeFrameToNative(pm, 0));
    expect(err.code).toBe('TESSERA_NOT_ACCEPTABLE');
    expect(err.message).toMatch(/1\.2\.840\.10008\.1\.2\.4\.102 is not supported/);
  });
});

describe.skipIf(skipDicomTools)('decodeFrameToNative on pydicom files', () => {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tessera-native-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the bytes of MR_small.dcm for every lossless encoding of it', async () => {
    const reference = extractFrame(load('MR_small.dcm'), 0);
    const sv1 = dcmtkConvert({ tool: 'dcmcjpeg', args: ['+e1'], input: pydicomFile('MR_small.dcm'), dir, name: 'mr-sv1.dcm' });
    for (const name of ['MR_small.dcm', 'MR_small_bigendian.dcm', 'MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'MR_small_jp2klossless.dcm', sv1]) {
      expect((await decodeFrameToNative(load(name), 0)).equals(reference), name).toBe(true);
    }
  });

  it('byte-swaps 32-bit big endian and decodes RLE to the native bytes, frame by frame (rtdose)', async () => {
    const [native, big, rle] = ['rtdose.dcm', 'rtdose_expb.dcm', 'rtdose_rle.dcm'].map(load);
    for (let f = 0; f < 15; f++) {
      const reference = extractFrame(native!, f);
      expect((await decodeFrameToNative(big!, f)).equals(reference)).toBe(true);
      expect((await decodeFrameToNative(rle!, f)).equals(reference)).toBe(true);
    }
  });

  it('decodes RLE colour in the dataset’s Planar Configuration', async () => {
    const pm = load('SC_rgb_rle.dcm');
    const interleaved = await decodeFrameToNative(pm, 0);
    const planar = await decodeFrameToNative({ ...pm, planarConfiguration: 1 }, 0);
    // Pixel (5, 50) is red in the first band.
    const p = 5 * 100 + 50;
    expect([...interleaved.subarray(p * 3, p * 3 + 3)]).toEqual([255, 0, 0]);
    expect([planar[p], planar[10000 + p], planar[20000 + p]]).toEqual([255, 0, 0]);
    // Decoding either layout gives the same picture.
    expect((await decodeFrame({ ...pm, planarConfiguration: 1 }, 0)).data).toEqual((await decodeFrame(pm, 0)).data);
  });

  it('gives JPEG colour as interleaved RGB and says so', async () => {
    const pm = load('SC_rgb_dcmtk_+eb+cy+s2.dcm');
    expect(pm.photometricInterpretation).toBe('YBR_FULL_422');
    const bytes = await decodeFrameToNative(pm, 0);
    expect(bytes.length).toBe(100 * 100 * 3);
    expect(Buffer.from((await decodeFrame(pm, 0)).data).equals(bytes)).toBe(true);
    expect(nativePhotometricInterpretation(pm)).toBe('RGB');
    expect(nativePhotometricInterpretation(load('GDCMJ2K_TextGBR.dcm'))).toBe('RGB');
    expect(nativePhotometricInterpretation(load('SC_ybr_full_422_uncompressed.dcm'))).toBe('YBR_FULL_422');
  });

  it('widens 8-bit codec samples to Bits Allocated 16', async () => {
    const file = dcmtkConvert({ tool: 'dcmcjpls', args: [], input: pydicomFile('image_dfl.dcm'), dir, name: 'dfl-ls.dcm' });
    const eight = load(file);
    expect(eight.bitsAllocated).toBe(8);
    const sixteen = { ...eight, bitsAllocated: 16 };
    const bytes = await decodeFrameToNative(sixteen, 0);
    expect(bytes.length).toBe(512 * 512 * 2);
    const reference = await decodeFrameToNative(eight, 0);
    expect(Array.from(new Uint16Array(Uint8Array.from(bytes).buffer))).toEqual(Array.from(reference));
  });
});

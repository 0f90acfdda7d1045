import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperatorImage, PYTHON, run, skipOperatorImage } from '../../packages/engine/src/__fixtures__/operator-image.ts';
import { loadExtensionFolder } from '../../packages/extension-packages/src/extension-loader.ts';
import workflow from './workflows/dcm2nifti.ts';

const EXT_DIR = dirname(fileURLToPath(import.meta.url));
const IMAGE = 'tessera-ext/dcm2nifti:0.1.0';
const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

/**
 * A synthetic CT series written by pydicom: air (-1000 HU) with a bright ellipsoid
 * (200 HU), ±30 HU of noise, stored with RescaleIntercept -1024, non-square pixels
 * (0.8 mm rows, 0.7 mm columns), 2.5 mm slices going up in z. InstanceNumber runs
 * the other way and file names are random. Prints the UIDs and, per slice in
 * position order, the number of ellipsoid pixels.
 */
const SYNTHETIC_CT = String.raw`
import json, os, random, sys
from array import array
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out, n, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(out, exist_ok=True)
study, series, frame = generate_uid(), generate_uid(), generate_uid()
rng = random.Random(n * rows * cols)
info = {"study": study, "series": series, "foreground": []}
for k in range(n):
    sop = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(sop, Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.is_little_endian, ds.is_implicit_VR = True, False
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, sop
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Synthetic", "SYN-001", "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20240102", "101500", "1", "ACC1", ""
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription, ds.Manufacturer = "CT", 3, "Synthetic phantom", "Tessera test"
    ds.InstanceNumber = n - k
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-100.0, -80.0, -50.0 + 2.5 * k]
    ds.SliceLocation = -50.0 + 2.5 * k
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.7], 2.5
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.Rows, ds.Columns = 1, "MONOCHROME2", rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    px, inside = array("h"), 0
    for r in range(rows):
        for c in range(cols):
            d = ((r - rows / 2) / (rows * 0.3)) ** 2 + ((c - cols / 2) / (cols * 0.3)) ** 2 + ((k - n / 2) / (n * 0.35)) ** 2
            inside += d <= 1
            px.append((200 if d <= 1 else -1000) + rng.randint(-30, 30) + 1024)
    if sys.byteorder != "little":
        px.byteswap()
    ds.PixelData = px.tobytes()
    ds.save_as(os.path.join(out, generate_uid() + ".dcm"), write_like_original=False)
    info["foreground"].append(inside)
print(json.dumps(info))
`;

interface SyntheticSeries {
  study: string;
  series: string;
  /** Ellipsoid pixels per slice, in position order (z going up). */
  foreground: number[];
}

interface Nifti {
  dims: number[];
  datatype: number;
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  magic: string;
  /** Voxels above -500 (in scaled values) per slice along the third axis. */
  brightPerSlice: number[];
}

/** The NIfTI-1 header fields the tests look at (little endian, as dcm2niix writes on x86), and the bright voxels per slice. */
function readNifti(bytes: Buffer): Nifti {
  expect(bytes.readInt32LE(0), 'sizeof_hdr').toBe(348);
  const dims = Array.from({ length: 8 }, (_, i) => bytes.readInt16LE(40 + 2 * i));
  const datatype = bytes.readInt16LE(70);
  const pixdim = Array.from({ length: 8 }, (_, i) => bytes.readFloatLE(76 + 4 * i));
  const voxOffset = bytes.readFloatLE(108);
  const sclSlope = bytes.readFloatLE(112) || 1;
  const sclInter = bytes.readFloatLE(116);
  const magic = bytes.toString('latin1', 344, 348);
  expect(datatype, 'datatype (4: int16)').toBe(4);
  const [, nx = 0, ny = 0, nz = 0] = dims;
  const brightPerSlice: number[] = [];
  for (let z = 0; z < nz; z++) {
    let n = 0;
    for (let i = 0; i < nx * ny; i++) {
      if (bytes.readInt16LE(voxOffset + 2 * (z * nx * ny + i)) * sclSlope + sclInter > -500) n++;
    }
    brightPerSlice.push(n);
  }
  return { dims, datatype, pixdim, voxOffset, sclSlope, sclInter, magic, brightPerSlice };
}

describe('dcm2nifti: the workflow and the manifest', () => {
  it('compiles to get-input -> dcm2nifti (in its container) -> put-files', () => {
    const spec = workflow.toDagSpec();
    expect(spec.id).toBe('dcm2nifti');
    expect(spec.tasks.map((t) => [t.id, t.upstream, t.input_dir ?? null, t.output_dir])).toEqual([
      ['get-input', [], null, 'get-input'],
      ['dcm2nifti', ['get-input'], 'get-input', 'nifti'],
      ['put-files', ['dcm2nifti'], 'nifti', 'put-files'],
    ]);
    const convert = spec.tasks[1]!;
    expect(convert).toMatchObject({ level: 'batch_element', container: { image: IMAGE } });
    expect(convert.process).toBeUndefined();
    expect(spec.tasks[2]!.builtin).toBe('put-files');
    expect(spec.workflow_form).toMatchObject({ properties: { compress: { type: 'boolean', default: true } } });
  });

  it('loads as an extension whose image is the one the operator runs', async () => {
    const ext = await loadExtensionFolder(EXT_DIR);
    expect(ext.manifest).toMatchObject({ name: 'dcm2nifti', version: '0.1.0', kind: 'workflow', images: [{ name: IMAGE, context: 'processing' }] });
    expect(ext.workflows.map((w) => w.spec.id)).toEqual(['dcm2nifti']);
    expect(existsSync(join(EXT_DIR, 'processing', 'Dockerfile'))).toBe(true);
  });
});

describe.skipIf(skipOperatorImage)('dcm2nifti image', () => {
  const op = new OperatorImage({ extDir: EXT_DIR, image: IMAGE, dagId: 'dcm2nifti', task: workflow.toDagSpec().tasks.find((t) => t.id === 'dcm2nifti')! });
  const workflowDir = op.workflowDir.bind(op);
  const runTask = op.runTask.bind(op);
  const leftovers = op.leftovers.bind(op);

  beforeAll(() => op.setUp(), 20 * 60_000);
  afterAll(() => op.tearDown());

  async function synthetic(name: string, slices: number, rows: number, columns: number): Promise<{ info: SyntheticSeries; files: string[] }> {
    const out = join(op.dir, 'sources', name);
    const { stdout } = await run(PYTHON, ['-c', SYNTHETIC_CT, out, String(slices), String(rows), String(columns)]);
    return { info: JSON.parse(stdout) as SyntheticSeries, files: (await readdir(out)).map((f) => join(out, f)) };
  }

  it('converts every series of the batch in one container to a .nii.gz with its JSON sidecar', async () => {
    const big = await synthetic('big', 12, 48, 64);
    const small = await synthetic('small', 5, 30, 20);
    const { launch, wd } = await workflowDir('run-nifti', { [big.info.series]: big.files, [small.info.series]: small.files }, { compress: true });
    const result = await runTask(launch(1));
    expect(result.state, result.log).toBe('success');
    expect(result.log).toContain('2 of 2 series converted');

    for (const [{ info }, rows, columns] of [[big, 48, 64], [small, 30, 20]] as const) {
      const out = join(wd, 'batch', info.series, 'nifti');
      expect((await readdir(out)).sort()).toEqual(['3_Synthetic_phantom.json', '3_Synthetic_phantom.nii.gz']);
      const nii = readNifti(gunzipSync(await readFile(join(out, '3_Synthetic_phantom.nii.gz'))));
      const slices = info.foreground.length;
      expect(nii.magic).toBe('n+1\0');
      expect(nii.dims.slice(0, 4)).toEqual([3, columns, rows, slices]);
      // Columns are 0.7 mm apart, rows 0.8 mm, slices 2.5 mm.
      expect(nii.pixdim[1]).toBeCloseTo(0.7, 5);
      expect(nii.pixdim[2]).toBeCloseTo(0.8, 5);
      expect(nii.pixdim[3]).toBeCloseTo(2.5, 5);
      expect(nii.voxOffset).toBe(352);
      expect([nii.sclSlope, nii.sclInter]).toEqual([1, -1024]);
      // The voxels themselves: the ellipsoid, slice by slice in position order.
      expect(nii.brightPerSlice).toEqual(info.foreground);
      const sidecar = JSON.parse(await readFile(join(out, '3_Synthetic_phantom.json'), 'utf8')) as Record<string, unknown>;
      expect(sidecar).toMatchObject({ Modality: 'CT', SeriesNumber: 3, SeriesDescription: 'Synthetic phantom', ConversionSoftware: 'dcm2niix' });
      expect(JSON.stringify(sidecar)).not.toContain('Phantom^Synthetic');
    }

    // A retry overwrites: the same files, no dcm2niix suffixes next to the old ones.
    const again = await runTask(launch(2));
    expect(again.state, again.log).toBe('success');
    expect((await readdir(join(wd, 'batch', big.info.series, 'nifti'))).sort()).toEqual(['3_Synthetic_phantom.json', '3_Synthetic_phantom.nii.gz']);
    expect(await leftovers()).toBe('');
  }, 180_000);

  it('writes plain .nii with compress=false from the workflow form', async () => {
    const { info, files } = await synthetic('plain', 4, 16, 24);
    const { launch, wd } = await workflowDir('run-nifti-plain', { [info.series]: files }, { compress: false });
    const result = await runTask(launch(1));
    expect(result.state, result.log).toBe('success');
    const out = join(wd, 'batch', info.series, 'nifti');
    expect((await readdir(out)).sort()).toEqual(['3_Synthetic_phantom.json', '3_Synthetic_phantom.nii']);
    const nii = readNifti(await readFile(join(out, '3_Synthetic_phantom.nii')));
    expect(nii.dims.slice(0, 4)).toEqual([3, 24, 16, 4]);
    expect(nii.brightPerSlice).toEqual(info.foreground);
    expect(await leftovers()).toBe('');
  }, 120_000);

  it('fails, naming the series, when a series gives no NIfTI; the others are still converted', async () => {
    const { info, files } = await synthetic('good', 3, 16, 16);
    const sr = '2.25.3001';
    const { launch, wd } = await workflowDir('run-nifti-sr', { [info.series]: files, [sr]: [join(PYDICOM_FILES, 'test-SR.dcm')] }, {});
    const result = await runTask(launch(1));
    expect(result).toMatchObject({ state: 'failed', exitCode: 1 });
    expect(result.log).toContain('1 of 2 series converted');
    expect(result.log).toContain('dcm2nifti: error: 1 series gave no NIfTI file:');
    expect(result.log).toMatch(new RegExp(`${sr.replace(/\./g, '\\.')}: no NIfTI from 1 file\\(s\\) in get-input/`));
    expect(await readdir(join(wd, 'batch', info.series, 'nifti'))).toContain('3_Synthetic_phantom.nii.gz');
    expect(await readdir(join(wd, 'batch', sr, 'nifti'))).toEqual([]);
    expect(await leftovers()).toBe('');
  }, 120_000);
});

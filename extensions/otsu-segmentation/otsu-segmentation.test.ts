import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PIXEL_DATA, getNumber, getString, readPart10, type DicomDataset } from '../../packages/dicom/src/index.ts';
import { DCIODVFY, dicom3toolsProblem, skipDicom3tools } from '../../packages/dicom/src/__fixtures__/dicom-env.ts';
import { OperatorImage, PYTHON, run, skipOperatorImage } from '../../packages/engine/src/__fixtures__/operator-image.ts';
import { loadExtensionFolder } from '../../packages/extension-packages/src/extension-loader.ts';
import workflow from './workflows/otsu-segmentation.ts';

const EXT_DIR = dirname(fileURLToPath(import.meta.url));
const IMAGE = 'tessera-ext/otsu-segmentation:0.1.0';
const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const SEG_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.4';

/**
 * A synthetic CT series written by pydicom: air (-1000 HU) with a bright ellipsoid
 * (200 HU), ±30 HU of noise, stored with RescaleIntercept -1024. Slices go up in z;
 * InstanceNumber runs the other way and file names are random, so only sorting by
 * position gives the right order. Prints the UIDs and, per slice in position order,
 * the SOP Instance UID and the number of ellipsoid pixels.
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
info = {"study": study, "series": series, "frame_of_reference": frame, "sops": [], "foreground": [], "z": []}
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
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    z = -50.0 + 2.5 * k
    ds.ImagePositionPatient = [-100.0, -80.0, z]
    ds.SliceLocation = z
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
    info["sops"].append(sop)
    info["foreground"].append(inside)
    info["z"].append(z)
print(json.dumps(info))
`;

/** What pydicom reads in a SEG; the mask is counted per frame in plain Python (bit i of the frame is bit i%8 of byte i//8). */
const READ_SEG = String.raw`
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
frames, rows, cols = int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns)
data, per = ds.PixelData, rows * cols
counts = [sum((data[i >> 3] >> (i & 7)) & 1 for i in range(f * per, (f + 1) * per)) for f in range(frames)]
pf = ds.PerFrameFunctionalGroupsSequence
shared = ds.SharedFunctionalGroupsSequence[0]
print(json.dumps({
    "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
    "sop_class": str(ds.SOPClassUID), "sop_instance": str(ds.SOPInstanceUID), "modality": ds.Modality,
    "study": str(ds.StudyInstanceUID), "series": str(ds.SeriesInstanceUID), "frame_of_reference": str(ds.FrameOfReferenceUID),
    "series_description": ds.SeriesDescription, "patient_id": ds.PatientID, "patient_name": str(ds.PatientName),
    "frames": frames, "rows": rows, "columns": cols, "bits_allocated": int(ds.BitsAllocated),
    "segmentation_type": ds.SegmentationType, "segment_labels": [s.SegmentLabel for s in ds.SegmentSequence],
    "referenced_series": [str(s.SeriesInstanceUID) for s in ds.ReferencedSeriesSequence],
    "referenced_instances": [str(i.ReferencedSOPInstanceUID) for i in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence],
    "frame_sources": [str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID) for f in pf],
    "frame_z": [float(f.PlanePositionSequence[0].ImagePositionPatient[2]) for f in pf],
    "frame_segments": [int(f.SegmentIdentificationSequence[0].ReferencedSegmentNumber) for f in pf],
    "orientation": [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient],
    "pixel_spacing": [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing],
    "content_description": ds.ContentDescription,
    "counts": counts,
}))
`;

interface SyntheticSeries {
  study: string;
  series: string;
  frame_of_reference: string;
  /** In position order (z going up). */
  sops: string[];
  foreground: number[];
  z: number[];
}

async function python(script: string, args: string[]): Promise<string> {
  const { stdout } = await run(PYTHON, ['-c', script, ...args], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

function sequenceItems(ds: DicomDataset, tag: number): DicomDataset[] {
  return ds.elements.get(tag)?.items ?? [];
}

/** Foreground pixels per frame of a BITS_ALLOCATED 1 pixel data element, frames packed without padding, low bit first. */
function countBits(pixels: Buffer, frames: number, perFrame: number): number[] {
  const counts: number[] = [];
  for (let f = 0; f < frames; f++) {
    let n = 0;
    for (let i = f * perFrame; i < (f + 1) * perFrame; i++) n += (pixels[i >> 3]! >> (i & 7)) & 1;
    counts.push(n);
  }
  return counts;
}

describe('otsu-segmentation: the workflow and the manifest', () => {
  it('compiles to get-input -> otsu (in its container) -> put-result', () => {
    const spec = workflow.toDagSpec();
    expect(spec.id).toBe('otsu-segmentation');
    expect(spec.tasks.map((t) => [t.id, t.upstream, t.input_dir ?? null, t.output_dir])).toEqual([
      ['get-input', [], null, 'get-input'],
      ['otsu', ['get-input'], 'get-input', 'otsu'],
      ['put-result', ['otsu'], 'otsu', 'put-result'],
    ]);
    const otsu = spec.tasks[1]!;
    expect(otsu).toMatchObject({ level: 'batch_element', container: { image: IMAGE } });
    expect(otsu.process).toBeUndefined();
    expect(spec.tasks[2]!.builtin).toBe('put-result');
    expect(spec.workflow_form).toMatchObject({ properties: { smoothing_sigma: { type: 'number', default: 0, minimum: 0 } } });
  });

  it('loads as an extension whose image is the one the operator runs', async () => {
    const ext = await loadExtensionFolder(EXT_DIR);
    expect(ext.manifest).toMatchObject({ name: 'otsu-segmentation', version: '0.1.0', kind: 'workflow', images: [{ name: IMAGE, context: 'processing' }] });
    expect(ext.workflows.map((w) => w.spec.id)).toEqual(['otsu-segmentation']);
    expect(existsSync(join(EXT_DIR, 'processing', 'Dockerfile'))).toBe(true);
  });
});

describe.skipIf(skipOperatorImage)('otsu-segmentation image', () => {
  const op = new OperatorImage({ extDir: EXT_DIR, image: IMAGE, dagId: 'otsu-segmentation', task: workflow.toDagSpec().tasks.find((t) => t.id === 'otsu')! });
  const workflowDir = op.workflowDir.bind(op);
  const runTask = op.runTask.bind(op);
  const leftovers = op.leftovers.bind(op);

  beforeAll(() => op.setUp(), 20 * 60_000);
  afterAll(() => op.tearDown());

  async function synthetic(name: string, slices: number, rows: number, columns: number): Promise<{ info: SyntheticSeries; files: string[] }> {
    const out = join(op.dir, 'sources', name);
    const info = JSON.parse(await python(SYNTHETIC_CT, [out, String(slices), String(rows), String(columns)])) as SyntheticSeries;
    const files = (await readdir(out)).map((f) => join(out, f));
    return { info, files };
  }

  it('writes one DICOM SEG per series: frames in position order, the mask of the bright object, the source referenced', async () => {
    const { info, files } = await synthetic('ct', 12, 48, 64);
    const sr = '2.25.1001';
    const { launch, wd } = await workflowDir('run-otsu', { [info.series]: files, [sr]: [join(PYDICOM_FILES, 'test-SR.dcm')] }, { smoothing_sigma: 0 });
    const first = launch(1);
    const result = await runTask(first);
    expect(result.state, result.log).toBe('success');
    expect(result.log).toMatch(/12 slices of 48x64, threshold -?[\d.]+, foreground [\d.]+% -> otsu\/seg\.dcm/);
    // The SR is not an image: skipped with a message, the run goes on.
    expect(result.log).toContain(`${sr}: skipped: test-SR.dcm is not an image`);
    expect(result.log).toContain('1 of 2 series segmented');
    expect(existsSync(join(wd, 'batch', sr, 'otsu', 'seg.dcm'))).toBe(false);
    const segFile = join(wd, 'batch', info.series, 'otsu', 'seg.dcm');
    expect((await readdir(join(wd, 'batch', info.series, 'otsu')))).toEqual(['seg.dcm']);

    // Our own reader
    const part10 = readPart10(await readFile(segFile));
    const ds = part10.dataset;
    expect(part10.transferSyntaxUid).toBe('1.2.840.10008.1.2.1');
    expect(getString(part10.meta, 0x00020002)).toBe(SEG_SOP_CLASS);
    expect(getString(ds, 0x00080016)).toBe(SEG_SOP_CLASS);
    expect(getString(ds, 0x00080060)).toBe('SEG');
    expect(getString(ds, 0x0008103e)).toBe('Otsu segmentation');
    expect(getString(ds, 0x0020000d)).toBe(info.study);
    expect(getString(ds, 0x00200052)).toBe(info.frame_of_reference);
    const segSeries = getString(ds, 0x0020000e)!;
    expect(segSeries).toMatch(/^[0-9.]+$/);
    expect(segSeries).not.toBe(info.series);
    expect(getString(ds, 0x00100020)).toBe('SYN-001');
    expect(getNumber(ds, 0x00280008)).toBe(12);
    expect(getNumber(ds, 0x00280010)).toBe(48);
    expect(getNumber(ds, 0x00280011)).toBe(64);
    expect(getNumber(ds, 0x00280100)).toBe(1);
    expect(getString(ds, 0x00620001)).toBe('BINARY');
    const [segment] = sequenceItems(ds, 0x00620002);
    expect(getString(segment!, 0x00620005)).toBe('Otsu foreground');
    const [refSeries] = sequenceItems(ds, 0x00081115);
    expect(getString(refSeries!, 0x0020000e)).toBe(info.series);
    expect(sequenceItems(refSeries!, 0x0008114a).map((i) => getString(i, 0x00081155)).sort()).toEqual([...info.sops].sort());
    const perFrame = sequenceItems(ds, 0x52009230);
    expect(perFrame).toHaveLength(12);
    // Frame i is the i-th slice along z: its source is that slice's SOP instance.
    const sources = perFrame.map((f) => getString(sequenceItems(sequenceItems(f, 0x00089124)[0]!, 0x00082112)[0]!, 0x00081155));
    expect(sources).toEqual(info.sops);
    const pixels = ds.elements.get(PIXEL_DATA)!;
    const bytes = Math.ceil((12 * 48 * 64) / 8);
    expect(pixels.length).toBe(bytes + (bytes % 2));
    const counts = countBits(ds.buffer.subarray(pixels.offset, pixels.offset + pixels.length), 12, 48 * 64);
    // Air and object are 1100 HU apart, the noise ±30 HU: Otsu separates them exactly.
    expect(counts).toEqual(info.foreground);
    const fraction = counts.reduce((a, b) => a + b, 0) / (12 * 48 * 64);
    expect(fraction).toBeGreaterThan(0.01);
    expect(fraction).toBeLessThan(0.99);

    // pydicom
    const py = JSON.parse(await python(READ_SEG, [segFile])) as Record<string, unknown>;
    expect(py).toMatchObject({
      transfer_syntax: '1.2.840.10008.1.2.1',
      sop_class: SEG_SOP_CLASS,
      modality: 'SEG',
      study: info.study,
      series: segSeries,
      frame_of_reference: info.frame_of_reference,
      series_description: 'Otsu segmentation',
      patient_name: 'Phantom^Synthetic',
      frames: 12,
      rows: 48,
      columns: 64,
      bits_allocated: 1,
      segmentation_type: 'BINARY',
      segment_labels: ['Otsu foreground'],
      referenced_series: [info.series],
      frame_sources: info.sops,
      frame_z: info.z,
      frame_segments: Array(12).fill(1),
      orientation: [1, 0, 0, 0, 1, 0],
      pixel_spacing: [0.8, 0.7],
      counts: info.foreground,
    });
    expect(String(py.content_description)).toMatch(/^Otsu threshold -?[\d.]+$/);

    // A retry of the same task overwrites its output with the same instance (same UIDs): put-result stores no duplicate.
    const again = await runTask(launch(2));
    expect(again.state, again.log).toBe('success');
    const rerun = JSON.parse(await python(READ_SEG, [segFile])) as Record<string, unknown>;
    expect(rerun).toMatchObject({ sop_instance: py.sop_instance, series: segSeries, counts: info.foreground });
    expect(await leftovers()).toBe('');
  }, 180_000);

  it('takes smoothing_sigma from the workflow form', async () => {
    const { info, files } = await synthetic('ct-smooth', 8, 40, 40);
    const { launch, wd } = await workflowDir('run-otsu-smooth', { [info.series]: files }, { smoothing_sigma: 1.5 });
    const result = await runTask(launch(1));
    expect(result.state, result.log).toBe('success');
    const py = JSON.parse(await python(READ_SEG, [join(wd, 'batch', info.series, 'otsu', 'seg.dcm')])) as { counts: number[]; content_description: string; frames: number };
    expect(py.frames).toBe(8);
    expect(py.content_description).toMatch(/after Gaussian smoothing \(sigma 1\.5 px\)/);
    const fraction = py.counts.reduce((a, b) => a + b, 0) / (8 * 40 * 40);
    expect(fraction).toBeGreaterThan(0.01);
    expect(fraction).toBeLessThan(0.99);
    expect(await leftovers()).toBe('');
  }, 120_000);

  it('fails, saying why, when no series can be segmented', async () => {
    const junk = join(op.dir, 'not-dicom.dcm');
    await writeFile(junk, 'this is not DICOM');
    const { launch } = await workflowDir('run-otsu-nothing', {
      '2.25.2001': [join(PYDICOM_FILES, 'test-SR.dcm')],
      '2.25.2002': [join(PYDICOM_FILES, 'SC_rgb_small_odd.dcm')],
      '2.25.2003': [junk],
    }, {});
    const result = await runTask(launch(1));
    expect(result.state).toBe('failed');
    expect(result.exitCode).toBe(1);
    expect(result.log).toContain('2.25.2001: skipped: test-SR.dcm is not an image');
    expect(result.log).toContain('2.25.2002: skipped: SC_rgb_small_odd.dcm is not grayscale (PhotometricInterpretation RGB)');
    expect(result.log).toContain('2.25.2003: skipped: no DICOM files');
    expect(result.log).toContain('otsu: error: no series could be segmented (3 skipped');
    expect(await leftovers()).toBe('');
  }, 120_000);

  it('refuses a smoothing_sigma that is not a number >= 0', async () => {
    const { info, files } = await synthetic('ct-bad-sigma', 2, 16, 16);
    const { launch } = await workflowDir('run-otsu-bad-sigma', { [info.series]: files }, { smoothing_sigma: 'lots' });
    const result = await runTask(launch(1));
    expect(result).toMatchObject({ state: 'failed', exitCode: 2 });
    expect(result.log).toContain("otsu: error: SMOOTHING_SIGMA='lots' is not a number");
  }, 120_000);

  it.skipIf(skipDicom3tools)("writes a SEG that dicom3tools' dciodvfy finds no fault with, with and without plane geometry", async () => {
    expect(dicom3toolsProblem, dicom3toolsProblem).toBeUndefined();
    const { info, files } = await synthetic('ct-iod', 4, 32, 24);
    // The same series without ImagePositionPatient/ImageOrientationPatient: frames are ordered by InstanceNumber.
    const flat = await synthetic('ct-iod-flat', 4, 32, 24);
    const stripped = join(op.dir, 'sources', 'ct-iod-stripped');
    await mkdir(stripped, { recursive: true });
    const script = 'import os, sys, pydicom\nfor f in sys.argv[2:]:\n    ds = pydicom.dcmread(f)\n    del ds.ImagePositionPatient, ds.ImageOrientationPatient\n    ds.save_as(os.path.join(sys.argv[1], os.path.basename(f)))';
    await python(script, [stripped, ...flat.files]);
    const strippedFiles = (await readdir(stripped)).map((f) => join(stripped, f));
    const { launch, wd } = await workflowDir('run-otsu-iod', { [info.series]: files, [flat.info.series]: strippedFiles }, {});
    const result = await runTask(launch(1));
    expect(result.state, result.log).toBe('success');
    expect(result.log).toContain('slices ordered by InstanceNumber');
    for (const series of [info.series, flat.info.series]) {
      const check = spawnSync(DCIODVFY, [join(wd, 'batch', series, 'otsu', 'seg.dcm')], { encoding: 'utf8' });
      const report = `${check.stdout}${check.stderr}`;
      expect(report).toContain('Segmentation');
      expect(report).not.toMatch(/^(Error|Warning)/m);
    }
  }, 120_000);
});

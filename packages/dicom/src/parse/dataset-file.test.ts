import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, openDatabase, type Kysely } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pydicomFile, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { writeSampleCt } from '../samples/sample-ct.ts';
import { DicomStore } from '../store/dicom-store.ts';
import { dicomMigrations, type DicomTables } from '../store/dicom-tables.ts';
import { seriesTags } from '../store/index-record.ts';
import { readDatasetFile } from './dataset-file.ts';
import { readDatasetOf, readPart10 } from './part10-reader.ts';

/** Writes the dataset of a Part 10 file (no meta information) to a file of its own. */
async function datasetFileOf(file: string, dir: string): Promise<{ path: string; bytes: Buffer; transferSyntaxUid: string; sopClassUid: string; sopInstanceUid: string }> {
  const part10 = readPart10(await readFile(file));
  const bytes = (await readFile(file)).subarray(part10.datasetOffset);
  const path = join(dir, `${file.split('/').pop()!}.dataset`);
  await writeFile(path, bytes);
  const uid = (tag: number): string => part10.dataset.buffer.toString('latin1', part10.dataset.elements.get(tag)!.offset, part10.dataset.elements.get(tag)!.offset + part10.dataset.elements.get(tag)!.length).replace(/\0+$/, '');
  return { path, bytes, transferSyntaxUid: part10.transferSyntaxUid, sopClassUid: uid(0x00080016), sopInstanceUid: uid(0x00080018) };
}

describe.skipIf(skipDicomTools)('readDatasetFile: a dataset read from a file without its bulk data', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dataset-file-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // Uncompressed in three encodings, encapsulated, sequences (rtplan, SR), deflated, a waveform.
  const NAMES = ['CT_small.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'JPEG2000.dcm', 'MR_small_RLE.dcm', 'rtplan.dcm', 'image_dfl.dcm', 'waveform_ecg.dcm', 'rtdose.dcm'];
  it.each(NAMES)('indexes %s exactly as when it is read whole', async (name) => {
    const d = await datasetFileOf(pydicomFile(name), dir);
    const whole = readDatasetOf(d.bytes, d.transferSyntaxUid);
    const fromFile = await readDatasetFile(d.path, d.transferSyntaxUid);
    expect(seriesTags(fromFile)).toBe(seriesTags(whole));
    // The pixel data (and any other large top-level binary value) is left out, so far less than the file is held.
    // Bulk data inside sequences (a waveform) and deflated datasets are read whole.
    if (d.bytes.length > 64 * 1024 && !['image_dfl.dcm', 'waveform_ecg.dcm'].includes(name)) expect(fromFile.buffer.length).toBeLessThan(64 * 1024);
  });

  it('names what is wrong with a truncated or garbled dataset, as the whole reader does', async () => {
    const d = await datasetFileOf(pydicomFile('CT_small.dcm'), dir);
    const cut = join(dir, 'cut.dataset');
    await writeFile(cut, d.bytes.subarray(0, d.bytes.length - 1000));
    await expect(readDatasetFile(cut, d.transferSyntaxUid)).rejects.toThrow(/truncated: element \(7FE0,0010\).* declares 32768 bytes, but only 31906 remain/i);
    const garbled = Buffer.from(d.bytes);
    garbled.write('Q!', 4 + garbled.indexOf(Buffer.from([0x08, 0x00, 0x16, 0x00])), 'latin1');
    await writeFile(cut, garbled);
    const err = await readDatasetFile(cut, d.transferSyntaxUid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe('TESSERA_INVALID_DICOM');
    expect((err as TesseraError).message).toMatch(/value representation "Q!", which does not exist/);
  });
});

describe('DicomStore.ingest of a dataset in a file (a spooled C-STORE)', () => {
  it('writes the meta header and the file\'s bytes, and indexes it as the in-memory path does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-store-file-'));
    const db = openDatabase<DicomTables>({ file: join(dir, 'db', 'tessera.db') });
    try {
      await migrate(db as Kysely<unknown>, dicomMigrations);
      const store = new DicomStore({ db, root: join(dir, 'store'), quietPeriodMs: 60_000 });
      const { files } = await writeSampleCt(join(dir, 'in'), { slices: 2, size: 512 });
      const [spooled, inMemory] = await Promise.all(files.map((f) => datasetFileOf(f, dir)));
      const ingest = (d: typeof spooled, bytes: Buffer | { path: string; bytes: number }) =>
        store.ingest({ target: { projectId: 'p1' }, dataset: { bytes, transferSyntaxUid: d!.transferSyntaxUid, sopClassUid: d!.sopClassUid, sopInstanceUid: d!.sopInstanceUid, sourceAe: 'MODALITY' } });
      const a = await ingest(spooled, { path: spooled!.path, bytes: spooled!.bytes.length });
      const b = await ingest(inMemory, inMemory!.bytes);
      expect([a.status, b.status]).toEqual(['stored', 'stored']);
      // The same meta header but for (0002,0003), each instance's own UID (padded to even), which can differ in length.
      const even = (uid: string): number => uid.length + (uid.length % 2);
      expect(a.sizeBytes - spooled!.bytes.length - even(spooled!.sopInstanceUid)).toBe(b.sizeBytes - inMemory!.bytes.length - even(inMemory!.sopInstanceUid));
      const rows = await db.selectFrom('dicom_instances').selectAll().orderBy('instance_number').execute();
      expect(rows).toHaveLength(2);
      const stored = await readFile(join(dir, 'store', rows[0]!.path));
      expect(stored.subarray(stored.length - spooled!.bytes.length).equals(spooled!.bytes)).toBe(true);
      expect(readPart10(stored).transferSyntaxUid).toBe(spooled!.transferSyntaxUid);
      expect(rows[0]!.size_bytes).toBe(stored.length);
      // The same attributes apart from those that differ between the two slices.
      const attrs = (json: string): Record<string, unknown> => {
        const all = JSON.parse(json) as Record<string, unknown>;
        for (const tag of ['00080018', '00200013', '00200032', '00201041']) delete all[tag];
        return all;
      };
      expect(Object.keys(attrs(rows[0]!.attrs)).length).toBeGreaterThan(3);
      expect(attrs(rows[0]!.attrs)).toEqual(attrs(rows[1]!.attrs));
      await store.close();
    } finally {
      await db.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { migrate, openDatabase, type Kysely } from '@tessera/db';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeSampleCt } from '../samples/sample-ct.ts';
import { DicomStore, type DicomStoreOptions, type IndexedInstance, type SeriesEvent } from './dicom-store.ts';
import { dicomMigrations, type DicomTables } from './dicom-tables.ts';

describe('DicomStore', () => {
  let dir: string;
  let db: Kysely<DicomTables>;
  let store: DicomStore | undefined;
  let files: string[];
  let series: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-store-'));
    db = openDatabase<DicomTables>({ file: join(dir, 'db', 'tessera.db') });
    await migrate(db as Kysely<unknown>, dicomMigrations);
    ({ files, series } = await writeSampleCt(join(dir, 'in'), { slices: 4, size: 8 }));
  });

  afterEach(async () => {
    await store?.close();
    store = undefined;
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const open = (o: Partial<DicomStoreOptions> = {}): DicomStore => {
    store = new DicomStore({ db, root: join(dir, 'store'), quietPeriodMs: 60_000, ...o });
    return store;
  };
  // The files are read first so that their ingests arrive together.
  const ingestAll = async (s: DicomStore, datasetName?: string) => {
    const bytes = await Promise.all(files.map((f) => readFile(f)));
    return Promise.all(bytes.map((file) => s.ingest({ target: { projectId: 'p1', datasetName }, file })));
  };

  it('stores instances arriving together in one commit, then indexes their series, study and dataset', async () => {
    const s = open();
    const commits: IndexedInstance[][] = [];
    s.on('indexed', (batch: IndexedInstance[]) => commits.push(batch));
    const outcomes = await ingestAll(s, 'ds-a');
    expect(outcomes.map((o) => o.status)).toEqual(['stored', 'stored', 'stored', 'stored']);
    expect(commits).toHaveLength(1);
    expect(commits[0]!.map((i) => i.status)).toEqual(['stored', 'stored', 'stored', 'stored']);
    const row = await db.selectFrom('dicom_series').selectAll().where('series_uid', '=', series).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ project_id: 'p1', num_instances: 4, modality: 'CT', completed_at: null });
    const member = await db.selectFrom('dataset_series').innerJoin('datasets', 'datasets.id', 'dataset_series.dataset_id').select('datasets.name').where('series_uid', '=', series).execute();
    expect(member).toEqual([{ name: 'ds-a' }]);
    const first = outcomes[0]!;
    expect(await s.readFile(join('p1', first.studyInstanceUid, series, `${first.sopInstanceUid}.dcm`))).toEqual(await readFile(files[0]!));
    expect(readdirSync(join(dir, 'store', '.incoming'))).toEqual([]);
  });

  it('keeps a duplicate as it was but adds its series to the new dataset; refuses it under the reject policy', async () => {
    await ingestAll(open());
    const again = await ingestAll(store!, 'ds-b');
    expect(again.map((o) => o.status)).toEqual(['duplicate', 'duplicate', 'duplicate', 'duplicate']);
    const member = await db.selectFrom('dataset_series').select('series_uid').execute();
    expect(member).toEqual([{ series_uid: series }]);
    await store!.close();
    const strict = open({ duplicates: 'reject' });
    await expect(strict.ingest({ target: { projectId: 'p1' }, file: await readFile(files[0]!) })).rejects.toMatchObject({ code: 'TESSERA_CONFLICT' });
    expect((await db.selectFrom('dicom_series').select('num_instances').executeTakeFirstOrThrow()).num_instances).toBe(4);
  });

  it('refuses bytes that are not an instance, keeping nothing', async () => {
    const s = open();
    await expect(s.ingest({ target: { projectId: 'p1' }, file: Buffer.from('not DICOM at all') })).rejects.toMatchObject({ code: 'TESSERA_INVALID_DICOM' });
    expect(await db.selectFrom('dicom_instances').select('sop_uid').execute()).toEqual([]);
  });

  it('announces a series complete after its quiet period', async () => {
    const s = open({ quietPeriodMs: 100 });
    await s.start();
    const complete = new Promise<SeriesEvent>((resolve) => s.once('series-complete', resolve));
    await ingestAll(s);
    expect(await complete).toMatchObject({ projectId: 'p1', seriesUid: series });
    expect((await db.selectFrom('dicom_series').select('completed_at').executeTakeFirstOrThrow()).completed_at).not.toBeNull();
  });

  it('deletes a series: its rows, its study with its last series, its files; then the series can come again', async () => {
    const s = open();
    await ingestAll(s, 'ds-a');
    const deleted = new Promise<SeriesEvent>((resolve) => s.once('series-deleted', resolve));
    expect(await s.deleteSeries('p1', series)).toBe(4);
    expect((await deleted).seriesUid).toBe(series);
    expect(await db.selectFrom('dicom_studies').select('study_uid').execute()).toEqual([]);
    expect(await db.selectFrom('dataset_series').select('series_uid').execute()).toEqual([]);
    expect(readdirSync(join(dir, 'store', 'p1')).flatMap((study) => readdirSync(join(dir, 'store', 'p1', study)))).toEqual([]);
    await expect(s.deleteSeries('p1', series)).rejects.toMatchObject({ code: 'TESSERA_NOT_FOUND' });
    expect((await ingestAll(s, 'ds-a')).map((o) => o.status)).toEqual(['stored', 'stored', 'stored', 'stored']);
  });

  it('removes partial files a crash left in .incoming/, and refuses ingests once closing', async () => {
    mkdirSync(join(dir, 'store', '.incoming'), { recursive: true });
    writeFileSync(join(dir, 'store', '.incoming', '123-1.part'), 'half a file');
    const s = open();
    expect(existsSync(join(dir, 'store', '.incoming', '123-1.part'))).toBe(false);
    await s.close();
    await expect(s.ingest({ target: { projectId: 'p1' }, file: await readFile(files[0]!) })).rejects.toMatchObject({ code: 'TESSERA_STORAGE' });
  });
});

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type { AnswerOf, dataRoutes, Dataset, datasetRoutes, ResultFile, SeriesDetail, SeriesFacets } from '@tessera/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './__fixtures__/run-cli.ts';
import yauzl from 'yauzl';
import yazl from 'yazl';
import { dicomToolsProblem, pydicomFile, skipDicomTools } from '../../dicom/src/__fixtures__/dicom-env.ts';
import { startTestServer, writeShellExtension, type TestServer } from '../../server/src/__fixtures__/test-server.ts';
import { ApiClient } from './api-client.ts';
import type { ImportSummary } from './commands/import-command.ts';
import { seriesDeleteCommand } from './commands/series-command.ts';

type SeriesPage = AnswerOf<typeof dataRoutes.list, 200>;

const CT = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';
const MR = '1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457';
const NM = '1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457';
const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';

let server: TestServer;
let work: string;

/** Runs the real `tessera` bin as a user would, in the test's work folder. */
function tessera(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCli({ url: server.url, cwd: work, args, env });
}

function json<T>(r: { code: number; stdout: string; stderr: string }): T {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

function makeZip(entries: [string, Buffer][]): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, data] of entries) zip.addBuffer(data, name);
  zip.end();
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

function zipEntries(file: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      const names: string[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        names.push(e.fileName);
        zip.readEntry();
      });
      zip.on('end', () => resolve(names));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

// Each step runs the real CLI as a process (about a second each on a loaded machine): more time than the default.
describe.skipIf(skipDicomTools)('tessera DICOM data commands against a real server', { timeout: 60_000 }, () => {
  beforeAll(async () => {
    expect(dicomToolsProblem, 'dcmtk and pydicom (apt-get install dcmtk python3-pydicom)').toBeUndefined();
    server = await startTestServer();
    work = await mkdtemp(join(tmpdir(), 'tessera-cli-dicom-'));
  });
  afterAll(async () => {
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('imports a folder in several requests: stores DICOM, leaves out hidden files and DICOMDIR, reports a text file with the server reason, exits 1', async () => {
    const folder = join(work, 'incoming');
    await mkdir(join(folder, 'sub'), { recursive: true });
    await mkdir(join(folder, '.trash'), { recursive: true });
    await copyFile(pydicomFile('CT_small.dcm'), join(folder, 'CT_small.dcm'));
    await copyFile(pydicomFile('MR_small.dcm'), join(folder, 'MR_small.dcm'));
    await copyFile(pydicomFile('MR_small_RLE.dcm'), join(folder, 'sub', 'MR_small_RLE.dcm'));
    await copyFile(pydicomFile('JPEG2000.dcm'), join(folder, 'sub', 'JPEG2000.dcm'));
    await copyFile(pydicomFile('rtplan.dcm'), join(folder, '.trash', 'rtplan.dcm'));
    await copyFile(pydicomFile('rtplan.dcm'), join(folder, 'DICOMDIR'));
    await writeFile(join(folder, 'notes.txt'), 'scanned on Monday, see the report\n');

    const r = await tessera(['import', 'incoming', '--dataset', 'first', '--batch-files', '2', '--parallel', '2']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain('sent 5 file(s)');
    expect(r.stdout).toContain('left out 2 hidden file(s) or DICOMDIR');
    // MR_small_RLE.dcm is MR_small.dcm re-encoded: the same SOP Instance UID, so a duplicate.
    expect(r.stdout).toMatch(/stored:\s+3\n\s+duplicates:\s+1 \(already in the store\)\n\s+rejected:\s+1\n\s+series:\s+3/);
    expect(r.stdout).toMatch(/rejected files:\n {2}incoming\/notes\.txt: not a DICOM file: .*"DICM" marker/);
    expect(r.stdout).toContain('see them with: tessera series --dataset first');
    expect(r.stderr).toMatch(/^import: 5\/5 files done, 0\.\d\/0\.\d MB sent, [\d.]+ instances\/s, 1 rejected$/m);

    const page = json<SeriesPage>(await tessera(['series', '--json']));
    expect(page.total).toBe(3);
    expect(page.items.map((s) => [s.series_instance_uid, s.modality]).sort()).toEqual([[CT, 'CT'], [MR, 'MR'], [NM, 'NM']].sort());
    expect(page.items.every((s) => s.project === 'admin')).toBe(true);
  });

  it('imports a .zip as an archive and names its entries inside it; a broken .zip is rejected with the reason', async () => {
    const zip = await makeZip([
      ['plans/rtplan.dcm', await readFile(pydicomFile('rtplan.dcm'))],
      ['again/CT_small.dcm', await readFile(pydicomFile('CT_small.dcm'))],
    ]);
    await writeFile(join(work, 'archive.zip'), zip);
    const ok = json<ImportSummary>(await tessera(['import', 'archive.zip', '--dataset', 'zipped', '--json']));
    expect(ok).toMatchObject({ stored: 1, duplicates: 1, rejected: 0 });
    expect(ok.files.map((f) => [f.file, f.status])).toEqual([['archive.zip/plans/rtplan.dcm', 'stored'], ['archive.zip/again/CT_small.dcm', 'duplicate']]);

    await writeFile(join(work, 'broken.zip'), 'this is no archive');
    const bad = await tessera(['import', 'broken.zip']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/rejected:\s+1/);
    expect(bad.stdout).toMatch(/broken\.zip: not a valid \.zip archive/);
  });

  it('says what is wrong before sending: no such path, nothing to import, an unknown project', async () => {
    const missing = await tessera(['import', 'no-such-folder']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('"no-such-folder" does not exist');
    await mkdir(join(work, 'empty', '.git'), { recursive: true });
    const empty = await tessera(['import', 'empty']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('nothing to import: empty holds no files (1 hidden file(s) or DICOMDIR left out)');
    const project = await tessera(['import', 'archive.zip', '--project', 'nope']);
    expect(project.code).toBe(1);
    expect(project.stderr).toContain('project "nope" does not exist');
    const [usage, badName] = await Promise.all([tessera(['import']), tessera(['import', 'archive.zip', '--dataset', 'my scans'])]);
    expect(usage.code).toBe(2);
    expect(badName.code).toBe(2);
    expect(badName.stderr).toContain('--dataset "my scans" is not a valid dataset name');
  });

  it('searches series with filters: modality, tag, free text, study and dates, pages', async () => {
    const [ct, mrOrNm, byTag, byText, byStudy, paged] = await Promise.all([
      tessera(['series', '--modality', 'CT']),
      tessera(['series', '--modality', 'MR,NM', '--sort', 'modality', '--order', 'asc', '--json']),
      tessera(['series', '--tag', 'SliceThickness=5', '--json']),
      tessera(['series', '-q', 'MR1', '--dataset', 'first', '--json']),
      tessera(['series', '--study', CT_STUDY, '--from', '2004-01-01', '--to', '20040131', '--json']),
      tessera(['series', '--limit', '1']),
    ]);
    expect(ct.code, ct.stderr).toBe(0);
    const lines = ct.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^SERIES UID\s+MODALITY\s+PATIENT\s+STUDY DATE\s+DESCRIPTION\s+INSTANCES\s+COMPLETE$/);
    expect(lines.slice(1)).toHaveLength(1);
    expect(lines[1]).toMatch(new RegExp(`^${CT.replace(/\./g, '\\.')}\\s+CT\\s+CompressedSamples\\^CT1\\s+2004-01-19\\s+-\\s+1\\s+`));
    expect(json<SeriesPage>(mrOrNm).items.map((s) => s.modality)).toEqual(['MR', 'NM']);
    expect(json<SeriesPage>(byTag).items.map((s) => s.series_instance_uid)).toEqual([CT]);
    expect(json<SeriesPage>(byText).items.map((s) => s.series_instance_uid)).toEqual([MR]);
    expect(json<SeriesPage>(byStudy).total).toBe(1);
    expect(paged.stdout.trim().split('\n')).toHaveLength(2);
    expect(paged.stderr).toContain('(4 series in all; see more with --offset 1)');
  });

  it('shows a series with its attributes and counts facets', async () => {
    const [show, detail, facets, table] = await Promise.all([
      tessera(['series', 'show', CT]),
      tessera(['series', 'show', CT, '--json']),
      tessera(['series', 'facets', '--json']),
      tessera(['series', 'facets', '--dataset', 'first']),
    ]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^modality\s+CT$/m);
    // The duplicate CT_small.dcm of archive.zip was kept as it was, and its series joined "zipped" too.
    expect(show.stdout).toMatch(/^datasets\s+first, zipped$/m);
    expect(show.stdout).toMatch(/^ {2}SliceThickness\s+5$/m);
    expect(show.stdout).toMatch(/^ {2}OtherPatientIDsSequence\s+\(sequence of 2 items\)$/m);
    expect(json<SeriesDetail>(detail).tags.Manufacturer).toBe('GE MEDICAL SYSTEMS');
    const counts = json<SeriesFacets>(facets);
    expect(counts.modality).toEqual(expect.arrayContaining([{ value: 'CT', count: 1 }, { value: 'MR', count: 1 }, { value: 'NM', count: 1 }]));
    expect(table.stdout).toMatch(/^MODALITY\s+SERIES\nCT\s+1\nMR\s+1\nNM\s+1\n/);
  });

  it('says what is wrong with a search: usage errors exit 2, what the server refuses exits 1', async () => {
    const [badDate, badTag, badSort, missing, notUid] = await Promise.all([
      tessera(['series', '--from', 'yesterday']),
      tessera(['series', '--tag', 'NoSuchKeyword=1']),
      tessera(['series', '--sort', 'size']),
      tessera(['series', 'show', '1.2.3']),
      tessera(['series', 'show', 'CT']),
    ]);
    expect(badDate.code).toBe(2);
    expect(badDate.stderr).toContain('--from "yesterday" is not a date');
    expect(badTag.code).toBe(1);
    expect(badTag.stderr).toContain('NoSuchKeyword is neither a DICOM keyword');
    expect(badSort.code).toBe(2);
    expect(badSort.stderr).toContain("argument 'size' is invalid");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('series 1.2.3 does not exist in project "admin"');
    expect(notUid.code).toBe(2);
    expect(notUid.stderr).toContain('series "CT" is not a DICOM UID');
  });

  it('creates datasets by query and by UID, adds and removes series by UID and by query', async () => {
    const created = await tessera(['datasets', 'create', 'cohort', '--modality', 'CT', '--description', 'the CT cohort']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('created dataset cohort in project admin with 1 series');
    const byUid = json<Dataset>(await tessera(['datasets', 'create', 'picked', '--series', `${MR},${NM}`, '--json']));
    expect(byUid.series_count).toBe(2);

    const added = await tessera(['datasets', 'add', 'cohort', '--series', MR, NM]);
    expect(added.stdout).toContain('added 2 series to dataset cohort; it has 3 series');
    const removed = await tessera(['datasets', 'remove', 'cohort', '--series', NM]);
    expect(removed.stdout).toContain('removed 1 series from dataset cohort; it has 2 series');
    const removedByQuery = await tessera(['datasets', 'remove', 'cohort', '--modality', 'MR']);
    expect(removedByQuery.stdout).toContain('removed 1 series from dataset cohort; it has 1 series');
    const addedByQuery = await tessera(['datasets', 'add', 'cohort', '--in-dataset', 'picked', '--modality', 'MR']);
    expect(addedByQuery.stdout).toContain('added 1 series to dataset cohort; it has 2 series');

    const [nothing, unknown, notUid] = await Promise.all([
      tessera(['datasets', 'add', 'picked']),
      tessera(['datasets', 'create', 'bad', '--series', '1.2.3']),
      tessera(['datasets', 'add', 'picked', '--series', 'CT']),
    ]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toContain('name the series to add');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('1 series do not exist in project "admin": 1.2.3');
    expect(notUid.code).toBe(2);
  });

  it('lists datasets, shows one with its series, renames and deletes it (its series stay)', async () => {
    const [show, shown] = await Promise.all([tessera(['datasets', 'show', 'cohort']), tessera(['datasets', 'show', 'cohort', '--json'])]);
    expect(show.stdout).toMatch(/^description\s+the CT cohort$/m);
    expect(show.stdout).toMatch(/^series\s+2$/m);
    expect(show.stdout).toContain(CT);
    expect(show.stdout).toContain(MR);
    const d = json<Dataset & { series: AnswerOf<typeof datasetRoutes.listSeries, 200> }>(shown);
    expect(d.series.items.map((s) => s.series_instance_uid).sort()).toEqual([CT, MR].sort());

    const renamed = await tessera(['datasets', 'rename', 'cohort', 'cohort-2024']);
    expect(renamed.stdout).toContain('renamed dataset cohort to cohort-2024 (2 series)');
    const [list, filtered] = await Promise.all([tessera(['datasets']), tessera(['datasets', '--query', 'cohort', '--json'])]);
    expect(list.stdout).toMatch(/^NAME\s+SERIES\s+CREATED\s+UPDATED\s+DESCRIPTION$/m);
    expect(list.stdout).toMatch(/^cohort-2024\s+2\s+\S+\s+\S+\s+the CT cohort$/m);
    expect(json<AnswerOf<typeof datasetRoutes.list, 200>>(filtered).items.map((x) => x.name)).toEqual(['cohort-2024']);

    const deleted = await tessera(['datasets', 'delete', 'cohort-2024']);
    expect(deleted.stdout).toContain('deleted dataset cohort-2024; its 2 series stay in the store');
    const [gone, all] = await Promise.all([tessera(['datasets', 'show', 'cohort-2024']), tessera(['series', '--json'])]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('dataset "cohort-2024" does not exist');
    expect(json<SeriesPage>(all).total).toBe(4);
  });

  it('exports a series, a study and a dataset as valid .zip files of DICOM instances', async () => {
    const r = await tessera(['export', '--series', CT]);
    expect(r.code, r.stderr).toBe(0);
    const name = `series-${CT}.zip`;
    expect(r.stdout).toContain(`wrote ${name}`);
    expect(r.stderr).toMatch(new RegExp(`^downloaded ${name.replace(/\./g, '\\.')}: [\\d.]+ KB in [\\d.]+ s$`, 'm'));
    const bytes = await readFile(join(work, name));
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('PK\x03\x04');
    expect(await zipEntries(join(work, name))).toEqual([`${CT_STUDY}/${CT}/1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322.dcm`]);

    const again = await tessera(['export', '--series', CT]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`${name} exists already: choose another name with -o, or overwrite it with --force`);
    expect((await tessera(['export', '--series', CT, '--force'])).code).toBe(0);

    const study = json<{ file: string; bytes: number }>(await tessera(['export', '--study', CT_STUDY, '-o', 'out/study.zip', '--json']));
    expect(study.file).toBe(join(work, 'out', 'study.zip'));
    expect(await zipEntries(study.file)).toHaveLength(1);

    const dataset = await tessera(['export', '--dataset', 'first', '-o', 'first.zip']);
    expect(dataset.code, dataset.stderr).toBe(0);
    const entries = await zipEntries(join(work, 'first.zip'));
    expect(entries).toHaveLength(3);
    expect(entries.every((e) => e.endsWith('.dcm'))).toBe(true);

    const none = await tessera(['export']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('say what to export: --series UID, --study UID or --dataset NAME');
    const two = await tessera(['export', '--series', CT, '--dataset', 'first']);
    expect(two.code).toBe(2);
    const missing = await tessera(['export', '--dataset', 'nope', '-o', 'nope.zip']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('dataset "nope" does not exist');
  });

  it('lists and downloads the result files of a run', async () => {
    await writeShellExtension(server.extRoot, 'cli-results', [
      {
        id: 'publish-report',
        tasks: [
          { id: 'make', sh: 'mkdir -p "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/tables" && echo "42 nodules" > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/report.txt" && echo "a,b" > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/tables/t.csv"' },
          { id: 'publish', builtin: 'put-files', input_dir: 'make', upstream: ['make'] },
        ],
      },
    ]);
    await server.call('POST', '/api/workflows/reload');
    const run = await tessera(['run', 'publish-report']);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const runId = /(r-[a-z0-9]+-[0-9a-z]+)/.exec(run.stdout)![1]!;

    const list = await tessera(['results']);
    expect(list.stdout).toMatch(new RegExp(`^${runId}\\s+make/report\\.txt\\s+11 B\\s+`, 'm'));
    const items = json<ResultFile[]>(await tessera(['results', '--run', runId, '--json']));
    expect(items.map((i) => i.path)).toEqual(['make/report.txt', 'make/tables/t.csv']);

    const dl = await tessera(['results', '--run', runId, '--download', 'results']);
    expect(dl.code, dl.stderr).toBe(0);
    expect(dl.stdout).toContain('downloaded 2 file(s)');
    expect(await readFile(join(work, 'results', runId, 'make', 'report.txt'), 'utf8')).toBe('42 nodules\n');
    expect(await readFile(join(work, 'results', runId, 'make', 'tables', 't.csv'), 'utf8')).toBe('a,b\n');
    const again = await tessera(['results', '--run', runId, '--download', 'results']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('exists already');
    expect((await tessera(['results', '--run', 'not a run'])).code).toBe(2);
  });

  it('deletes series: refuses without a terminal, asks on one, deletes with --yes', async () => {
    const refused = await tessera(['series', 'delete', NM]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('refusing to delete 1 series without confirmation: there is no terminal to ask on. Add --yes');

    // On a terminal (streams that say they are one), in process: a "no" keeps the series.
    const api = new ApiClient(server.url);
    const answer = async (text: string) => {
      const input = Object.assign(new PassThrough(), { isTTY: true });
      const output = Object.assign(new PassThrough(), { isTTY: true });
      output.resume();
      setTimeout(() => input.write(text), 50);
      return seriesDeleteCommand(api, [NM], { project: 'admin' }, { input, output });
    };
    expect(await answer('n\n')).toBe(1);
    expect((await server.call('GET', `/api/series/${NM}`)).status).toBe(200);
    expect(await answer('y\n')).toBe(0);
    expect((await server.call('GET', `/api/series/${NM}`)).status).toBe(404);

    const r = await tessera(['series', 'delete', MR, '--yes']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`deleted series ${MR} (1 instance)`);
    const missing = await tessera(['series', 'delete', MR, '--yes']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`series ${MR} does not exist`);
    const page = json<SeriesPage>(await tessera(['series', '--json']));
    expect(page.items.map((s) => s.modality).sort()).toEqual(['CT', 'RTPLAN']);
  });
});

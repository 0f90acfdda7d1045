import { EventEmitter } from 'node:events';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { invalidDicom, type DicomDataset } from '../parse/dataset-reader.ts';
import { readDatasetFile } from '../parse/dataset-file.ts';
import { readDatasetOf, readPart10 } from '../parse/part10-reader.ts';
import { deleteSeriesRows } from './delete-series-rows.ts';
import type { DicomTables, InstancesTable } from './dicom-tables.ts';
import { IncomingWriter } from './incoming-writer.ts';
import { IndexWriter } from './index-writer.ts';
import { instanceRecord, instanceUids, type InstanceUids } from './index-record.ts';
import type { IngestOutcome, IngestTarget } from './ingest-outcome.ts';
import { part10Header } from './part10-writer.ts';
import { SeriesCompletion } from './series-completion.ts';

export type { IndexedInstance, IngestOutcome, IngestTarget, SeriesEvent } from './ingest-outcome.ts';

/** What to do when an instance arrives whose SOP Instance UID the project already holds. */
export type DuplicatePolicy = 'keep' | 'replace' | 'reject';

export interface DicomStoreOptions {
  db: Kysely<DicomTables>;
  /** Folder of the files: `<root>/<project id>/<study>/<series>/<sop>.dcm`. */
  root: string;
  /** fsync each file and its folder before acknowledging (survives power loss; costs a disk flush per instance). */
  fsync?: boolean;
  duplicates?: DuplicatePolicy;
  /** A series counts as complete this long after its last instance arrived (ms). */
  quietPeriodMs?: number;
  /** Largest instance, also once a deflated dataset is inflated (default 1 GiB). */
  maxInstanceBytes?: number;
  log?: { warn(msg: string): void; error(msg: string): void };
}

export interface IngestInput {
  target: IngestTarget;
  /** A DICOM Part 10 file (uploads, STOW-RS). */
  file?: Buffer;
  /** Refuse an instance of another study (STOW-RS to /studies/{study}). */
  requireStudyUid?: string;
  /**
   * A dataset received without file meta information (C-STORE): its bytes, or a file
   * holding them (a large dataset spooled to disk), which is read in pieces and copied
   * into the store, never held whole in memory. The caller deletes that file.
   */
  dataset?: { bytes: Buffer | DatasetFile; transferSyntaxUid: string; sopClassUid: string; sopInstanceUid: string; sourceAe?: string };
}

/** A dataset's bytes in a file (no meta information). */
export interface DatasetFile {
  path: string;
  bytes: number;
}

interface Parsed {
  uids: InstanceUids;
  ds: DicomDataset;
  transferSyntaxUid: string;
  /** Preamble and meta information to write before `body` (datasets received without them). */
  header?: Buffer;
  body: Buffer | DatasetFile;
}

/**
 * The DICOM store: files on disk and their index in the database. An instance is
 * acknowledged (the promise of {@link ingest} resolves) only once its file is
 * written and its index rows are committed, so a killed server loses nothing it
 * acknowledged. Index writes of instances arriving together share one commit.
 * The parts: {@link IncomingWriter} (files), {@link IndexWriter} (index batches),
 * {@link SeriesCompletion} (series-complete), {@link deleteSeriesRows}.
 */
export class DicomStore extends EventEmitter {
  readonly root: string;
  readonly #db: Kysely<DicomTables>;
  readonly #o: DicomStoreOptions;
  readonly #files: IncomingWriter;
  readonly #index: IndexWriter;
  readonly #completion: SeriesCompletion;
  /** Instances being ingested, by project and SOP Instance UID: a second copy waits for the first. */
  readonly #inFlight = new Map<string, Promise<unknown>>();
  /** Series being deleted, by `project|series`. */
  readonly #deleting = new Map<string, Promise<unknown>>();
  #closed = false;

  constructor(options: DicomStoreOptions) {
    super();
    this.setMaxListeners(0);
    this.#o = options;
    this.#db = options.db;
    this.root = options.root;
    this.#files = new IncomingWriter({ root: options.root, fsync: options.fsync });
    this.#completion = new SeriesCompletion({ db: options.db, quietPeriodMs: options.quietPeriodMs, log: options.log, onComplete: (e) => this.emit('series-complete', e) });
    this.#index = new IndexWriter({ db: options.db, root: options.root, events: this, log: options.log, onIndexed: (projectId, uids) => this.#completion.touch(projectId, uids) });
    // Files a killed server had put in place but not yet indexed: never acknowledged, so removed.
    const removed = this.#files.recoverPending((relative) => {
      const [projectId, , , name] = relative.split('/');
      return name !== undefined && this.#index.storedInstance(projectId!, name.replace(/\.dcm$/, ''))?.path === relative;
    });
    if (removed > 0) options.log?.warn(`removed ${removed} instance file(s) written just before a crash and never indexed (never acknowledged)`);
  }

  get duplicatePolicy(): DuplicatePolicy {
    return this.#o.duplicates ?? 'keep';
  }

  /** Starts the completion watcher; series left incomplete by a previous run are picked up. */
  async start(): Promise<void> {
    await this.#completion.start();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#completion.stop();
    while (this.#index.busy) await new Promise((r) => setTimeout(r, 5));
  }

  /** A folder on the store's disk for temporary files of ingests (emptied at start). */
  get incomingDir(): string {
    return this.#files.incomingDir;
  }

  /** Absolute path of a stored file from its index path. */
  filePath(relative: string): string {
    return join(this.root, relative);
  }

  /**
   * Validates, writes and indexes one instance. Rejects with TESSERA_INVALID_DICOM
   * (nothing is kept) when the bytes are not a valid instance, TESSERA_CONFLICT for a
   * duplicate under the `reject` policy, TESSERA_STORAGE when the disk fails.
   */
  async ingest(input: IngestInput): Promise<IngestOutcome> {
    if (this.#closed) throw new TesseraError('TESSERA_STORAGE', 'the DICOM store is shutting down; send again once the server is back');
    const parsed = await this.#parse(input);
    if (input.requireStudyUid && parsed.uids.studyInstanceUid !== input.requireStudyUid) {
      throw invalidDicom(`the instance belongs to study ${parsed.uids.studyInstanceUid}, not to study ${input.requireStudyUid} of the request URL`);
    }
    const key = `${input.target.projectId}|${parsed.uids.sopInstanceUid}`;
    for (let before = this.#inFlight.get(key); before; before = this.#inFlight.get(key)) await before.catch(() => undefined);
    // A series being deleted takes no instance until its delete is done (then it starts anew).
    const seriesKey = `${input.target.projectId}|${parsed.uids.seriesInstanceUid}`;
    for (let deleting = this.#deleting.get(seriesKey); deleting; deleting = this.#deleting.get(seriesKey)) await deleting.catch(() => undefined);
    const work = this.#store(input, parsed);
    this.#inFlight.set(key, work);
    try {
      return await work;
    } finally {
      if (this.#inFlight.get(key) === work) this.#inFlight.delete(key);
    }
  }

  async #parse(input: IngestInput): Promise<Parsed> {
    if (input.file) {
      const p = readPart10(input.file, { maxInflatedBytes: this.#o.maxInstanceBytes });
      const uids = instanceUids(p.dataset);
      return { uids, ds: p.dataset, transferSyntaxUid: p.transferSyntaxUid, body: input.file };
    }
    const d = input.dataset;
    if (!d) throw new Error('ingest needs a file or a dataset');
    const ds = Buffer.isBuffer(d.bytes)
      ? readDatasetOf(d.bytes, d.transferSyntaxUid, { maxInflatedBytes: this.#o.maxInstanceBytes })
      : await readDatasetFile(d.bytes.path, d.transferSyntaxUid, { maxInflatedBytes: this.#o.maxInstanceBytes });
    const uids = instanceUids(ds);
    if (uids.sopInstanceUid !== d.sopInstanceUid) {
      throw invalidDicom(`the dataset's SOP Instance UID ${uids.sopInstanceUid} differs from the one of the request (${d.sopInstanceUid})`);
    }
    if (uids.sopClassUid !== d.sopClassUid) {
      throw invalidDicom(`the dataset's SOP Class UID ${uids.sopClassUid} differs from the one of the request (${d.sopClassUid})`);
    }
    const header = part10Header({ sopClassUid: d.sopClassUid, sopInstanceUid: d.sopInstanceUid, transferSyntaxUid: d.transferSyntaxUid, sourceAe: d.sourceAe });
    return { uids, ds, transferSyntaxUid: d.transferSyntaxUid, header, body: d.bytes };
  }

  async #store(input: IngestInput, p: Parsed): Promise<IngestOutcome> {
    const { uids } = p;
    const projectId = input.target.projectId;
    const existing = this.#index.storedInstance(projectId, uids.sopInstanceUid);
    const size = (p.header?.length ?? 0) + (Buffer.isBuffer(p.body) ? p.body.length : p.body.bytes);
    const seriesStudy = this.#index.studyOfSeries(projectId, uids.seriesInstanceUid);
    if (seriesStudy !== undefined && seriesStudy !== uids.studyInstanceUid) {
      throw invalidDicom(`series ${uids.seriesInstanceUid} belongs to study ${seriesStudy}; this instance names study ${uids.studyInstanceUid}`);
    }
    const outcome = (status: IngestOutcome['status']): IngestOutcome => ({ ...uids, status, transferSyntaxUid: p.transferSyntaxUid, sizeBytes: size });
    if (existing) {
      if (this.duplicatePolicy === 'keep') {
        // The copy stays as it was; its series still joins the dataset this import names.
        if (input.target.datasetName && !this.#index.knowsMembership(projectId, existing.series_uid, input.target.datasetName)) {
          await this.#index.write({ membershipOnly: existing.series_uid, uids, target: input.target, ds: p.ds, row: undefined as never, replacing: false });
        }
        return outcome('duplicate');
      }
      if (this.duplicatePolicy === 'reject') {
        throw new TesseraError('TESSERA_CONFLICT', `SOP Instance ${uids.sopInstanceUid} is already stored in this project (duplicate policy "reject")`);
      }
      if (existing.series_uid !== uids.seriesInstanceUid) {
        throw new TesseraError('TESSERA_CONFLICT', `SOP Instance ${uids.sopInstanceUid} is already stored in series ${existing.series_uid}; a replacement must stay in its series (delete the old series first)`);
      }
    }
    const relative = join(projectId, uids.studyInstanceUid, uids.seriesInstanceUid, `${uids.sopInstanceUid}.dcm`);
    if (Buffer.isBuffer(p.body)) this.#files.write(relative, p.header ? [p.header, p.body] : [p.body]);
    else await this.#files.writeWithFile(relative, p.header ?? Buffer.alloc(0), p.body.path);
    const now = Date.now();
    const rec = instanceRecord(p.ds);
    const row: InstancesTable = {
      project_id: projectId,
      sop_uid: uids.sopInstanceUid,
      series_uid: uids.seriesInstanceUid,
      study_uid: uids.studyInstanceUid,
      sop_class_uid: uids.sopClassUid,
      instance_number: rec.instance_number,
      transfer_syntax: p.transferSyntaxUid,
      size_bytes: size,
      path: relative,
      attrs: rec.attrs,
      received_at: now,
    };
    let status: Awaited<ReturnType<IndexWriter['write']>>;
    try {
      status = await this.#index.write({ uids, target: input.target, ds: p.ds, row, replacing: existing !== undefined, replacedSize: existing?.size_bytes });
    } catch (err) {
      this.#files.abandon(relative);
      throw err;
    }
    this.#files.settle(relative);
    return outcome(status);
  }

  /** Forgets what the store remembers of a dataset (after it was renamed or deleted). */
  forgetDataset(projectId: string, name: string): void {
    this.#index.forgetDataset(projectId, name);
  }

  /** Forgets what the store remembers of a series (after it was deleted). */
  forgetSeries(projectId: string, seriesUid: string): void {
    this.#completion.forget(projectId, seriesUid);
    this.#index.forgetSeries(projectId, seriesUid);
  }

  /** Resolves once every queued index write has committed. */
  async #idle(): Promise<void> {
    while (this.#index.busy) await new Promise((r) => setTimeout(r, 1));
  }

  /**
   * Deletes a series: index rows and dataset memberships in one transaction, then its
   * files. New instances of the series wait until it is done; instances already written
   * are committed first, so none is acknowledged and then deleted under it.
   */
  async deleteSeries(projectId: string, seriesUid: string): Promise<number> {
    const key = `${projectId}|${seriesUid}`;
    while (this.#deleting.has(key)) await this.#deleting.get(key)!.catch(() => undefined);
    const work = this.#deleteSeries(projectId, seriesUid);
    this.#deleting.set(key, work);
    try {
      return await work;
    } finally {
      this.#deleting.delete(key);
    }
  }

  async #deleteSeries(projectId: string, seriesUid: string): Promise<number> {
    await this.#idle();
    const removed = await deleteSeriesRows(this.#db, projectId, seriesUid);
    if (!removed) throw new TesseraError('TESSERA_NOT_FOUND', `series ${seriesUid} does not exist in this project`);
    this.forgetSeries(projectId, seriesUid);
    for (const folder of removed.folders) {
      await rm(join(this.root, folder), { recursive: true, force: true });
      this.#files.forgetFolder(folder);
    }
    await rm(join(this.root, 'thumbnails', projectId, `${seriesUid}.png`), { force: true });
    this.emit('series-deleted', { projectId, seriesUid, studyUid: removed.studyUid });
    return removed.instances;
  }

  /** Reads a stored file. */
  async readFile(relative: string): Promise<Buffer> {
    try {
      return await readFile(join(this.root, relative));
    } catch (err) {
      throw new TesseraError('TESSERA_STORAGE', `the stored file ${relative} cannot be read: ${(err as Error).message}`, { cause: err });
    }
  }
}

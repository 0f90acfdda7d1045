import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync, writevSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { nativeDatabase, sql, withNativeConnection, type Kysely, type NativeDatabase, type NativeStatement } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { invalidDicom, type DicomDataset } from '../parse/dataset-reader.ts';
import { readDatasetOf, readPart10 } from '../parse/part10-reader.ts';
import type { DicomTables, InstancesTable } from './dicom-tables.ts';
import { instanceRecord, instanceUids, seriesRecord, studyRecord, type InstanceUids } from './index-record.ts';
import { part10Header } from './part10-writer.ts';

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

/** Where an instance goes: its project, and the dataset its series joins (created with the first instance stored into it). */
export interface IngestTarget {
  projectId: string;
  datasetName?: string;
}

export interface IngestInput {
  target: IngestTarget;
  /** A DICOM Part 10 file (uploads, STOW-RS). */
  file?: Buffer;
  /** Refuse an instance of another study (STOW-RS to /studies/{study}). */
  requireStudyUid?: string;
  /** A dataset received without file meta information (C-STORE). */
  dataset?: { bytes: Buffer; transferSyntaxUid: string; sopClassUid: string; sopInstanceUid: string; sourceAe?: string };
}

export interface IngestOutcome extends InstanceUids {
  /** stored: new; duplicate: already held, kept as it was (policy keep); replaced: the new copy replaced the old (policy replace). */
  status: 'stored' | 'duplicate' | 'replaced';
  transferSyntaxUid: string;
  sizeBytes: number;
}

/** Emitted with 'series-complete' once a series had no new instance for the quiet period. */
export interface SeriesEvent {
  projectId: string;
  seriesUid: string;
  studyUid: string;
}

/** Emitted with 'indexed' after each index commit: one entry per instance the commit stored, replaced or found a duplicate of. */
export interface IndexedInstance {
  projectId: string;
  seriesUid: string;
  studyUid: string;
  datasetName: string | undefined;
  status: IngestOutcome['status'];
}

interface Parsed {
  uids: InstanceUids;
  ds: DicomDataset;
  transferSyntaxUid: string;
  /** Preamble and meta information to write before `body` (datasets received without them). */
  header?: Buffer;
  body: Buffer;
}

interface Pending {
  /** A duplicate kept as it was: only its series joins the target dataset. */
  membershipOnly?: string;
  uids: InstanceUids;
  target: IngestTarget;
  ds: DicomDataset;
  row: InstancesTable;
  replacing: boolean;
  replacedSize?: number;
  resolve: (status: IngestOutcome['status']) => void;
  reject: (err: Error) => void;
}

/**
 * The DICOM store: files on disk and their index in the database. An instance is
 * acknowledged (the promise of {@link ingest} resolves) only once its file is
 * written and its index rows are committed, so a killed server loses nothing it
 * acknowledged. Index writes of instances arriving together share one commit.
 */
export class DicomStore extends EventEmitter {
  readonly root: string;
  readonly #db: Kysely<DicomTables>;
  readonly #o: DicomStoreOptions;
  readonly #incoming: string;
  readonly #madeDirs = new Set<string>();
  /** Series known to have their index row (so that the next instance only bumps counters). */
  readonly #knownSeries = new Set<string>();
  /** Instances being ingested, by project and SOP Instance UID: a second copy waits for the first. */
  readonly #inFlight = new Map<string, Promise<unknown>>();
  /** Series being deleted, by `project|series`. */
  readonly #deleting = new Map<string, Promise<unknown>>();
  /** The study of each series known to exist, by `project|series`: an instance must name its series' study. */
  readonly #seriesStudy = new Map<string, string>();
  /** Series that received instances and are not yet complete: key -> last arrival. */
  readonly #active = new Map<string, { event: SeriesEvent; last: number }>();
  readonly #statements = new Map<string, NativeStatement>();
  /** Dataset ids by `project|name`, for ingest routing. */
  readonly #datasetIds = new Map<string, string>();
  #tx: ((run: () => IngestOutcome['status'][]) => IngestOutcome['status'][]) | undefined;
  #fileCounter = 0;
  #pending: Pending[] = [];
  #flushing = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: DicomStoreOptions) {
    super();
    this.setMaxListeners(0);
    this.#o = options;
    this.#db = options.db;
    this.root = options.root;
    this.#incoming = join(options.root, '.incoming');
    mkdirSync(this.#incoming, { recursive: true });
    // Files of ingests cut short by a crash: never acknowledged, never indexed.
    for (const f of readdirSync(this.#incoming)) rmSync(join(this.#incoming, f), { force: true });
  }

  get duplicatePolicy(): DuplicatePolicy {
    return this.#o.duplicates ?? 'keep';
  }

  /** Starts the completion watcher; series left incomplete by a previous run are picked up. */
  async start(): Promise<void> {
    const open = await this.#db
      .selectFrom('dicom_series')
      .select(['project_id', 'series_uid', 'study_uid', 'updated_at'])
      .where('completed_at', 'is', null)
      .execute();
    for (const s of open) {
      this.#active.set(`${s.project_id}|${s.series_uid}`, { event: { projectId: s.project_id, seriesUid: s.series_uid, studyUid: s.study_uid }, last: Number(s.updated_at) });
    }
    const quiet = this.#o.quietPeriodMs ?? 5000;
    this.#timer = setInterval(() => void this.#completeQuietSeries(), Math.max(50, Math.min(1000, quiet / 4)));
    this.#timer.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    while (this.#pending.length > 0 || this.#flushing) await new Promise((r) => setTimeout(r, 5));
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
    const parsed = this.#parse(input);
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

  #parse(input: IngestInput): Parsed {
    if (input.file) {
      const p = readPart10(input.file, { maxInflatedBytes: this.#o.maxInstanceBytes });
      const uids = instanceUids(p.dataset);
      return { uids, ds: p.dataset, transferSyntaxUid: p.transferSyntaxUid, body: input.file };
    }
    const d = input.dataset;
    if (!d) throw new Error('ingest needs a file or a dataset');
    const ds = readDatasetOf(d.bytes, d.transferSyntaxUid, { maxInflatedBytes: this.#o.maxInstanceBytes });
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
    // A synchronous read: the hot path of every instance, no transaction needed.
    const native = nativeDatabase(this.#db);
    const existing = this.#stmt(native, 'select path, series_uid, size_bytes from dicom_instances where project_id = ? and sop_uid = ?').get(projectId, uids.sopInstanceUid) as
      | { path: string; series_uid: string; size_bytes: number }
      | undefined;
    const size = (p.header?.length ?? 0) + p.body.length;
    const seriesStudy = this.#studyOfSeries(projectId, uids.seriesInstanceUid);
    if (seriesStudy !== undefined && seriesStudy !== uids.studyInstanceUid) {
      throw invalidDicom(`series ${uids.seriesInstanceUid} belongs to study ${seriesStudy}; this instance names study ${uids.studyInstanceUid}`);
    }
    const outcome = (status: IngestOutcome['status']): IngestOutcome => ({ ...uids, status, transferSyntaxUid: p.transferSyntaxUid, sizeBytes: size });
    if (existing) {
      if (this.duplicatePolicy === 'keep') {
        // The copy stays as it was; its series still joins the dataset this import names.
        if (input.target.datasetName && !this.#knownSeries.has(`${projectId}|${existing.series_uid}|${input.target.datasetName}`)) {
          await new Promise<IngestOutcome['status']>((resolve, reject) => {
            this.#pending.push({ membershipOnly: existing.series_uid, uids, target: input.target, ds: p.ds, row: undefined as never, replacing: false, resolve, reject });
            if (this.#pending.length === 1 && !this.#flushing) setImmediate(() => void this.#flush());
          });
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
    this.#writeFile(relative, p.header ? [p.header, p.body] : [p.body]);
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
    const status = await new Promise<IngestOutcome['status']>((resolve, reject) => {
      this.#pending.push({ uids, target: input.target, ds: p.ds, row, replacing: existing !== undefined, replacedSize: existing?.size_bytes, resolve, reject });
      if (this.#pending.length === 1 && !this.#flushing) setImmediate(() => void this.#flush());
    });
    return outcome(status);
  }

  /** Writes to `.incoming/` then renames into place: a crash never leaves a partial file at a stored path. */
  #writeFile(relative: string, parts: Buffer[]): void {
    const target = join(this.root, relative);
    const dir = dirname(target);
    const tmp = join(this.#incoming, `${process.pid}-${++this.#fileCounter}.part`);
    try {
      if (!this.#madeDirs.has(dir)) {
        mkdirSync(dir, { recursive: true });
        if (this.#madeDirs.size > 10_000) this.#madeDirs.clear();
        this.#madeDirs.add(dir);
      }
      // Synchronous: for files of this size a thread-pool round trip costs more than the write.
      const fd = openSync(tmp, 'w');
      try {
        if (parts.length === 1) writeSync(fd, parts[0]!);
        else writevSync(fd, parts);
        if (this.#o.fsync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, target);
      if (this.#o.fsync) {
        const dfd = openSync(dir, 'r');
        try {
          fsyncSync(dfd);
        } finally {
          closeSync(dfd);
        }
      }
    } catch (err) {
      rmSync(tmp, { force: true });
      const code = (err as NodeJS.ErrnoException).code;
      throw new TesseraError('TESSERA_STORAGE', `could not write ${target}: ${(err as Error).message}${code === 'ENOSPC' ? ' (the disk is full: free space, then send again)' : ''}`, { cause: err });
    }
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        try {
          const statuses = await withNativeConnection(this.#db, (native) => this.#index(native, batch));
          batch.forEach((p, i) => p.resolve(statuses[i]!));
          if (this.listenerCount('indexed') > 0) {
            const indexed: IndexedInstance[] = batch.map((p, i) => ({
              projectId: p.target.projectId, seriesUid: p.uids.seriesInstanceUid, studyUid: p.uids.studyInstanceUid, datasetName: p.target.datasetName, status: statuses[i]!,
            }));
            // After the commit: a listener's fault must not be taken for an index failure.
            try {
              this.emit('indexed', indexed);
            } catch (err) {
              this.#o.log?.error(`an 'indexed' listener failed: ${(err as Error).message}`);
            }
          }
        } catch (err) {
          for (const p of batch) {
            const k = `${p.target.projectId}|${p.uids.seriesInstanceUid}`;
            this.#knownSeries.delete(k);
            this.#seriesStudy.delete(k);
            if (p.target.datasetName) this.#knownSeries.delete(`${k}|${p.target.datasetName}`);
          }
          const e = new TesseraError('TESSERA_STORAGE', `could not index ${batch.length} instance(s): ${(err as Error).message}`, { cause: err });
          this.#datasetIds.clear();
          for (const p of batch) {
            // Nothing half-written: a file whose index row was not committed goes.
            if (!p.replacing && !p.membershipOnly) rmSync(join(this.root, p.row.path), { force: true });
            p.reject(e);
          }
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** A prepared statement of the native connection, cached by its SQL. */
  #stmt(native: NativeDatabase, text: string): NativeStatement {
    let st = this.#statements.get(text);
    if (!st) {
      st = native.prepare(text);
      this.#statements.set(text, st);
    }
    return st;
  }

  /**
   * Writes the index rows of a batch in one synchronous transaction on the native
   * connection: Kysely's per-query cost was over half of an instance's ingest
   * (ADR 0006). The SQL is portable (ON CONFLICT, no SQLite-only syntax).
   */
  #index(native: NativeDatabase, batch: Pending[]): IngestOutcome['status'][] {
    const q = (text: string) => this.#stmt(native, text);
    this.#tx ??= native.transaction((run: () => IngestOutcome['status'][]) => run());
    return this.#tx(() => {
      const statuses: IngestOutcome['status'][] = [];
      const now = Date.now();
      for (const p of batch) {
        const { row, target, uids, ds } = p;
        const pid = target.projectId;
        if (p.membershipOnly) {
          this.#joinDataset(native, pid, p.membershipOnly, target.datasetName!, now);
          statuses.push('duplicate');
          continue;
        }
        if (p.replacing) {
          q('update dicom_instances set transfer_syntax = ?, size_bytes = ?, attrs = ?, instance_number = ?, received_at = ? where project_id = ? and sop_uid = ?').run(
            row.transfer_syntax, row.size_bytes, row.attrs, row.instance_number, row.received_at, pid, row.sop_uid,
          );
          q('update dicom_series set size_bytes = size_bytes + ?, updated_at = ?, completed_at = null where project_id = ? and series_uid = ?').run(
            row.size_bytes - (p.replacedSize ?? row.size_bytes), now, pid, row.series_uid,
          );
          if (target.datasetName) this.#joinDataset(native, pid, row.series_uid, target.datasetName, now);
          statuses.push('replaced');
          this.#touch(pid, uids);
          continue;
        }
        const inserted = q(
          'insert into dicom_instances (project_id, sop_uid, series_uid, study_uid, sop_class_uid, instance_number, transfer_syntax, size_bytes, path, attrs, received_at) ' +
            'values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (project_id, sop_uid) do nothing',
        ).run(pid, row.sop_uid, row.series_uid, row.study_uid, row.sop_class_uid, row.instance_number, row.transfer_syntax, row.size_bytes, row.path, row.attrs, row.received_at);
        if (inserted.changes === 0) {
          statuses.push('duplicate');
          continue;
        }
        const seriesKey = `${pid}|${uids.seriesInstanceUid}`;
        const newSeries = !this.#knownSeries.has(seriesKey) && q('select 1 from dicom_series where project_id = ? and series_uid = ?').get(pid, uids.seriesInstanceUid) === undefined;
        if (newSeries) {
          const se = seriesRecord(ds);
          q(
            'insert into dicom_series (project_id, series_uid, study_uid, modality, series_number, series_description, body_part, manufacturer, series_date, patient_id, patient_name, ' +
              'study_date, study_description, num_instances, size_bytes, attrs, search_text, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)',
          ).run(
            pid, uids.seriesInstanceUid, uids.studyInstanceUid, se.modality, se.series_number, se.series_description, se.body_part, se.manufacturer, se.series_date,
            se.patient_id, se.patient_name, se.study_date, se.study_description, row.size_bytes, se.attrs, se.search_text, now, now,
          );
          q('insert into dicom_series_tags (project_id, series_uid, tags) values (?, ?, ?) on conflict (project_id, series_uid) do update set tags = excluded.tags').run(pid, uids.seriesInstanceUid, se.tags);
          const st = studyRecord(ds);
          q(
            'insert into dicom_studies (project_id, study_uid, patient_id, patient_name, patient_birth_date, study_date, study_time, accession_number, study_id, study_description, ' +
              "referring_physician, modalities, num_series, attrs, created_at, updated_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 1, ?, ?, ?) " +
              'on conflict (project_id, study_uid) do update set num_series = dicom_studies.num_series + 1, updated_at = excluded.updated_at',
          ).run(
            pid, uids.studyInstanceUid, st.patient_id, st.patient_name, st.patient_birth_date, st.study_date, st.study_time, st.accession_number, st.study_id,
            st.study_description, st.referring_physician, st.attrs, now, now,
          );
          const mods = q('select distinct modality from dicom_series where project_id = ? and study_uid = ? and modality is not null').all(pid, uids.studyInstanceUid) as { modality: string }[];
          q('update dicom_studies set modalities = ? where project_id = ? and study_uid = ?').run(mods.map((m) => m.modality).sort().join('\\'), pid, uids.studyInstanceUid);
        } else {
          q('update dicom_series set num_instances = num_instances + 1, size_bytes = size_bytes + ?, updated_at = ?, completed_at = null where project_id = ? and series_uid = ?').run(
            row.size_bytes, now, pid, uids.seriesInstanceUid,
          );
        }
        if (target.datasetName && (newSeries || !this.#knownSeries.has(`${seriesKey}|${target.datasetName}`))) {
          this.#joinDataset(native, pid, uids.seriesInstanceUid, target.datasetName, now);
        }
        this.#remember(seriesKey);
        this.#seriesStudy.set(seriesKey, uids.studyInstanceUid);
        this.#touch(pid, uids);
        statuses.push('stored');
      }
      return statuses;
    });
  }

  /** Puts a series into a dataset (creating the dataset on first use), inside the index transaction. */
  #joinDataset(native: NativeDatabase, projectId: string, seriesUid: string, datasetName: string, now: number): void {
    const key = `${projectId}|${datasetName}`;
    let id = this.#datasetIds.get(key);
    if (!id) {
      this.#stmt(native, 'insert into datasets (id, project_id, name, description, created_at, updated_at) values (?, ?, ?, null, ?, ?) on conflict (project_id, name) do nothing').run(
        randomUUID(), projectId, datasetName, now, now,
      );
      id = (this.#stmt(native, 'select id from datasets where project_id = ? and name = ?').get(projectId, datasetName) as { id: string }).id;
      this.#datasetIds.set(key, id);
    }
    this.#stmt(native, 'insert into dataset_series (dataset_id, project_id, series_uid, added_at) values (?, ?, ?, ?) on conflict (dataset_id, series_uid) do nothing').run(id, projectId, seriesUid, now);
    this.#remember(`${projectId}|${seriesUid}|${datasetName}`);
  }

  /** Forgets what the store remembers of a dataset (after it was renamed or deleted). */
  forgetDataset(projectId: string, name: string): void {
    this.#datasetIds.delete(`${projectId}|${name}`);
    const suffix = `|${name}`;
    for (const k of this.#knownSeries) if (k.startsWith(`${projectId}|`) && k.endsWith(suffix)) this.#knownSeries.delete(k);
  }

  /** The study of a stored series (cached), or undefined for a new series. */
  #studyOfSeries(projectId: string, seriesUid: string): string | undefined {
    const key = `${projectId}|${seriesUid}`;
    const cached = this.#seriesStudy.get(key);
    if (cached) return cached;
    const row = this.#stmt(nativeDatabase(this.#db), 'select study_uid from dicom_series where project_id = ? and series_uid = ?').get(projectId, seriesUid) as { study_uid: string } | undefined;
    if (row) {
      if (this.#seriesStudy.size > 50_000) this.#seriesStudy.clear();
      this.#seriesStudy.set(key, row.study_uid);
    }
    return row?.study_uid;
  }

  #remember(key: string): void {
    if (this.#knownSeries.size > 50_000) this.#knownSeries.clear();
    this.#knownSeries.add(key);
  }

  #touch(projectId: string, uids: InstanceUids): void {
    const key = `${projectId}|${uids.seriesInstanceUid}`;
    const entry = this.#active.get(key);
    if (entry) entry.last = Date.now();
    else this.#active.set(key, { event: { projectId, seriesUid: uids.seriesInstanceUid, studyUid: uids.studyInstanceUid }, last: Date.now() });
  }

  async #completeQuietSeries(): Promise<void> {
    const quiet = this.#o.quietPeriodMs ?? 5000;
    const now = Date.now();
    for (const [key, entry] of this.#active) {
      if (now - entry.last < quiet) continue;
      this.#active.delete(key);
      try {
        const r = await this.#db
          .updateTable('dicom_series')
          .set({ completed_at: now })
          .where('project_id', '=', entry.event.projectId)
          .where('series_uid', '=', entry.event.seriesUid)
          .where('completed_at', 'is', null)
          .executeTakeFirst();
        // Deleted (or completed) meanwhile: nothing to announce.
        if (Number(r.numUpdatedRows) > 0) this.emit('series-complete', entry.event);
      } catch (err) {
        this.#o.log?.error(`could not mark series ${entry.event.seriesUid} complete: ${(err as Error).message}`);
      }
    }
  }

  /** Forgets what the store remembers of a series (after it was deleted). */
  forgetSeries(projectId: string, seriesUid: string): void {
    const key = `${projectId}|${seriesUid}`;
    this.#active.delete(key);
    this.#seriesStudy.delete(key);
    for (const k of this.#knownSeries) if (k === key || k.startsWith(`${key}|`)) this.#knownSeries.delete(k);
  }

  /** Resolves once every queued index write has committed. */
  async #idle(): Promise<void> {
    while (this.#pending.length > 0 || this.#flushing) await new Promise((r) => setTimeout(r, 1));
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
    let folders: string[] = [];
    const removed = await this.#db.transaction().execute(async (trx) => {
      const series = await trx.selectFrom('dicom_series').select(['study_uid', 'num_instances']).where('project_id', '=', projectId).where('series_uid', '=', seriesUid).executeTakeFirst();
      if (!series) return undefined;
      // Every folder its files are in (a series' instances all name its study, but be sure).
      const dirs = await trx.selectFrom('dicom_instances').select('path').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
      folders = [...new Set(dirs.map((d) => dirname(d.path)))];
      await trx.deleteFrom('dicom_instances').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
      await trx.deleteFrom('dataset_series').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
      await trx.deleteFrom('dicom_series').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
      await trx.deleteFrom('dicom_series_tags').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
      const rest = await trx
        .selectFrom('dicom_series')
        .select(sql<number>`count(*)`.as('n'))
        .where('project_id', '=', projectId)
        .where('study_uid', '=', series.study_uid)
        .executeTakeFirstOrThrow();
      if (Number(rest.n) === 0) {
        await trx.deleteFrom('dicom_studies').where('project_id', '=', projectId).where('study_uid', '=', series.study_uid).execute();
      } else {
        const mods = await trx.selectFrom('dicom_series').select('modality').distinct().where('project_id', '=', projectId).where('study_uid', '=', series.study_uid).where('modality', 'is not', null).execute();
        await trx
          .updateTable('dicom_studies')
          .set({ num_series: Number(rest.n), modalities: mods.map((m) => m.modality).sort().join('\\'), updated_at: Date.now() })
          .where('project_id', '=', projectId)
          .where('study_uid', '=', series.study_uid)
          .execute();
      }
      return { studyUid: series.study_uid, instances: Number(series.num_instances) };
    });
    if (!removed) throw new TesseraError('TESSERA_NOT_FOUND', `series ${seriesUid} does not exist in this project`);
    this.forgetSeries(projectId, seriesUid);
    for (const folder of folders) await rm(join(this.root, folder), { recursive: true, force: true });
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

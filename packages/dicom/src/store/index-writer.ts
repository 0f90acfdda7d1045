import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { nativeDatabase, withNativeConnection, type Kysely, type NativeDatabase, type NativeStatement } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import type { DicomDataset } from '../parse/dataset-reader.ts';
import type { DicomTables, InstancesTable } from './dicom-tables.ts';
import { seriesRecord, studyRecord, type InstanceUids } from './index-record.ts';
import type { IndexedInstance, IngestOutcome, IngestTarget } from './ingest-outcome.ts';

/** One instance whose index rows are to be written (its file already is). */
export interface IndexEntry {
  /** A duplicate kept as it was: only its series joins the target dataset. */
  membershipOnly?: string;
  uids: InstanceUids;
  target: IngestTarget;
  ds: DicomDataset;
  row: InstancesTable;
  replacing: boolean;
  replacedSize?: number;
}

interface Pending extends IndexEntry {
  resolve: (status: IngestOutcome['status']) => void;
  reject: (err: Error) => void;
}

export interface IndexWriterOptions {
  db: Kysely<DicomTables>;
  /** Folder of the files: a file whose index rows were not committed is removed from it. */
  root: string;
  /** Emits 'indexed' after each commit, when it has listeners. */
  events: EventEmitter;
  /** Called inside the transaction for each instance stored or replaced. */
  onIndexed: (projectId: string, uids: InstanceUids) => void;
  log?: { error(msg: string): void };
}

/**
 * Writes the index of the store. Entries queued while a commit runs share the
 * next one; each entry's promise settles once its rows are committed, or rejects
 * (TESSERA_STORAGE) when the batch could not be. Keeps what the hot path needs to
 * know without a query: series known to have their row, their study, dataset ids.
 */
export class IndexWriter {
  readonly #db: Kysely<DicomTables>;
  readonly #o: IndexWriterOptions;
  /** Series known to have their index row (so that the next instance only bumps counters). */
  readonly #knownSeries = new Set<string>();
  /** The study of each series known to exist, by `project|series`: an instance must name its series' study. */
  readonly #seriesStudy = new Map<string, string>();
  readonly #statements = new Map<string, NativeStatement>();
  /** Dataset ids by `project|name`, for ingest routing. */
  readonly #datasetIds = new Map<string, string>();
  #tx: ((run: () => IngestOutcome['status'][]) => IngestOutcome['status'][]) | undefined;
  #pending: Pending[] = [];
  #flushing = false;

  constructor(options: IndexWriterOptions) {
    this.#o = options;
    this.#db = options.db;
  }

  /** True while entries wait for their commit or a commit runs. */
  get busy(): boolean {
    return this.#pending.length > 0 || this.#flushing;
  }

  /** Queues an entry; resolves with its status once its rows are committed. */
  write(entry: IndexEntry): Promise<IngestOutcome['status']> {
    return new Promise<IngestOutcome['status']>((resolve, reject) => {
      this.#pending.push({ ...entry, resolve, reject });
      if (this.#pending.length === 1 && !this.#flushing) setImmediate(() => void this.#flush());
    });
  }

  /** The stored copy of an instance, if the project holds one (a synchronous read: the hot path of every instance, no transaction needed). */
  storedInstance(projectId: string, sopUid: string): { path: string; series_uid: string; size_bytes: number } | undefined {
    const native = nativeDatabase(this.#db);
    return this.#stmt(native, 'select path, series_uid, size_bytes from dicom_instances where project_id = ? and sop_uid = ?').get(projectId, sopUid) as
      | { path: string; series_uid: string; size_bytes: number }
      | undefined;
  }

  /** True when the series is known to be in the named dataset already. */
  knowsMembership(projectId: string, seriesUid: string, datasetName: string): boolean {
    return this.#knownSeries.has(`${projectId}|${seriesUid}|${datasetName}`);
  }

  /** The study of a stored series (cached), or undefined for a new series. */
  studyOfSeries(projectId: string, seriesUid: string): string | undefined {
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

  /** Forgets what is remembered of a dataset (after it was renamed or deleted). */
  forgetDataset(projectId: string, name: string): void {
    this.#datasetIds.delete(`${projectId}|${name}`);
    const suffix = `|${name}`;
    for (const k of this.#knownSeries) if (k.startsWith(`${projectId}|`) && k.endsWith(suffix)) this.#knownSeries.delete(k);
  }

  /** Forgets what is remembered of a series (after it was deleted). */
  forgetSeries(projectId: string, seriesUid: string): void {
    const key = `${projectId}|${seriesUid}`;
    this.#seriesStudy.delete(key);
    for (const k of this.#knownSeries) if (k === key || k.startsWith(`${key}|`)) this.#knownSeries.delete(k);
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
          const events = this.#o.events;
          if (events.listenerCount('indexed') > 0) {
            const indexed: IndexedInstance[] = batch.map((p, i) => ({
              projectId: p.target.projectId, seriesUid: p.uids.seriesInstanceUid, studyUid: p.uids.studyInstanceUid, datasetName: p.target.datasetName, status: statuses[i]!,
            }));
            // After the commit: a listener's fault must not be taken for an index failure.
            try {
              events.emit('indexed', indexed);
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
            if (!p.replacing && !p.membershipOnly) rmSync(join(this.#o.root, p.row.path), { force: true });
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
          this.#o.onIndexed(pid, uids);
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
        this.#o.onIndexed(pid, uids);
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

  #remember(key: string): void {
    if (this.#knownSeries.size > 50_000) this.#knownSeries.clear();
    this.#knownSeries.add(key);
  }
}

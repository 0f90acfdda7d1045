import { EventEmitter } from 'node:events';
import { domainView, type Kysely } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { readZipEntries } from '../archive/zip-reader.ts';
import { MAX_ERROR_COMMENT } from '../dimse/dimse-command.ts';
import type { AssociateDecision, AssociationInfo, StoreRequest, StoreResult } from '../dimse/dimse-server.ts';
import { DIMSE_STATUS, storeStatusOf } from '../dimse/store-status.ts';
import { DatasetStore } from '../store/dataset-store.ts';
import { DicomStore, type DuplicatePolicy, type IngestOutcome, type IngestTarget, type SeriesEvent } from '../store/dicom-store.ts';
import type { DicomTables } from '../store/dicom-tables.ts';
import { aeRoute, importDatasetName } from './ae-routing.ts';
import { SenderPolicies } from './sender-policies.ts';
import { Thumbnailer } from './thumbnailer.ts';

export interface ProjectRef {
  id: string;
  name: string;
}

export interface DicomServiceOptions {
  db: object;
  /** Folder of the store (files, thumbnails). */
  root: string;
  fsync: boolean;
  duplicates: DuplicatePolicy;
  quietPeriodMs: number;
  /** Largest instance accepted, in bytes (uploads, STOW parts, zip entries). */
  maxInstanceBytes: number;
  /** Largest upload (a whole STOW body or .zip), in bytes. */
  maxUploadBytes: number;
  defaultProject: string;
  projects: { byName(name: string): Promise<ProjectRef | undefined> };
  /** TESSERA_DICOM_REFUSE_UNKNOWN_SENDERS: every project refuses a C-STORE sender it does not list (default false). */
  refuseUnknownSenders?: boolean;
  log: { info(msg: string): void; warn(msg: string): void; error(msg: string): void };
}

/** The result of one file of an import (upload, STOW part, zip entry). */
export interface FileResult {
  file: string;
  status: IngestOutcome['status'] | 'rejected';
  sop_instance_uid?: string;
  series_instance_uid?: string;
  study_instance_uid?: string;
  sop_class_uid?: string;
  error?: { code: string; message: string };
}

/** What a C-STORE association carries with it: its project and dataset. */
interface AssociationContext {
  project: ProjectRef;
  datasetName: string | undefined;
}

/**
 * The DICOM domain's services: ingest from every path (C-STORE, STOW-RS, uploads,
 * zip archives) with routing to projects and datasets, the store and its index,
 * datasets, and thumbnails made after a series is complete.
 */
export class DicomService extends EventEmitter {
  readonly store: DicomStore;
  readonly datasets: DatasetStore;
  readonly thumbnails: Thumbnailer;
  /** Who may open C-STORE associations to each project, by source address. */
  readonly senders: SenderPolicies;
  readonly db: Kysely<DicomTables>;
  readonly options: DicomServiceOptions;

  constructor(o: DicomServiceOptions) {
    super();
    this.setMaxListeners(0);
    this.options = o;
    this.db = domainView<DicomTables>(o.db as Kysely<object>);
    this.store = new DicomStore({ db: this.db, root: o.root, fsync: o.fsync, duplicates: o.duplicates, quietPeriodMs: o.quietPeriodMs, maxInstanceBytes: o.maxInstanceBytes, log: o.log });
    this.datasets = new DatasetStore(this.db, (projectId, name) => this.store.forgetDataset(projectId, name));
    this.thumbnails = new Thumbnailer({ db: this.db, store: this.store, log: o.log });
    this.senders = new SenderPolicies(this.db, { refuseUnknownEverywhere: o.refuseUnknownSenders ?? false });
    this.store.on('series-complete', (e: SeriesEvent) => {
      this.thumbnails.enqueue(e);
      this.emit('series-complete', e);
    });
    this.store.on('series-deleted', (e: SeriesEvent) => this.emit('series-deleted', e));
  }

  async start(): Promise<void> {
    await this.senders.load();
    await this.store.start();
  }

  async close(): Promise<void> {
    await this.store.close();
    await this.thumbnails.close();
  }

  /**
   * The ingest target of a project: the named dataset, else today's import dataset.
   * The dataset is created with the first instance stored into it, so an import that
   * stores nothing leaves no empty dataset behind. A bad name is refused here.
   */
  target(projectId: string, datasetName?: string): IngestTarget {
    const name = datasetName ?? importDatasetName();
    DatasetStore.checkName(name);
    return { projectId, datasetName: name };
  }

  /**
   * Stores one Part 10 file. Never throws for a refused instance (bad input, a conflict,
   * a storage fault): the result says why, with its error code. Only bugs throw.
   */
  async importFile(target: IngestTarget, file: Buffer, name: string, requireStudyUid?: string): Promise<FileResult> {
    if (file.length > this.options.maxInstanceBytes) {
      return { file: name, status: 'rejected', error: { code: 'TESSERA_PAYLOAD_TOO_LARGE', message: `${file.length} bytes is over the limit of ${this.options.maxInstanceBytes} bytes per instance (TESSERA_DICOM_MAX_INSTANCE_MB)` } };
    }
    try {
      const r = await this.store.ingest({ target, file, requireStudyUid });
      return { file: name, status: r.status, sop_instance_uid: r.sopInstanceUid, series_instance_uid: r.seriesInstanceUid, study_instance_uid: r.studyInstanceUid, sop_class_uid: r.sopClassUid };
    } catch (err) {
      if (err instanceof TesseraError && err.kind !== 'bug') {
        if (err.kind === 'operational') this.options.log.error(`${name}: ${err.message}`);
        return { file: name, status: 'rejected', error: { code: err.code, message: err.message } };
      }
      throw err;
    }
  }

  /**
   * A batch import: files are parsed and written as they are added while earlier ones
   * wait for their index commit, so that the instances of one request share commits
   * (at most `window` in flight). `results()` gives them in the order added.
   */
  batch(target: IngestTarget, window = 16): { add: (file: Buffer, name: string, requireStudyUid?: string) => Promise<void>; results: () => Promise<FileResult[]> } {
    const pending: Promise<FileResult>[] = [];
    let settled = 0;
    return {
      add: async (file, name, requireStudyUid) => {
        // A bug met by one file fails that file, not the files of the batch stored beside it.
        const p = this.importFile(target, file, name, requireStudyUid).catch((err: unknown) => this.unexpected(name, err));
        pending.push(p);
        // Back-pressure: the caller reads the next part only when a slot is free.
        while (pending.length - settled >= window) await pending[settled++];
      },
      results: () => Promise.all(pending),
    };
  }

  /** The result of a file whose import met an unexpected error (a bug): logged as one, with its stack. */
  private unexpected(name: string, err: unknown): FileResult {
    const message = err instanceof Error ? err.message : String(err);
    this.options.log.error(`${name}: storing it failed with an unexpected error, a bug in Tessera (please report it): ${err instanceof Error ? (err.stack ?? message) : message}`);
    return { file: name, status: 'rejected', error: { code: 'TESSERA_INTERNAL', message: `an unexpected error while storing it (a bug in Tessera, logged by the server): ${message}` } };
  }

  /**
   * Imports every entry of a .zip. An unsafe archive (entries with `..` or absolute
   * paths, links, over the limits, not a zip) is refused as a whole before anything
   * is stored; entries that are not DICOM are reported rejected one by one.
   */
  async importZip(target: IngestTarget, path: string, onFile?: (r: FileResult) => void): Promise<FileResult[]> {
    const batch = this.batch(target);
    let failure: FileResult | undefined;
    try {
      for await (const entry of readZipEntries(path, { maxEntryBytes: this.options.maxInstanceBytes, maxTotalBytes: this.options.maxUploadBytes * 20 })) {
        await batch.add(entry.data, entry.name);
      }
    } catch (err) {
      // Unsafe archives are refused before any entry is read; an entry found corrupt while
      // reading stops the archive there, and what was stored before it is reported.
      const done = await batch.results();
      if (!(err instanceof TesseraError) || !done.some((r) => r.status !== 'rejected')) throw err;
      failure = { file: '(the rest of the archive)', status: 'rejected', error: { code: err.code, message: err.message } };
    }
    const results = await batch.results();
    if (failure) results.push(failure);
    if (onFile) results.forEach(onFile);
    return results;
  }

  // ------------------------------------------------------------------ C-STORE

  /**
   * Decides on an association by Kaapana's AE title routing (an unknown `kp-<project>` is
   * refused) and by the project's allowed senders: since the calling AE title names the
   * dataset, a sender is known by its source address. Decided here, once per association,
   * from the policies in memory.
   */
  async associate(info: AssociationInfo): Promise<AssociateDecision> {
    const route = aeRoute({ callingAe: info.callingAe, calledAe: info.calledAe, defaultProject: this.options.defaultProject });
    const project = await this.options.projects.byName(route.projectName);
    if (!project) {
      const reason = `called AE title "${info.calledAe}" names project "${route.projectName}", which does not exist`;
      this.options.log.warn(`DICOM association from ${info.callingAe}@${info.remoteAddress} refused: ${reason}`);
      return { accept: false, reason, result: 1, source: 1, diagnostic: 7 };
    }
    const sender = this.senders.check(project.id, info.remoteAddress);
    if (!sender.allowed) {
      const reason = `sender ${info.remoteAddress} may not send to project "${project.name}": ${sender.why}`;
      this.options.log.warn(
        `DICOM association from ${info.remoteAddress} (calling AE "${info.callingAe}", called AE "${info.calledAe}") refused: ${reason}; ` +
          `allow it with \`tessera projects senders ${project.name} --allow ${info.remoteAddress.replace(/^::ffff:(?=\d+\.)/i, '')}\` if it should send`,
      );
      // PS3.8 table 9-21: rejected-permanent (1), DICOM UL service-user (1), calling AE title not recognized (3).
      return { accept: false, reason, result: 1, source: 1, diagnostic: 3 };
    }
    if (route.datasetName !== undefined) {
      try {
        DatasetStore.checkName(route.datasetName);
      } catch (err) {
        const reason = `calling AE title "${info.callingAe}" names dataset "${route.datasetName}": ${(err as Error).message}`;
        this.options.log.warn(`DICOM association from ${info.callingAe}@${info.remoteAddress} refused: ${reason}`);
        return { accept: false, reason, result: 1, source: 1, diagnostic: 3 };
      }
    }
    const context: AssociationContext = { project, datasetName: route.datasetName };
    return { accept: true, context };
  }

  /** Stores one C-STORE dataset; answers with a DICOM status (failures carry a comment). */
  async cstore(req: StoreRequest): Promise<StoreResult> {
    const ctx = req.association.context as AssociationContext | undefined;
    if (!ctx) return { status: DIMSE_STATUS.outOfResources, errorComment: 'association has no project' };
    try {
      const target = await this.target(ctx.project.id, ctx.datasetName);
      await this.store.ingest({
        target,
        dataset: { bytes: req.dataset, transferSyntaxUid: req.transferSyntaxUid, sopClassUid: req.sopClassUid, sopInstanceUid: req.sopInstanceUid, sourceAe: req.association.callingAe },
      });
      return { status: DIMSE_STATUS.success };
    } catch (err) {
      const { status, comment } = storeStatusOf(err);
      this.options.log.warn(`C-STORE of ${req.sopInstanceUid} from ${req.association.callingAe}@${req.association.remoteAddress} failed: ${comment}`);
      return { status, errorComment: comment.slice(0, MAX_ERROR_COMMENT) };
    }
  }
}

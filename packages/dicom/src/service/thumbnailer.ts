import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from '@tessera/db';
import { readPart10 } from '../parse/part10-reader.ts';
import { pixelModuleOf } from '../parse/pixel-module-of.ts';
import { renderFrame } from '../render/render-frame.ts';
import type { DicomStore, SeriesEvent } from '../store/dicom-store.ts';
import type { DicomTables } from '../store/dicom-tables.ts';

/** Longest side of a series thumbnail, in pixels. */
export const THUMBNAIL_SIZE = 256;

/**
 * Makes a PNG thumbnail of each series once it is complete: the middle instance's
 * first frame. One at a time, off the ingest path; a series without an image
 * (structured reports, RT plans) records why it has none.
 */
export class Thumbnailer {
  readonly #db: Kysely<DicomTables>;
  readonly #store: DicomStore;
  readonly #queue: SeriesEvent[] = [];
  readonly #log: { warn(msg: string): void };
  #busy: Promise<void> | undefined;
  #closed = false;

  constructor(o: { db: Kysely<DicomTables>; store: DicomStore; log: { warn(msg: string): void } }) {
    this.#db = o.db;
    this.#store = o.store;
    this.#log = o.log;
  }

  enqueue(event: SeriesEvent): void {
    if (this.#closed) return;
    this.#queue.push(event);
    this.#busy ??= this.#drain().finally(() => {
      this.#busy = undefined;
    });
  }

  /** Resolves once the queue is empty (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#busy) await this.#busy;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    await this.idle();
  }

  async #drain(): Promise<void> {
    for (let e = this.#queue.shift(); e; e = this.#queue.shift()) {
      try {
        await this.make(e.projectId, e.seriesUid);
      } catch (err) {
        this.#log.warn(`thumbnail of series ${e.seriesUid} failed: ${(err as Error).message}`);
      }
    }
  }

  /** Makes (or remakes) the thumbnail of one series; returns its path relative to the store root, or undefined with the reason recorded. */
  async make(projectId: string, seriesUid: string): Promise<string | undefined> {
    const instances = await this.#db
      .selectFrom('dicom_instances')
      .select(['path', 'transfer_syntax'])
      .where('project_id', '=', projectId)
      .where('series_uid', '=', seriesUid)
      .orderBy('instance_number')
      .orderBy('sop_uid')
      .execute();
    if (instances.length === 0) return undefined;
    const middle = instances[Math.floor(instances.length / 2)]!;
    let reason: string;
    try {
      const file = await this.#store.readFile(middle.path);
      const part10 = readPart10(file);
      const pm = pixelModuleOf(part10.dataset, part10.transferSyntaxUid);
      if (pm) {
        const png = await renderFrame(pm, Math.floor(pm.numberOfFrames / 2), { format: 'png', maxSize: THUMBNAIL_SIZE });
        const relative = join('thumbnails', projectId, `${seriesUid}.png`);
        await mkdir(join(this.#store.root, 'thumbnails', projectId), { recursive: true });
        await writeFile(join(this.#store.root, relative), png);
        await this.#set(projectId, seriesUid, relative, null);
        return relative;
      }
      reason = 'the series has no image (no pixel data)';
    } catch (err) {
      reason = (err as Error).message;
    }
    await this.#set(projectId, seriesUid, null, reason);
    return undefined;
  }

  async #set(projectId: string, seriesUid: string, thumbnail: string | null, error: string | null): Promise<void> {
    await this.#db.updateTable('dicom_series').set({ thumbnail, thumbnail_error: error }).where('project_id', '=', projectId).where('series_uid', '=', seriesUid).execute();
  }
}

import type { Kysely } from '@tessera/db';
import type { DicomTables } from './dicom-tables.ts';
import type { InstanceUids } from './index-record.ts';
import type { SeriesEvent } from './ingest-outcome.ts';

export interface SeriesCompletionOptions {
  db: Kysely<DicomTables>;
  /** A series counts as complete this long after its last instance arrived (ms). */
  quietPeriodMs?: number;
  /** Called once a series is marked complete. */
  onComplete: (event: SeriesEvent) => void;
  log?: { error(msg: string): void };
}

/**
 * Watches the series that receive instances and marks each complete once no new
 * instance arrived for the quiet period. Series left incomplete by a previous run
 * are picked up at start.
 */
export class SeriesCompletion {
  readonly #o: SeriesCompletionOptions;
  /** Series that received instances and are not yet complete: key -> last arrival. */
  readonly #active = new Map<string, { event: SeriesEvent; last: number }>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: SeriesCompletionOptions) {
    this.#o = options;
  }

  /** Loads the incomplete series and starts the watcher. */
  async start(): Promise<void> {
    const open = await this.#o.db
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

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  /** An instance of the series was indexed: its quiet period starts again. */
  touch(projectId: string, uids: InstanceUids): void {
    const key = `${projectId}|${uids.seriesInstanceUid}`;
    const entry = this.#active.get(key);
    if (entry) entry.last = Date.now();
    else this.#active.set(key, { event: { projectId, seriesUid: uids.seriesInstanceUid, studyUid: uids.studyInstanceUid }, last: Date.now() });
  }

  /** Stops watching a series (it was deleted). */
  forget(projectId: string, seriesUid: string): void {
    this.#active.delete(`${projectId}|${seriesUid}`);
  }

  async #completeQuietSeries(): Promise<void> {
    const quiet = this.#o.quietPeriodMs ?? 5000;
    const now = Date.now();
    for (const [key, entry] of this.#active) {
      if (now - entry.last < quiet) continue;
      this.#active.delete(key);
      try {
        const r = await this.#o.db
          .updateTable('dicom_series')
          .set({ completed_at: now })
          .where('project_id', '=', entry.event.projectId)
          .where('series_uid', '=', entry.event.seriesUid)
          .where('completed_at', 'is', null)
          .executeTakeFirst();
        // Deleted (or completed) meanwhile: nothing to announce.
        if (Number(r.numUpdatedRows) > 0) this.#o.onComplete(entry.event);
      } catch (err) {
        this.#o.log?.error(`could not mark series ${entry.event.seriesUid} complete: ${(err as Error).message}`);
      }
    }
  }
}

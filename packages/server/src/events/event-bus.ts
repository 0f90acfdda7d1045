import type { AppState } from '@tessera/apps';
import type { RunState, TaskState } from '@tessera/model';
import type { ExtensionState as CatalogState } from '@tessera/extension-packages';

/**
 * The state changes the platform announces (GET /api/events). Payloads are hints for a
 * client to fetch again, kept small: a type, the project where one applies, the
 * entity's id or name, and its state.
 */
export type TesseraEvent =
  | { type: 'run'; project: string; id: string; job: string; workflow: string; state: RunState; attempt: number }
  | { type: 'task'; project: string; run: string; id: string; state: TaskState; try_number: number; attempt: number }
  | {
      type: 'series';
      project: string;
      state: 'changed';
      /** Instances stored (new or replaced) since the last series event of the project. */
      instances: number;
      /** Instances that were already there (duplicates kept). */
      duplicates: number;
      /** Series that received instances, were completed, were deleted (each at most SERIES_UIDS_MAX UIDs). */
      stored: string[];
      completed: string[];
      deleted: string[];
      /** A list was cut at SERIES_UIDS_MAX UIDs: fetch the list again rather than patch it. */
      truncated: boolean;
    }
  | { type: 'dataset'; project: string; name: string; state: 'created' | 'changed' | 'deleted' }
  | { type: 'extension'; name: string; state: CatalogState; version: string | null; progress: string | null; error: string | null }
  | { type: 'application'; project: string; name: string; id: string; extension: string; state: AppState; reason: string | null }
  | { type: 'import'; project: string; id: string; dataset: string; state: 'running' | 'done' | 'failed'; files: number; stored: number; duplicates: number; rejected: number };

export type EventType = TesseraEvent['type'];
export const EVENT_TYPES: readonly EventType[] = ['run', 'task', 'series', 'dataset', 'extension', 'application', 'import'];
export const SERIES_UIDS_MAX = 100;

export interface Delivered {
  /** Increasing over the server's lifetime (the SSE `id:`); restarts at 1 with the server. */
  seq: number;
  event: TesseraEvent;
}

/**
 * A small in-process, synchronous publish/subscribe bus. Domains publish; the event
 * stream subscribes. A subscriber that throws is reported and kept; it must not block.
 */
export class EventBus {
  readonly #subscribers = new Set<(d: Delivered) => void>();
  readonly #onError: (err: Error) => void;
  #seq = 0;

  constructor(onError: (err: Error) => void = () => undefined) {
    this.#onError = onError;
  }

  publish(event: TesseraEvent): void {
    const delivered = { seq: ++this.#seq, event };
    for (const s of this.#subscribers) {
      try {
        s(delivered);
      } catch (err) {
        this.#onError(err as Error);
      }
    }
  }

  /** Returns the unsubscribe function. */
  subscribe(fn: (d: Delivered) => void): () => void {
    this.#subscribers.add(fn);
    return () => {
      this.#subscribers.delete(fn);
    };
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }
}

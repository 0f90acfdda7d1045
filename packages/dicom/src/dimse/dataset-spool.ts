import { randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** A received dataset that was written to a file instead of being held in memory. */
export interface SpooledDataset {
  /** The dataset bytes exactly as received (no Part 10 meta header). Deleted once onStore settled. */
  path: string;
  bytes: number;
}

const PREFIX = 'dimse-';
const SUFFIX = '.spool';
/** Bytes the file stream may hold before the association stops reading from its socket. */
const STREAM_BUFFER_BYTES = 1024 * 1024;

/**
 * One dataset being written to a temporary file as its fragments arrive. The
 * writer's buffer is bounded: when `write` returns false, stop reading until
 * `drained()` resolves.
 */
export class SpoolFile {
  readonly path: string;
  bytes = 0;
  readonly #stream: WriteStream;
  #failure: Error | undefined;
  #discarded: Promise<void> | undefined;

  constructor(dir: string) {
    this.path = join(dir, `${PREFIX}${randomUUID()}${SUFFIX}`);
    this.#stream = createWriteStream(this.path, { flags: 'wx', highWaterMark: STREAM_BUFFER_BYTES });
    this.#stream.on('error', (err) => {
      this.#failure ??= err;
    });
  }

  /** Appends bytes; false when the caller should wait for `drained()`. */
  write(data: Buffer): boolean {
    this.bytes += data.length;
    if (this.#stream.destroyed) return true;
    return this.#stream.write(data);
  }

  /** Resolves once the stream's buffer has room again (or the stream failed). */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#stream.writableNeedDrain || this.#stream.destroyed) {
        resolve();
        return;
      }
      const done = (): void => {
        this.#stream.off('drain', done);
        this.#stream.off('close', done);
        resolve();
      };
      this.#stream.on('drain', done);
      this.#stream.on('close', done);
    });
  }

  /** Resolves once every byte is written and the file closed; rejects when the disk failed. */
  finish(): Promise<SpooledDataset> {
    return new Promise((resolve, reject) => {
      const settle = (): void => {
        if (this.#failure) reject(new Error(`could not write the dataset to ${this.path}: ${this.#failure.message}`, { cause: this.#failure }));
        else resolve({ path: this.path, bytes: this.bytes });
      };
      if (this.#stream.closed) {
        settle();
        return;
      }
      this.#stream.once('close', settle);
      this.#stream.end();
    });
  }

  /** Stops writing and deletes the file (once the stream closed, so it cannot come back). */
  discard(): Promise<void> {
    this.#discarded ??= new Promise<void>((resolve) => {
      if (this.#stream.closed) resolve();
      else {
        this.#stream.once('close', () => resolve());
        this.#stream.destroy();
      }
    }).then(() => rm(this.path, { force: true }));
    return this.#discarded;
  }
}

/** Deletes the spool files a previous run left in `dir` (a crash while receiving). Returns how many. */
export async function removeLeftoverSpools(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  const leftovers = names.filter((n) => n.startsWith(PREFIX) && n.endsWith(SUFFIX));
  await Promise.all(leftovers.map((n) => rm(join(dir, n), { force: true })));
  return leftovers.length;
}

import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync, writevSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TesseraError } from '@tessera/model';

/** Where the store's files go, and whether each is flushed to disk before it counts as written. */
export interface IncomingWriterOptions {
  /** Folder of the files; partial files live in its `.incoming/` until renamed into place. */
  root: string;
  /** fsync each file and its folder (survives power loss; costs a disk flush per instance). */
  fsync?: boolean;
}

/**
 * Writes the store's files: each goes to `.incoming/` first and is renamed into
 * place, so a crash never leaves a partial file at a stored path. Files left in
 * `.incoming/` by a crash (never acknowledged, never indexed) are removed at start.
 */
export class IncomingWriter {
  readonly #root: string;
  readonly #fsync: boolean;
  readonly #incoming: string;
  readonly #madeDirs = new Set<string>();
  #fileCounter = 0;

  constructor(options: IncomingWriterOptions) {
    this.#root = options.root;
    this.#fsync = options.fsync ?? false;
    this.#incoming = join(options.root, '.incoming');
    mkdirSync(this.#incoming, { recursive: true });
    // Files of ingests cut short by a crash: never acknowledged, never indexed.
    for (const f of readdirSync(this.#incoming)) rmSync(join(this.#incoming, f), { force: true });
  }

  /** The folder of partial files (emptied at start): temporary files of ingests in progress may go here too. */
  get incomingDir(): string {
    return this.#incoming;
  }

  /** Forgets that a folder (relative to the root) exists: it was removed, and the next file into it must create it again. */
  forgetFolder(relative: string): void {
    this.#madeDirs.delete(join(this.#root, relative));
  }

  /**
   * Writes `parts` one after the other as the file at `relative` (to the root).
   * @throws TesseraError TESSERA_STORAGE when the disk fails; nothing is left behind.
   */
  write(relative: string, parts: Buffer[]): void {
    const target = join(this.#root, relative);
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
        if (this.#fsync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, target);
      if (this.#fsync) {
        const dfd = openSync(dir, 'r');
        try {
          fsyncSync(dfd);
        } finally {
          closeSync(dfd);
        }
      }
    } catch (err) {
      rmSync(tmp, { force: true });
      throw storageError(target, err);
    }
  }

  /**
   * Writes `header` then the bytes of the file at `source` as the file at `relative`,
   * copying in chunks so that a large instance is never held whole in memory.
   * @throws TesseraError TESSERA_STORAGE when the disk fails; nothing is left behind.
   */
  async writeWithFile(relative: string, header: Buffer, source: string): Promise<void> {
    const target = join(this.#root, relative);
    const dir = dirname(target);
    const tmp = join(this.#incoming, `${process.pid}-${++this.#fileCounter}.part`);
    try {
      const out = await open(tmp, 'w');
      try {
        await out.write(header);
        const input = await open(source, 'r');
        try {
          const chunk = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
          for (;;) {
            const { bytesRead } = await input.read(chunk, 0, chunk.length, null);
            if (bytesRead === 0) break;
            await out.write(chunk, 0, bytesRead);
          }
        } finally {
          await input.close();
        }
        if (this.#fsync) await out.sync();
      } finally {
        await out.close();
      }
      // Made here, not remembered: a series deleted meanwhile may have taken the folder.
      mkdirSync(dir, { recursive: true });
      renameSync(tmp, target);
      if (this.#fsync) {
        const dfd = openSync(dir, 'r');
        try {
          fsyncSync(dfd);
        } finally {
          closeSync(dfd);
        }
      }
    } catch (err) {
      rmSync(tmp, { force: true });
      throw storageError(target, err);
    }
  }
}

const COPY_CHUNK_BYTES = 1024 * 1024;

function storageError(target: string, err: unknown): TesseraError {
  const code = (err as NodeJS.ErrnoException).code;
  return new TesseraError('TESSERA_STORAGE', `could not write ${target}: ${(err as Error).message}${code === 'ENOSPC' ? ' (the disk is full: free space, then send again)' : ''}`, { cause: err });
}

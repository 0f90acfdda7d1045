import { closeSync, existsSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, writeSync, writevSync } from 'node:fs';
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
 * Writes the store's files: each goes to `.incoming/` first and is put in place
 * whole, so a crash never leaves a partial file at a stored path. A new file is
 * hard-linked into place and its `.incoming/` name, which names the place, stays
 * until the index has committed it ({@link settle}): a crash between the two leaves
 * that name behind, and {@link recoverPending} at the next start removes a file the
 * index never took (never acknowledged), so the index and the files agree. Other
 * files left in `.incoming/` by a crash are removed at start.
 */
export class IncomingWriter {
  readonly #root: string;
  readonly #fsync: boolean;
  readonly #incoming: string;
  readonly #madeDirs = new Set<string>();
  /** Files linked into place and not yet committed by the index: relative path -> pending name. */
  readonly #pending = new Map<string, string>();
  #fileCounter = 0;

  constructor(options: IncomingWriterOptions) {
    this.#root = options.root;
    this.#fsync = options.fsync ?? false;
    this.#incoming = join(options.root, '.incoming');
    mkdirSync(this.#incoming, { recursive: true });
    // Files of ingests cut short by a crash: never acknowledged, never indexed.
    for (const f of readdirSync(this.#incoming)) if (!f.endsWith(PENDING)) rmSync(join(this.#incoming, f), { force: true });
  }

  /**
   * After a crash: each file linked into place whose index commit may not have
   * happened is kept when `isIndexed(relative)` says the index has it, and removed
   * otherwise. Returns the number removed.
   */
  recoverPending(isIndexed: (relative: string) => boolean): number {
    let removed = 0;
    for (const f of readdirSync(this.#incoming)) {
      if (!f.endsWith(PENDING)) continue;
      const marker = join(this.#incoming, f);
      const relative = f.slice(0, -PENDING.length).split(PATH_SEPARATOR_IN_NAME).join('/');
      const target = join(this.#root, relative);
      if (!isIndexed(relative) && existsSync(target) && sameFile(marker, target)) {
        rmSync(target, { force: true });
        removed++;
      }
      rmSync(marker, { force: true });
    }
    return removed;
  }

  /** The index has committed the file at `relative`: it no longer needs its pending name. */
  settle(relative: string): void {
    const marker = this.#pending.get(relative);
    if (marker === undefined) return;
    this.#pending.delete(relative);
    rmSync(marker, { force: true });
  }

  /** The index did not take the file at `relative`: it is removed (it was never acknowledged). */
  abandon(relative: string): void {
    const marker = this.#pending.get(relative);
    if (marker === undefined) return;
    this.#pending.delete(relative);
    rmSync(join(this.#root, relative), { force: true });
    rmSync(marker, { force: true });
  }

  /**
   * Puts the whole file `tmp` at `target`. A new file is linked, and `tmp` renamed to
   * its pending name until {@link settle}; a file that replaces one the index already
   * has is renamed over it (the index keeps pointing at a whole file either way).
   */
  #place(tmp: string, target: string, relative: string): void {
    // Copies of one instance are stored one after the other (the store waits), so a pending
    // name is never taken twice at once; a stale one from a crash was dealt with at start.
    if (existsSync(target)) {
      renameSync(tmp, target);
      this.#syncFolder(target);
      return;
    }
    // The pending name first, then the link: a crash between the two leaves a pending name
    // without a file in place (nothing to undo), never a file in place without its pending name.
    const marker = join(this.#incoming, `${relative.split('/').join(PATH_SEPARATOR_IN_NAME)}${PENDING}`);
    renameSync(tmp, marker);
    try {
      linkSync(marker, target);
    } catch (err) {
      rmSync(marker, { force: true });
      throw err;
    }
    this.#pending.set(relative, marker);
    this.#syncFolder(target);
  }

  /** With fsync on, the folder too: its new entry survives a power loss. */
  #syncFolder(target: string): void {
    if (!this.#fsync) return;
    const dfd = openSync(dirname(target), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
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
      this.#place(tmp, target, relative);
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
      this.#place(tmp, target, relative);
    } catch (err) {
      rmSync(tmp, { force: true });
      throw storageError(target, err);
    }
  }
}

const COPY_CHUNK_BYTES = 1024 * 1024;
/** Ending of the `.incoming/` name of a file linked into place and not yet committed by the index. */
const PENDING = '.pending';
/** Stands for "/" in such a name: project ids are UUIDs and UIDs are digits and dots, so it cannot occur in them. */
const PATH_SEPARATOR_IN_NAME = '+';

function sameFile(a: string, b: string): boolean {
  try {
    const x = statSync(a);
    const y = statSync(b);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

function storageError(target: string, err: unknown): TesseraError {
  const code = (err as NodeJS.ErrnoException).code;
  return new TesseraError('TESSERA_STORAGE', `could not write ${target}: ${(err as Error).message}${code === 'ENOSPC' ? ' (the disk is full: free space, then send again)' : ''}`, { cause: err });
}

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface FolderUsage {
  path: string;
  bytes: number;
  files: number;
}

/**
 * Sizes of folders, walked in the background and cached: a request never waits for a
 * walk unless it asks to. A walk yields to the event loop as it goes.
 */
export class DiskUsage {
  readonly #folders: Record<string, string>;
  readonly #maxAgeMs: number;
  #last: { folders: Record<string, FolderUsage>; computedAt: number; durationMs: number } | undefined;
  #walking: Promise<void> | undefined;

  constructor(folders: Record<string, string>, maxAgeMs: number) {
    this.#folders = folders;
    this.#maxAgeMs = maxAgeMs;
  }

  /** The last walk's figures (undefined before the first one ended); starts a walk when they are older than the maximum age. */
  current(): { folders: Record<string, FolderUsage> | null; computed_at: string | null; duration_ms: number | null; computing: boolean } {
    if (!this.#last || Date.now() - this.#last.computedAt > this.#maxAgeMs) void this.refresh();
    return {
      folders: this.#last?.folders ?? null,
      computed_at: this.#last ? new Date(this.#last.computedAt).toISOString() : null,
      duration_ms: this.#last?.durationMs ?? null,
      computing: this.#walking !== undefined,
    };
  }

  /** Starts a walk unless one is going; resolves when it has ended. */
  refresh(): Promise<void> {
    this.#walking ??= (async () => {
      const started = Date.now();
      const folders: Record<string, FolderUsage> = {};
      for (const [name, path] of Object.entries(this.#folders)) folders[name] = { path, ...(await sizeOf(path)) };
      this.#last = { folders, computedAt: Date.now(), durationMs: Date.now() - started };
    })().finally(() => (this.#walking = undefined));
    return this.#walking;
  }
}

/** Bytes and files under a folder (links are not followed; a folder that is not there is 0). */
async function sizeOf(root: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  let seen = 0;
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        const st = await lstat(p).catch(() => undefined);
        if (st) {
          bytes += st.size;
          files++;
        }
      }
      // Let requests through on big trees.
      if (++seen % 500 === 0) await new Promise((r) => setImmediate(r));
    }
  }
  return { bytes, files };
}

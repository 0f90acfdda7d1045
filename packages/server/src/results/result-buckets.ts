import { constants, createReadStream } from 'node:fs';
import { copyFile, mkdir, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { TesseraError } from '@tessera/model';
import { filesUnder } from '../dicom/files-under.ts';

export interface BucketObject {
  run_id: string;
  path: string;
  size_bytes: number;
  modified_at: string;
}

/**
 * Result buckets: a folder per project (`<home>/buckets/<project id>/<run id>/...`),
 * where put-files copies a run's results for download. The S3-compatible store of
 * a cluster takes this place later, behind the same API.
 */
export class ResultBuckets {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  #dir(projectId: string, runId?: string): string {
    return runId ? join(this.root, projectId, runId) : join(this.root, projectId);
  }

  /** Copies a file into the bucket under `<run>/<name>`. */
  async put(projectId: string, runId: string, name: string, file: string): Promise<void> {
    const target = this.#safe(projectId, runId, name);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(file, target, constants.COPYFILE_FICLONE);
  }

  /** Objects of a project (optionally of one run), newest run first. */
  async list(projectId: string, runId?: string): Promise<BucketObject[]> {
    const base = this.#dir(projectId);
    const out: BucketObject[] = [];
    for (const p of await filesUnder(runId ? this.#dir(projectId, runId) : base)) {
      const st = await stat(p);
      const [run, ...rest] = relative(base, p).split(sep);
      out.push({ run_id: run!, path: rest.join('/'), size_bytes: st.size, modified_at: st.mtime.toISOString() });
    }
    return out.sort((a, b) => (a.run_id === b.run_id ? a.path.localeCompare(b.path) : b.run_id.localeCompare(a.run_id)));
  }

  /** A stream of one object; 404 when missing. Paths that leave the bucket are refused. */
  async open(projectId: string, runId: string, path: string): Promise<{ stream: NodeJS.ReadableStream; size: number }> {
    const file = this.#safe(projectId, runId, path);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) throw new TesseraError('TESSERA_NOT_FOUND', `result file "${path}" of run ${runId} does not exist`);
    return { stream: createReadStream(file), size: st.size };
  }

  #safe(projectId: string, runId: string, name: string): string {
    const base = this.#dir(projectId, runId);
    const target = resolve(base, name);
    if (!/^[A-Za-z0-9_-]+$/.test(runId) || relative(base, target).startsWith('..') || target === base) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `result path "${name}" of run "${runId}" is not inside the run's bucket`);
    }
    return target;
  }
}

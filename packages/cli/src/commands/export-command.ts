import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AnswerOf, resultRoutes } from '@tessera/api';
import { CliError, type ApiClient } from '../api-client.ts';
import { bytes, printJson, table } from '../output.ts';
import { ProgressLine, rate } from '../progress.ts';
import { checkUids } from '../series-filters.ts';

export interface ExportOptions {
  series?: string;
  study?: string;
  dataset?: string;
  output?: string;
  force?: boolean;
  json?: boolean;
  project: string;
}

/**
 * `tessera export`: downloads a series, a study or a dataset as a .zip of DICOM files,
 * streamed to a file (by default the name the server gives) or to stdout with `-o -`.
 * The file appears only once complete: it is written as `<name>.part` first.
 */
export async function exportCommand(api: ApiClient, o: ExportOptions): Promise<number> {
  const given = [o.series && '--series', o.study && '--study', o.dataset && '--dataset'].filter(Boolean);
  if (given.length !== 1) {
    throw new CliError(given.length ? `give one of ${given.join(', ')}, not several` : 'say what to export: --series UID, --study UID or --dataset NAME', { exitCode: 2 });
  }
  if (o.series) checkUids([o.series], '--series');
  if (o.study) checkUids([o.study], '--study');
  if (o.output && o.output !== '-' && !o.force) await refuseExisting(o.output, 2);
  const path = o.series
    ? `/api/series/${o.series}/download`
    : o.study
      ? `/api/studies/${o.study}/download`
      : `/api/datasets/${encodeURIComponent(o.dataset!)}/download`;
  const res = await api.download(path, { project: o.project });
  const toStdout = o.output === '-';
  const file = toStdout ? undefined : (o.output ?? serverFilename(res.headers.get('content-disposition')) ?? 'export.zip');
  if (file && !o.output && !o.force) {
    try {
      await refuseExisting(file, 1);
    } catch (err) {
      await res.body?.cancel();
      throw err;
    }
  }
  const size = Number(res.headers.get('content-length') ?? NaN);
  const n = await receive(res, file, { size: Number.isFinite(size) ? size : undefined, quiet: o.json === true, label: file ?? 'stdout' });
  if (o.json) printJson({ file: file ? resolve(file) : '-', bytes: n });
  else if (file) console.log(`wrote ${file} (${bytes(n)})`);
  return 0;
}

async function refuseExisting(file: string, exitCode: number, hint = 'choose another name with -o, or overwrite it with --force'): Promise<void> {
  if (await stat(file).then(() => true, () => false)) throw new CliError(`${file} exists already: ${hint}`, { exitCode });
}

/** The file name of a Content-Disposition, reduced to a plain name in the current folder (never a path). */
export function serverFilename(disposition: string | null): string | undefined {
  const m = disposition ? /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition) : null;
  if (!m) return undefined;
  let name = m[1]!;
  try {
    name = decodeURIComponent(name);
  } catch {
    // Not percent-encoded: keep it as it is.
  }
  name = basename(name.replace(/\\/g, '/'));
  return name && name !== '.' && name !== '..' ? name : undefined;
}

/**
 * Streams a response body to a file (through `<file>.part`, renamed once complete) or
 * to stdout, calling `onBytes` as it goes. Answers the byte count.
 */
async function save(res: Response, file: string | undefined, onBytes: (n: number) => void): Promise<number> {
  let received = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
  const body = res.body ? Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>) : Readable.from([]);
  const part = file ? `${file}.part` : undefined;
  try {
    if (part) await mkdir(dirname(resolve(part)), { recursive: true });
    await pipeline(body, count, part ? createWriteStream(part) : process.stdout);
    if (part) await rename(part, file!);
  } catch (err) {
    if (part) await rm(part, { force: true });
    throw new CliError(`the download stopped after ${bytes(received)}: ${(err as Error).message}${part ? `; nothing was written to ${file}` : ''}`);
  }
  return received;
}

/** `save` with a line of progress (bytes received, and of how many when the server says). */
async function receive(res: Response, file: string | undefined, o: { size?: number; quiet: boolean; label: string }): Promise<number> {
  const started = Date.now();
  let received = 0;
  const progress = new ProgressLine(() => {
    const r = rate(received, started);
    return `downloading ${o.label}: ${bytes(received)}${o.size ? ` of ${bytes(o.size)}` : ''}${r === undefined ? '' : `, ${bytes(r)}/s`}`;
  }, { quiet: o.quiet });
  try {
    await save(res, file, (n) => {
      received += n;
      progress.tick();
    });
  } catch (err) {
    progress.clear();
    throw err;
  }
  progress.done(`downloaded ${o.label}: ${bytes(received)} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return received;
}

export interface ResultsOptions {
  run?: string;
  download?: string;
  force?: boolean;
  json?: boolean;
  project: string;
}

/**
 * `tessera results`: the files workflows put in the project's result bucket (put-files),
 * of every run or of one; `--download DIR` fetches them to DIR/<run>/<path>.
 */
export async function resultsCommand(api: ApiClient, o: ResultsOptions): Promise<number> {
  if (o.run !== undefined && !/^[A-Za-z0-9_-]+$/.test(o.run)) throw new CliError(`--run "${o.run}" is not a run id (letters, digits, "_" and "-", e.g. r-m3k2x9-0001)`, { exitCode: 2 });
  const { items } = await api.get<AnswerOf<typeof resultRoutes.list, 200>>(o.run ? `/api/results/${o.run}` : '/api/results', { project: o.project });
  if (!o.download) {
    if (o.json) printJson(items);
    else {
      console.log(table(['RUN', 'PATH', 'SIZE', 'MODIFIED'], items.map((r) => [r.run_id, r.path, bytes(r.size_bytes), r.modified_at])));
      if (!items.length) console.error(`(no result files${o.run ? ` of run ${o.run}` : ''} in project ${o.project}; workflows put them there with the put-files operator)`);
    }
    return 0;
  }
  const root = resolve(o.download);
  const written: { run_id: string; path: string; file: string; bytes: number }[] = [];
  const failed: { run_id: string; path: string; error: string }[] = [];
  const total = items.reduce((n, r) => n + r.size_bytes, 0);
  let received = 0;
  const progress = new ProgressLine(() => `downloading results: ${written.length}/${items.length} files, ${bytes(received)} of ${bytes(total)}`, { quiet: o.json === true });
  for (const r of items) {
    const target = resolve(root, r.run_id, ...r.path.split('/'));
    if (!target.startsWith(root + sep)) {
      failed.push({ run_id: r.run_id, path: r.path, error: 'its path leaves the download folder; not written' });
      continue;
    }
    try {
      if (!o.force) await refuseExisting(target, 1, 'download to another folder, or overwrite with --force');
      const res = await api.download(`/api/results/${encodeURIComponent(r.run_id)}/files/${r.path.split('/').map(encodeURIComponent).join('/')}`, { project: o.project });
      const n = await save(res, target, (k) => {
        received += k;
        progress.tick();
      });
      written.push({ run_id: r.run_id, path: r.path, file: target, bytes: n });
    } catch (err) {
      failed.push({ run_id: r.run_id, path: r.path, error: (err as Error).message });
    }
    progress.tick();
  }
  progress.done();
  if (o.json) printJson({ directory: root, files: written, failed });
  else {
    console.log(`downloaded ${written.length} file(s), ${bytes(written.reduce((n, w) => n + w.bytes, 0))}, to ${join(o.download)}`);
    for (const f of failed) console.error(`error: ${f.run_id}/${f.path}: ${f.error}`);
    if (!items.length) console.error(`(no result files${o.run ? ` of run ${o.run}` : ''} in project ${o.project})`);
  }
  return failed.length ? 1 : 0;
}

import { randomBytes } from 'node:crypto';
import type { ImportError, ImportFile, ImportResult } from '@tessera/api';
import cliProgress from 'cli-progress';
import { CliError, parseError, type ApiClient } from '../api-client.ts';
import { bytes, printJson } from '../output.ts';
import { rate } from '../progress.ts';
import { fileBody, findFiles, LocalReadError, multipartBody, planUploads, type LocalFile, type UnreadableFile, type UploadJob } from '../upload-files.ts';

export interface ImportOptions {
  dataset?: string;
  json?: boolean;
  project: string;
  /** Requests in flight at once. */
  parallel?: number;
  /** Most files in one multipart request. */
  batchFiles?: number;
  /** Most megabytes in one multipart request (a larger file goes alone). */
  batchMb?: number;
}

/**
 * The outcome of a whole import, over all its requests (what --json prints): the counts
 * and files of the server's ImportResult, summed.
 */
export type ImportSummary = Pick<ImportResult, 'stored' | 'duplicates' | 'rejected' | 'files'>;

/** How many rejected files the summary names before "... and N more". */
const SHOWN_REJECTIONS = 20;

/** The server's rule for dataset names (DatasetStore.checkName), checked before gigabytes are sent. */
const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * `tessera import <paths...>`: uploads DICOM files and .zip archives found under the
 * paths to POST /api/dicom/import, streamed from disk in multipart batches with a few
 * requests in flight. Every file is sent (the server says why one is not DICOM); the
 * summary lists stored, duplicate and rejected files with the reasons.
 * Exits 1 when any file was rejected.
 */
export async function importCommand(api: ApiClient, paths: string[], o: ImportOptions): Promise<number> {
  if (o.dataset !== undefined && !DATASET_NAME.test(o.dataset)) {
    throw new CliError(`--dataset "${o.dataset}" is not a valid dataset name: use 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit`, { exitCode: 2 });
  }
  const { files, skipped } = await findFiles(paths);
  if (files.length === 0) {
    throw new CliError(`nothing to import: ${paths.join(', ')} hold${paths.length === 1 ? 's' : ''} no files${skipped ? ` (${skipped} hidden file(s) or DICOMDIR left out)` : ''}`, { exitCode: 2 });
  }
  // Fail fast, before sending gigabytes: is the server there, does the project exist?
  await api.get('/api/datasets', { project: o.project, limit: 1 });

  const progress = new ImportProgress(files, { json: o.json === true });
  const jobs = planUploads(files, { maxFiles: o.batchFiles ?? 64, maxBytes: (o.batchMb ?? 32) * 1024 * 1024 });
  const answers: ImportFile[][] = [];
  let sentFiles = 0;
  let fatal: unknown;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (fatal !== undefined) return;
      const next = jobs.next();
      if (next.done) return;
      const index = answers.length;
      answers.push([]);
      sentFiles += next.value.files.length;
      try {
        const results = await uploadJob(api, next.value, o, progress);
        answers[index] = results;
        progress.answered(next.value, results);
      } catch (err) {
        fatal ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.parallel ?? 4) }, worker));
  progress.stop();

  const results = answers.flat();
  const summary: ImportSummary = {
    stored: results.filter((r) => r.status === 'stored' || r.status === 'replaced').length,
    duplicates: results.filter((r) => r.status === 'duplicate').length,
    rejected: results.filter((r) => r.status === 'rejected').length,
    files: results,
  };
  if (o.json) printJson(summary);
  else if (results.length > 0 || fatal === undefined) printSummary(summary, files, progress.doneFiles, skipped, progress.startedAt, o);
  if (fatal !== undefined) {
    const notAnswered = files.length - progress.doneFiles;
    const message = fatal instanceof Error ? fatal.message : String(fatal);
    throw new CliError(
      `${message}\n  The import stopped: ${notAnswered} of ${files.length} files ${notAnswered === 1 ? 'was' : 'were'} not imported` +
        `${sentFiles < files.length ? ` (${files.length - sentFiles} never sent)` : ''}. Run the same command again once the problem is fixed:` +
        ' files stored already are reported as duplicates.',
      { details: fatal instanceof CliError ? fatal.details : [] },
    );
  }
  return summary.rejected > 0 ? 1 : 0;
}

/** Sends one request and answers the outcome of each of its files. Throws when the whole import must stop. */
async function uploadJob(api: ApiClient, job: UploadJob, o: ImportOptions, progress: ImportProgress): Promise<ImportFile[]> {
  const query = { project: o.project, dataset: o.dataset };
  const unreadable: UnreadableFile[] = [];
  let res: Response;
  if (job.kind === 'zip') {
    const zip = job.files[0]!;
    try {
      res = await api.send('POST', '/api/dicom/import', query, { raw: fileBody(zip, (n) => progress.sent(n)), headers: { 'content-type': 'application/zip' } });
    } catch (err) {
      throw readProblem(err) ?? err;
    }
  } else {
    const boundary = `tessera-${randomBytes(16).toString('hex')}`;
    const body = multipartBody(job.files, boundary, (n) => progress.sent(n), (u) => unreadable.push(u));
    try {
      res = await api.send('POST', '/api/dicom/import', query, { raw: body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } });
    } catch (err) {
      throw readProblem(err) ?? err;
    }
  }
  const local: ImportFile[] = unreadable.map((u) => ({ file: u.file.name, status: 'rejected', error: { code: 'CLI_UNREADABLE', message: `could not be read: ${u.error.message}` } }));
  const text = await res.text();
  let answer: ImportResult | ImportError | undefined;
  try {
    answer = JSON.parse(text) as ImportResult | ImportError;
  } catch {
    answer = undefined;
  }
  if (answer && Array.isArray(answer.files)) {
    // A .zip's entries are named inside the archive: say which archive.
    const files = job.kind === 'zip' ? answer.files.map((f) => ({ ...f, file: `${job.files[0]!.name}/${f.file}` })) : answer.files;
    return [...files, ...local];
  }
  // No per-file answer: the request failed as a whole.
  const e = parseError(text);
  const message = e?.message ?? `POST /api/dicom/import answered ${res.status}: ${text.slice(0, 300)}`;
  const aboutTheFiles = res.status === 413 || (job.kind === 'zip' && (res.status === 400 || res.status === 422));
  if (!aboutTheFiles) throw api.errorOf(res.status, text, 'POST', '/api/dicom/import');
  const error = { code: e?.code ?? `HTTP_${res.status}`, message };
  return [...job.files.filter((f) => !unreadable.some((u) => u.file === f)).map((f) => ({ file: f.name, status: 'rejected' as const, error })), ...local];
}

/**
 * A local read error behind a failed request: fetch reports an error of the body's
 * stream as its cause, which the client keeps as its own cause.
 */
function readProblem(err: unknown): CliError | undefined {
  const cause = (err as { cause?: { cause?: unknown } }).cause?.cause;
  return cause instanceof LocalReadError ? new CliError(cause.message) : undefined;
}

/**
 * The import's progress on stderr: a bar on a terminal (files answered and megabytes
 * sent of the total, instances per second); off a terminal a line every 5 seconds,
 * and none with --json.
 */
class ImportProgress {
  readonly startedAt = Date.now();
  readonly totalFiles: number;
  readonly totalBytes: number;
  sentBytes = 0;
  doneFiles = 0;
  instances = 0;
  rejected = 0;
  readonly #bar: cliProgress.SingleBar | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #lines: boolean;

  constructor(files: LocalFile[], o: { json: boolean }) {
    this.totalFiles = files.length;
    this.totalBytes = files.reduce((n, f) => n + f.size, 0);
    if (process.stderr.isTTY) {
      this.#bar = new cliProgress.SingleBar(
        { format: ' importing [{bar}] {files}/{totalFiles} files | {mb}/{totalMb} MB | {rate} instances/s{rejected}', hideCursor: true, clearOnComplete: false, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      );
      this.#bar.start(Math.max(this.totalBytes, 1), 0, this.#payload());
    }
    this.#lines = !process.stderr.isTTY && !o.json;
    if (this.#lines) this.#timer = setInterval(() => console.error(this.line()), 5000).unref();
  }

  sent(n: number): void {
    this.sentBytes += n;
    this.#bar?.update(this.sentBytes, this.#payload());
  }

  answered(job: UploadJob, results: ImportFile[]): void {
    this.doneFiles += job.files.length;
    this.instances += results.filter((r) => r.status !== 'rejected').length;
    this.rejected += results.filter((r) => r.status === 'rejected').length;
    this.#bar?.update(this.sentBytes, this.#payload());
  }

  /** The progress as one line (off a terminal). */
  line(final = false): string {
    const r = rate(this.instances, this.startedAt, final);
    return `import: ${this.doneFiles}/${this.totalFiles} files done, ${mb(this.sentBytes)}/${mb(this.totalBytes)} MB sent, ${r === undefined ? '-' : r.toFixed(1)} instances/s${this.rejected ? `, ${this.rejected} rejected` : ''}`;
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#lines) console.error(this.line(true));
    if (this.#bar) {
      this.#bar.update(this.sentBytes, this.#payload(true));
      this.#bar.stop();
    }
  }

  #payload(final = false): Record<string, string | number> {
    const r = rate(this.instances, this.startedAt, final);
    return {
      files: this.doneFiles,
      totalFiles: this.totalFiles,
      mb: mb(this.sentBytes),
      totalMb: mb(this.totalBytes),
      rate: r === undefined ? '-' : r.toFixed(1),
      rejected: this.rejected ? ` | ${this.rejected} rejected` : '',
    };
  }
}

function mb(n: number): string {
  return (n / (1024 * 1024)).toFixed(1);
}

function printSummary(s: ImportSummary, files: LocalFile[], answered: number, skipped: number, startedAt: number, o: ImportOptions): void {
  const seconds = (Date.now() - startedAt) / 1000;
  const size = files.reduce((n, f) => n + f.size, 0);
  const sent = answered === files.length ? `${files.length} file(s), ${bytes(size)},` : `${answered} of ${files.length} file(s)`;
  const series = new Set(s.files.filter((f) => f.status !== 'rejected' && f.series_instance_uid).map((f) => f.series_instance_uid)).size;
  const where = o.dataset ? `dataset ${o.dataset}` : "the day's import dataset (import-YYYY-MM-DD; choose one with --dataset)";
  console.log(`sent ${sent} in ${seconds.toFixed(1)} s to project ${o.project}, ${where}`);
  if (skipped) console.log(`left out ${skipped} hidden file(s) or DICOMDIR`);
  console.log(`  stored:     ${s.stored}`);
  console.log(`  duplicates: ${s.duplicates}${s.duplicates ? ' (already in the store)' : ''}`);
  console.log(`  rejected:   ${s.rejected}`);
  if (series) console.log(`  series:     ${series}`);
  const rejected = s.files.filter((f) => f.status === 'rejected');
  if (rejected.length) {
    console.log('rejected files:');
    for (const r of rejected.slice(0, SHOWN_REJECTIONS)) console.log(`  ${r.file}: ${r.error?.message ?? 'rejected'}`);
    if (rejected.length > SHOWN_REJECTIONS) console.log(`  ... and ${rejected.length - SHOWN_REJECTIONS} more (all of them with --json)`);
  }
  if (s.stored + s.duplicates > 0) console.log(`see them with: tessera series${o.dataset ? ` --dataset ${o.dataset}` : ''}${o.project !== 'admin' ? ` --project ${o.project}` : ''}`);
}

import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve, sep } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import type { AnswerOf, dataRoutes, Job, resultRoutes, RunDetail, TriggerJob } from '@tessera/api';
import { readManifest } from '@tessera/extension-packages';
import { TesseraError, ajvErrorsToDetails, createAjv } from '@tessera/model';
import { ApiClient, CliError } from '../api-client.ts';
import type { TokenCredential } from '../credentials.ts';
import { buildAndUpload, installAndWait } from './ext-command.ts';

export const TEST_FILE = 'tessera-test.json';

const TestCase = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    workflow: Type.String({ minLength: 1, description: 'Id of a workflow of the extension.' }),
    data: Type.Optional(Type.String({ description: '"sample:ct" (bundled with Tessera), or a folder or .zip of DICOM files relative to the extension folder; default sample:ct.' })),
    form: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'workflow_form values.' })),
    expect: Type.Optional(
      Type.Object(
        {
          state: Type.Optional(Type.Union([Type.Literal('success'), Type.Literal('failed')])),
          files: Type.Optional(Type.Array(Type.String(), { description: 'Globs under the run\'s workflow dir, each must match a file.' })),
          results: Type.Optional(Type.Array(Type.String(), { description: 'Globs in the run\'s result bucket (put-files), each must match a file.' })),
          series: Type.Optional(
            Type.Array(
              Type.Object({ modality: Type.Optional(Type.String()), description: Type.Optional(Type.String()), min: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false }),
              { description: 'Series the run stored (put-result): at least `min` (default 1) with this modality / description.' },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
const TestFile = Type.Object({ cases: Type.Array(TestCase, { minItems: 1 }) }, { additionalProperties: false });
type TestCaseT = Static<typeof TestCase>;
const validateTestFile = createAjv().compile(TestFile);

/** A glob as a regular expression: `**` any path, `*` within one segment, `?` one character. */
export function globRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The admin token of the throwaway platform's runtime file (it is written when access control is on). */
function runtimeCredential(file: string): TokenCredential {
  return { token: (JSON.parse(readFileSync(file, 'utf8')) as { token: string }).token, from: 'runtime-file', file };
}

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

async function listAll(dir: string, root = dir): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await listAll(full, root)));
    else out.push(relative(root, full).split(sep).join('/'));
  }
  return out;
}

/**
 * `tessera ext test [folder]`: starts a throwaway platform (temporary home, free port,
 * no DICOM port), installs the extension, and for each case of tessera-test.json
 * imports its data, runs the workflow, and checks what the case expects. Exit 0 when
 * every case passes.
 */
export async function extTestCommand(folder: string, o: { keep?: boolean; case?: string }): Promise<number> {
  const root = resolve(folder);
  const manifest = await readManifest(root);
  const cases = await readCases(root, manifest.name, o.case);
  const home = await mkdtemp(join(tmpdir(), `tessera-ext-test-${manifest.name}-`));
  console.error(`starting a throwaway platform in ${home}`);
  const { createTessera, loadConfig } = await import('@tessera/server');
  const tessera = await createTessera({
    ...loadConfig({ ...process.env, TESSERA_EXTENSIONS_DIRS: '', TESSERA_LOG_LEVEL: 'silent' }),
    home,
    // Only the extension under test: no built-in collection, nothing installed at start.
    builtinExtensionsDir: join(home, 'no-builtin-extensions'),
    port: 0,
    // Applications on their own origin, on a free port like the platform's.
    appsPort: 0,
    host: '127.0.0.1',
    dicomPort: 'off',
    defaultExtensions: [],
    seriesQuietSeconds: 0.2,
    publicUrl: undefined,
    // Access control as on a real server; the CLI signs in with the runtime file's admin token, kept in the home, not ~/.local/state.
    stateDir: join(home, 'state'),
  });
  let failed = 0;
  try {
    const api = new ApiClient(await tessera.listen(), tessera.runtimeFile ? runtimeCredential(tessera.runtimeFile) : undefined);
    const { name, version } = await buildAndUpload(api, root);
    await installAndWait(api, name, { version, wait: true });
    for (const [i, c] of cases.entries()) {
      const started = Date.now();
      const problems = await runCase(api, root, c, `test-${i + 1}`);
      const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
      if (problems.length === 0) {
        console.log(`PASS  ${c.name} (${took})`);
      } else {
        failed++;
        console.log(`FAIL  ${c.name} (${took})`);
        for (const p of problems) console.log(`      ${p.replace(/\n/g, '\n      ')}`);
      }
    }
  } finally {
    await tessera.close();
    if (o.keep) console.error(`kept the platform's home: ${home}`);
    else await rm(home, { recursive: true, force: true });
  }
  console.log(`${cases.length - failed} of ${cases.length} case${cases.length === 1 ? '' : 's'} passed`);
  return failed === 0 ? 0 : 1;
}

/** What the workflow dir holds where a glob looked: the files of the deepest folder pattern of it that matched anything. */
function nearby(glob: string, files: string[]): string {
  const parts = glob.split('/');
  for (let n = parts.length - 1; n > 0; n--) {
    const dir = globRegExp(parts.slice(0, n).join('/'));
    const found = files.filter((f) => dir.test(f.split('/').slice(0, n).join('/')) && f.split('/').length === n + 1);
    if (found.length > 0) return ` (${parts.slice(0, n).join('/')}/ has ${found.slice(0, 6).map((f) => f.split('/').pop()).join(', ')}${found.length > 6 ? ', ...' : ''})`;
  }
  return files.length ? '' : ' (the workflow dir is empty)';
}

async function readCases(root: string, name: string, only: string | undefined): Promise<TestCaseT[]> {
  const file = join(root, TEST_FILE);
  if (!existsSync(file)) {
    throw new CliError(`${file} does not exist: it names what to run and what to expect, e.g.\n` +
      `  { "cases": [ { "name": "runs on the sample CT", "workflow": "${name}", "data": "sample:ct", "expect": { "state": "success", "files": ["batch/*/<task>/*"] } } ] }`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new CliError(`${file} is not JSON: ${(err as Error).message}`);
  }
  if (!validateTestFile(raw)) {
    const details = ajvErrorsToDetails(validateTestFile.errors, TEST_FILE);
    throw new TesseraError('TESSERA_INVALID_REQUEST', `${file} is invalid`, { details });
  }
  const cases = (raw as Static<typeof TestFile>).cases.filter((c) => !only || c.name === only);
  if (cases.length === 0) throw new CliError(`no case is named "${only}" in ${file}`);
  return cases;
}

async function runCase(api: ApiClient, root: string, c: TestCaseT, dataset: string): Promise<string[]> {
  const data = c.data ?? 'sample:ct';
  let files: string[];
  let cleanup: string | undefined;
  if (data.startsWith('sample:')) {
    const { writeSample } = await import('@tessera/dicom');
    cleanup = await mkdtemp(join(tmpdir(), 'tessera-sample-'));
    try {
      await writeSample(data.slice('sample:'.length), cleanup);
    } catch (err) {
      await rm(cleanup, { recursive: true, force: true });
      return [(err as Error).message];
    }
    files = (await listAll(cleanup)).map((f) => join(cleanup!, f));
  } else {
    const path = resolve(root, data);
    if (!existsSync(path)) return [`data "${data}" does not exist (${path})`];
    files = (await stat(path)).isDirectory() ? (await listAll(path)).map((f) => join(path, f)) : [path];
  }
  try {
    for (const file of files) {
      const zip = file.endsWith('.zip');
      const res = await api.send('POST', '/api/dicom/import', { dataset }, { raw: once(await readFile(file)), headers: { 'content-type': zip ? 'application/zip' : 'application/dicom' } });
      if (!res.ok) await api.fail(res, 'POST', '/api/dicom/import');
    }
  } finally {
    if (cleanup) await rm(cleanup, { recursive: true, force: true });
  }
  // Series the run stores (put-result) are those that were not there before it.
  const before = new Set((await api.get<AnswerOf<typeof dataRoutes.list, 200>>('/api/series', { dataset, limit: 1000 })).items.map((x) => x.series_instance_uid));
  const job = await api.post<Job>('/api/jobs', { workflow: c.workflow, conf: { workflow_form: c.form ?? {}, data_form: { dataset_name: dataset } } } satisfies TriggerJob);
  const problems: string[] = [];
  if (job.runs.length === 0) problems.push(`the job started no run (does dataset ${dataset} hold series the workflow takes?)`);
  for (const { id } of job.runs) {
    let run = await api.get<RunDetail>(`/api/runs/${id}`);
    while (!['success', 'failed', 'canceled'].includes(run.state)) {
      await new Promise((r) => setTimeout(r, 100));
      run = await api.get<RunDetail>(`/api/runs/${id}`);
    }
    const expect = c.expect ?? {};
    const wanted = expect.state ?? 'success';
    if (run.state !== wanted) {
      problems.push(`run ${id} ended ${run.state}, expected ${wanted}${run.reason ? `: ${run.reason}` : ''}`);
      for (const t of run.tasks.filter((x) => x.state === 'failed')) {
        const log = await api.download(`/api/runs/${id}/tasks/${encodeURIComponent(t.id)}/log`).then((r) => r.text()).catch(() => '');
        problems.push(`task ${t.id} failed${t.reason ? ` (${t.reason})` : ''}; its log ends:\n${log.trimEnd().split('\n').slice(-15).join('\n')}`);
      }
    }
    const inDir = run.workflow_dir ? await listAll(run.workflow_dir) : [];
    for (const glob of expect.files ?? []) {
      const re = globRegExp(glob);
      if (!inDir.some((f) => re.test(f))) problems.push(`no file in the workflow dir matches "${glob}"${nearby(glob, inDir)}`);
    }
    if (expect.results?.length) {
      const { items } = await api.get<AnswerOf<typeof resultRoutes.ofRun, 200>>(`/api/results/${id}`, { limit: 1000 });
      for (const glob of expect.results) {
        const re = globRegExp(glob);
        if (!items.some((f) => re.test(f.path))) problems.push(`no result file of the run matches "${glob}"${items.length ? ` (it has ${items.slice(0, 8).map((f) => f.path).join(', ')})` : ' (it has none)'}`);
      }
    }
    for (const s of expect.series ?? []) {
      const found = await api.get<AnswerOf<typeof dataRoutes.list, 200>>('/api/series', { dataset, modality: s.modality, limit: 1000 });
      const n = found.items.filter((x) => !before.has(x.series_instance_uid) && (!s.description || x.series_description === s.description)).length;
      const min = s.min ?? 1;
      if (n < min) problems.push(`expected at least ${min} series stored by the run${s.modality ? ` of modality ${s.modality}` : ''}${s.description ? ` described "${s.description}"` : ''}, found ${n}`);
    }
  }
  return problems;
}

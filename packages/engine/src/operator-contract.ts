import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, realpathSync } from 'node:fs';
import { mkdir, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { BATCH_NAME, CONTRACT_ENV, PLATFORM_ENV, kaapanaEnv, pythonStr, seriesIdsOf, type TaskSpec } from '@tessera/model';

// The model is their home; re-exported for the engine's importers.
export { BATCH_NAME, CONTAINER_DATA_ROOT } from '@tessera/model';

/** The name of one of the operator contract's environment variables. */
type ContractEnvName = (typeof CONTRACT_ENV)[keyof typeof CONTRACT_ENV];

/** The run configuration written to conf/conf.json, in Kaapana's shape. */
export interface RunConf {
  workflow_form: Record<string, unknown>;
  data_form: Record<string, unknown> & { identifiers?: string[] };
  project_form: { id: string; name: string };
  /** Kaapana's per-task user input: `task_form.<task id>.env` = [{name, value}] (Task API tasks). */
  task_form?: Record<string, { env?: { name: string; value: string }[] }>;
  [key: string]: unknown;
}

export interface ContractEnvInput {
  workflowDir: string;
  runId: string;
  dagId: string;
  task: TaskSpec;
  conf: RunConf;
  /** URLs and credentials of platform services a task may call. */
  services: Record<string, string>;
  /** The project's models dir as the task sees it (MODELS_DIR); unset when the task has none. */
  modelsDir?: string;
}

/**
 * The environment of the operator contract (see docs/guides/operator-contract.md):
 * WORKFLOW_DIR, BATCH_NAME, OPERATOR_IN_DIR, OPERATOR_OUT_DIR, BATCHES_INPUT_DIR,
 * RUN_ID, DAG_ID, TASK_ID, every workflow_form key UPPERCASED with Python's str()
 * of its value, then Kaapana's variables that have an equivalent here (kaapanaEnv) and
 * MODELS_DIR, then the platform services, then the operator's own env (which wins).
 */
export function contractEnv(input: ContractEnvInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(input.conf.workflow_form)) {
    env[key.toUpperCase()] = pythonStr(value);
  }
  // Typed by the names, so that a variable added to CONTRACT_ENV cannot be left unset here.
  const contract: Record<ContractEnvName, string> = {
    [CONTRACT_ENV.workflowDir]: input.workflowDir,
    [CONTRACT_ENV.batchName]: BATCH_NAME,
    [CONTRACT_ENV.operatorInDir]: input.task.input_dir ?? '',
    [CONTRACT_ENV.operatorOutDir]: input.task.output_dir,
    [CONTRACT_ENV.batchesInputDir]: join(input.workflowDir, BATCH_NAME),
    [CONTRACT_ENV.runId]: input.runId,
    [CONTRACT_ENV.dagId]: input.dagId,
    [CONTRACT_ENV.taskId]: input.task.id,
    [CONTRACT_ENV.operatorLevel]: input.task.level,
  };
  Object.assign(env, contract);
  Object.assign(env, kaapanaEnv(input.services.TESSERA_API_URL, input.conf.project_form));
  if (input.modelsDir !== undefined) env[PLATFORM_ENV.modelsDir] = input.modelsDir;
  Object.assign(env, input.services, input.task.env);
  // Kaapana's Task API precedence: template env < operator env (both in task.env) < conf.task_form.
  const form = input.conf.task_form?.[input.task.id]?.env;
  if (Array.isArray(form)) for (const e of form) env[e.name] = e.value;
  return env;
}

/** Creates the workflow dir of a run: conf/, batch/<series>/ for each identifier. */
export async function prepareWorkflowDir(workflowDir: string, conf: RunConf): Promise<void> {
  await mkdir(join(workflowDir, 'conf'), { recursive: true });
  await writeFile(join(workflowDir, 'conf', 'conf.json'), JSON.stringify(conf, null, 2));
  for (const uid of seriesIdsOf(conf.data_form)) {
    await mkdir(join(workflowDir, BATCH_NAME, uid), { recursive: true });
  }
}

/** The host paths of a task's own output dirs: `<output_dir>` of the run, or `batch/<series>/<output_dir>` of each series. */
export function outputDirsOf(workflowDir: string, task: Pick<TaskSpec, 'level' | 'output_dir'>, identifiers: readonly string[]): string[] {
  return task.level === 'batch' ? [join(workflowDir, task.output_dir)] : identifiers.map((uid) => join(workflowDir, BATCH_NAME, uid, task.output_dir));
}

/**
 * Makes a task's output dirs ready before a try starts: created when missing and,
 * unless the task has `keep_outputs`, emptied of what an earlier try (or an earlier
 * attempt of the run) left there, as Kaapana's operators do (`delete_output_on_start`).
 * Only the task's own output dirs are touched (outputDirsOf), never a symbolic link's
 * target: a dir whose path inside the workflow dir goes through a symbolic link is
 * refused (the try fails, saying so); a link in the output dir's place is removed, not
 * followed; a dir is first renamed aside, then removed, and removal never follows links.
 * Synchronous where nothing is to remove: a few mkdir calls cost less than a hop through
 * the thread pool. `made` remembers the dirs made already (a retry, or tasks sharing an
 * output dir), which keep_outputs need not make again.
 */
export async function prepareOutputDirs(workflowDir: string, task: TaskSpec, identifiers: readonly string[], made?: Set<string>): Promise<void> {
  // Task API channels (folders of the workflow dir mounted at paths of their own): the
  // output channels are the task's outputs too; input channels are only made to exist,
  // so that a bind never misses its source, and are never emptied (they are an upstream task's).
  const mounts = task.container?.mounts ?? [];
  const outputs = [...outputDirsOf(workflowDir, task, identifiers), ...mounts.filter((m) => m.read_only !== true).map((m) => join(workflowDir, m.source))];
  for (const m of mounts.filter((x) => x.read_only === true)) {
    const dir = join(workflowDir, m.source);
    if (made?.has(dir)) continue;
    mkdirSync(dir, { recursive: true });
    made?.add(dir);
  }
  for (const dir of outputs) {
    if (task.keep_outputs) {
      if (made?.has(dir)) continue;
    } else {
      await clearOutputDir(workflowDir, dir);
    }
    mkdirSync(dir, { recursive: true });
    made?.add(dir);
  }
}

/** Removes `dir` (inside `workflowDir`) if it exists; refuses when a symbolic link is on its way there. */
async function clearOutputDir(workflowDir: string, dir: string): Promise<void> {
  // No exception for the common case (a first try: nothing there yet), which costs a stack trace.
  const stat = lstatSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) return;
  // Every component between the workflow dir and the output dir must be a real dir: a
  // link there (batch/<series> made a link by a task) would make us delete elsewhere.
  const parent = dirname(dir);
  const expected = join(realpathSync(workflowDir), relative(workflowDir, parent));
  if (realpathSync(parent) !== expected) {
    throw new Error(`will not empty the output dir ${dir}: a symbolic link is on its path inside the workflow dir`);
  }
  if (!stat.isDirectory()) {
    // A link (or a file) in the output dir's place: remove the entry itself, never its target.
    await unlink(dir);
    return;
  }
  // Renamed aside first: what the name holds from now on is ours to make.
  const aside = join(parent, `.${basename(dir)}.cleared-${randomBytes(6).toString('hex')}`);
  await rename(dir, aside);
  // Not fatal: the output dir's name is free already. What a container wrote as another
  // user (root) may not be ours to remove; it goes with the workflow dir.
  await rm(aside, { recursive: true, force: true }).catch(() => undefined);
}

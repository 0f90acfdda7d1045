import { mkdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BATCH_NAME, CONTRACT_ENV, pythonStr, seriesIdsOf, type TaskSpec } from '@tessera/model';

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
}

/**
 * The environment of the operator contract (see docs/guides/operator-contract.md):
 * WORKFLOW_DIR, BATCH_NAME, OPERATOR_IN_DIR, OPERATOR_OUT_DIR, BATCHES_INPUT_DIR,
 * RUN_ID, DAG_ID, TASK_ID, every workflow_form key UPPERCASED with Python's str()
 * of its value, then the platform services, then the operator's own env (which wins).
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

/**
 * Creates the output dirs a task writes to, before it starts. Synchronous on
 * purpose: a few mkdir calls cost less than a hop through the thread pool, which
 * waits behind every other file operation of a busy server. `made` remembers the
 * dirs already there (a retry, or tasks sharing an output dir).
 */
export function prepareOutputDirs(workflowDir: string, task: TaskSpec, identifiers: readonly string[], made?: Set<string>): void {
  const dirs = task.level === 'batch' ? [join(workflowDir, task.output_dir)] : identifiers.map((uid) => join(workflowDir, BATCH_NAME, uid, task.output_dir));
  // Folders mounted at paths of their own (Task API channels): inputs too, so that a bind never misses its source.
  for (const m of task.container?.mounts ?? []) dirs.push(join(workflowDir, m.source));
  for (const dir of dirs) {
    if (made?.has(dir)) continue;
    mkdirSync(dir, { recursive: true });
    made?.add(dir);
  }
}

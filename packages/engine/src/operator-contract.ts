import { mkdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pythonStr, type TaskSpec } from '@tessera/model';

/** Where a container sees the workflow dir, so that Kaapana processing containers run unchanged. */
export const CONTAINER_DATA_ROOT = '/kaapana/mounted/data';
export const BATCH_NAME = 'batch';

/** The run configuration written to conf/conf.json, in Kaapana's shape. */
export interface RunConf {
  workflow_form: Record<string, unknown>;
  data_form: Record<string, unknown> & { identifiers?: string[] };
  project_form: { id: string; name: string };
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
  Object.assign(env, {
    WORKFLOW_DIR: input.workflowDir,
    BATCH_NAME,
    OPERATOR_IN_DIR: input.task.input_dir ?? '',
    OPERATOR_OUT_DIR: input.task.output_dir,
    BATCHES_INPUT_DIR: join(input.workflowDir, BATCH_NAME),
    RUN_ID: input.runId,
    DAG_ID: input.dagId,
    TASK_ID: input.task.id,
    OPERATOR_LEVEL: input.task.level,
  });
  Object.assign(env, input.services, input.task.env);
  return env;
}

/** Creates the workflow dir of a run: conf/, batch/<series>/ for each identifier. */
export async function prepareWorkflowDir(workflowDir: string, conf: RunConf): Promise<void> {
  await mkdir(join(workflowDir, 'conf'), { recursive: true });
  await writeFile(join(workflowDir, 'conf', 'conf.json'), JSON.stringify(conf, null, 2));
  for (const uid of conf.data_form.identifiers ?? []) {
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
  for (const dir of dirs) {
    if (made?.has(dir)) continue;
    mkdirSync(dir, { recursive: true });
    made?.add(dir);
  }
}

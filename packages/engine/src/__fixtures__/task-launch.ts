import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { validateDagSpec, type TaskSpec } from '@tessera/model';
import { contractEnv, prepareOutputDirs, prepareWorkflowDir, type RunConf } from '../operator-contract.ts';
import type { TaskLaunch } from '../runners/runner.ts';

let counter = 0;

/**
 * A one-task launch for runner tests: a validated spec, a workflow dir with two
 * series and the task's output dirs, a log file under `<dir>/logs`.
 */
export async function makeTestLaunch(options: {
  dir: string;
  dagId: string;
  task: Record<string, unknown>;
  form?: Record<string, unknown>;
}): Promise<TaskLaunch> {
  counter++;
  const runId = `r-${options.dagId}-${process.pid}-${counter}-${Date.now().toString(36)}`;
  const spec = validateDagSpec({
    spec_version: 1,
    id: options.dagId,
    workflow_form: { type: 'object' },
    data_form: { type: 'object' },
    tasks: [{ id: 'op', operator: 'op', output_dir: 'out', ...options.task }],
  });
  const task: TaskSpec = spec.tasks[0]!;
  const workflowDir = join(options.dir, runId);
  const conf: RunConf = {
    workflow_form: options.form ?? {},
    data_form: { identifiers: ['1.2.3.4', '1.2.3.5'] },
    project_form: { id: 'p1', name: 'admin' },
  };
  await prepareWorkflowDir(workflowDir, conf);
  await prepareOutputDirs(workflowDir, task, conf.data_form.identifiers ?? []);
  await mkdir(join(options.dir, 'logs'), { recursive: true });
  return {
    key: `${runId}/op/1.1`,
    runId,
    taskId: 'op',
    dagId: options.dagId,
    task,
    workflowDir,
    extensionDir: undefined,
    logFile: join(options.dir, 'logs', `${runId}.log`),
    env: (wd) => contractEnv({ workflowDir: wd, runId, dagId: options.dagId, task, conf, services: {} }),
    conf,
  };
}

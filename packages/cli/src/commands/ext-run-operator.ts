import { existsSync } from 'node:fs';
import { cp, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerRunner, ProcessRunner, contractEnv, prepareOutputDirs, type Runner } from '@tessera/engine';
import { dockerSocketPath } from '@tessera/extension-packages';
import type { RunDetail } from '@tessera/api';
import { BATCH_NAME, type TaskSpec } from '@tessera/model';
import { CliError, type ApiClient } from '../api-client.ts';
import { parseParams } from './ext-command.ts';

export interface RunOperatorOptions {
  runner?: 'docker' | 'process';
  image?: string;
  env: string[];
  project: string;
  /** Write into the run's own workflow dir; default: into a copy of it, made for this try. */
  inPlace?: boolean;
}

/**
 * `tessera ext run-operator <run> <task>`: runs one task of a past run again, by hand,
 * with the environment the scheduler gives it (the operator contract), on a copy of
 * that run's workflow dir (`--in-place`: on the run's own, whose outputs it replaces).
 * Its output dirs are emptied first, as before every try (unless the operator keeps
 * its outputs). Its output streams to the terminal, and it says where the outputs went;
 * the run's state in the platform does not change. For iterating on one container
 * without the whole DAG.
 */
export async function extRunOperatorCommand(api: ApiClient, runId: string, taskId: string, o: RunOperatorOptions): Promise<number> {
  const run = await api.get<RunDetail>(`/api/runs/${encodeURIComponent(runId)}`);
  const spec = run.spec.tasks.find((t) => t.id === taskId);
  if (!spec) throw new CliError(`run ${runId} has no task "${taskId}"; its tasks: ${run.spec.tasks.map((t) => t.id).join(', ')}`, { exitCode: 2 });
  if (!run.workflow_dir) throw new CliError(`run ${runId}'s workflow dir was removed (retention); run the workflow again and use the new run`);
  if (!existsSync(run.workflow_dir)) {
    throw new CliError(`run ${runId}'s workflow dir ${run.workflow_dir} is not on this machine: run-operator works where the server keeps its runs (or on a copy at the same path)`);
  }
  const task: TaskSpec = {
    ...spec,
    env: { ...spec.env, ...parseParams(o.env) },
    ...(o.image ? { container: { ...(spec.container ?? {}), image: o.image } } : {}),
  } as TaskSpec;
  if (spec.builtin && !o.image) throw new CliError(`task "${taskId}" is the built-in operator ${spec.builtin}; it runs inside the platform only (retry the run to run it again)`, { exitCode: 2 });

  const useDocker = o.runner ? o.runner === 'docker' : task.container !== undefined && existsSync(dockerSocketPath());
  let runner: Runner;
  if (useDocker) {
    if (!task.container) throw new CliError(`task "${taskId}" has no container image; use --runner process, or give one with --image`, { exitCode: 2 });
    runner = new DockerRunner({ homeId: 'run-operator', socketPath: dockerSocketPath() });
  } else {
    if (!task.process) {
      throw new CliError(`task "${taskId}" has no process command${task.container ? (o.runner === 'process' ? '; it runs only in its container (--runner docker)' : ', and no Docker engine answers here (start one, or set DOCKER_HOST)') : ''}`, { exitCode: 2 });
    }
    runner = new ProcessRunner({ homeId: 'run-operator' });
  }
  const identifiers = identifiersOf(run.conf);
  const workflowDir = o.inPlace ? run.workflow_dir : await copyOfWorkflowDir(run.workflow_dir, runId);
  await prepareOutputDirs(workflowDir, task, identifiers);
  const logDir = await mkdtemp(join(tmpdir(), 'tessera-run-operator-'));
  const logFile = join(logDir, 'task.log');
  const conf = run.conf as unknown as Parameters<typeof contractEnv>[0]['conf'];
  console.error(`running ${taskId} of ${runId} (${runner.name}${task.container ? `, image ${task.container.image}` : ''}) on ${o.inPlace ? `the run's workflow dir ${workflowDir}` : `a copy of its workflow dir, ${workflowDir}`}`);
  const started = Date.now();
  try {
    const exec = await runner.start({
      key: `${runId}/${taskId}/manual.${Date.now()}`,
      runId,
      taskId,
      dagId: run.spec.id,
      task,
      workflowDir,
      extensionDir: run.extension_dir ?? undefined,
      logFile,
      env: (workflowDir) => contractEnv({ workflowDir, runId, dagId: run.spec.id, task, conf, services: { TESSERA_API_URL: api.baseUrl } }),
      conf,
    });
    const stop = (): void => void runner.stop(exec.handle);
    process.once('SIGINT', stop);
    let offset = 0;
    let pumping = Promise.resolve();
    // One read at a time: overlapping reads would print the same bytes twice.
    const pump = (): Promise<void> => (pumping = pumping.then(readNew));
    const readNew = async (): Promise<void> => {
      if (!existsSync(logFile)) return;
      const fh = await open(logFile, 'r');
      try {
        const buf = Buffer.alloc(64 * 1024);
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          if (bytesRead === 0) break;
          offset += bytesRead;
          process.stdout.write(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
    };
    const timer = setInterval(() => void pump(), 100);
    const outcome = await exec.done;
    clearInterval(timer);
    process.removeListener('SIGINT', stop);
    await pump();
    const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    console.error(`${taskId}: ${outcome.state}${outcome.exitCode !== undefined ? ` (exit ${outcome.exitCode})` : ''}${outcome.reason ? `: ${outcome.reason}` : ''} in ${took}`);
    console.error(`outputs: ${outputsWhere(workflowDir, task)}${o.inPlace ? '' : ` (a copy; the run's own workflow dir ${run.workflow_dir} is unchanged)`}`);
    return outcome.state === 'failed' ? 1 : 0;
  } finally {
    await (runner as { close?: () => Promise<void> }).close?.();
    await rm(logDir, { recursive: true, force: true });
  }
}

/**
 * A copy of a run's workflow dir for one try by hand, in a fresh temporary folder, as
 * `<tmp>/tessera-run-operator-XXXXXX/<run id>`; kept after the try, for a look.
 * Symbolic links are copied as links.
 */
async function copyOfWorkflowDir(workflowDir: string, runId: string): Promise<string> {
  const copy = join(await mkdtemp(join(tmpdir(), 'tessera-run-operator-')), runId);
  await cp(workflowDir, copy, { recursive: true, verbatimSymlinks: true, errorOnExist: true });
  return copy;
}

/** Where a task's outputs are, as one path: `<dir>/<output_dir>` or `<dir>/batch/*\/<output_dir>`. */
function outputsWhere(workflowDir: string, task: TaskSpec): string {
  return task.level === 'batch' ? join(workflowDir, task.output_dir) : join(workflowDir, BATCH_NAME, '*', task.output_dir);
}

/**
 * The series a run works on: `data_form.identifiers` of its configuration, which the
 * contract declares as a free-form object (`RunDetail.conf`).
 */
function identifiersOf(conf: RunDetail['conf']): string[] {
  const ids = (conf.data_form as { identifiers?: unknown } | undefined)?.identifiers;
  return Array.isArray(ids) ? ids.filter((id): id is string => typeof id === 'string') : [];
}

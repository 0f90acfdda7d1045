import { seriesIdsOf, type DagSpec, type TaskSpec } from '@tessera/model';
import { join } from 'node:path';
import { contractEnv, type RunConf } from '../operator-contract.ts';
import type { TaskLaunch } from '../runners/runner.ts';
import type { StopReason } from './decisions/task-outcome.ts';
import type { RunRow, TaskRow } from '../store/workflow-tables.ts';

/** A run the scheduler is driving, held in memory next to its DB rows. */
export interface LiveRun {
  row: RunRow;
  spec: DagSpec;
  conf: RunConf;
  identifiers: string[];
  tasks: Map<string, TaskRow>;
  specs: Map<string, TaskSpec>;
  downstream: Map<string, string[]>;
  /** Tasks not yet in a terminal state; the run ends when it reaches 0. */
  pending: number;
  /** Output dirs already created in this run's workflow dir. */
  madeDirs: Set<string>;
}

/** A task try that a runner is executing. */
export interface LiveTask {
  run: LiveRun;
  taskId: string;
  key: string;
  runnerName: string;
  handle: string | undefined;
  /** Why the scheduler stopped it, if it did. */
  stopReason: StopReason | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Whether the try's slot and pool share were given back. */
  released: boolean;
  /** Whether an API credential was issued for this try (revoked when it ends). */
  credentialed: boolean;
  /** Resolves once the try's outcome has been handled (however it ended). */
  settled: Promise<void>;
  settle: () => void;
}

export function newLiveTask(fields: Omit<LiveTask, 'settled' | 'settle' | 'stopReason' | 'timer' | 'released' | 'credentialed'>): LiveTask {
  let settle!: () => void;
  const settled = new Promise<void>((resolve) => (settle = resolve));
  return { ...fields, stopReason: undefined, timer: undefined, released: false, credentialed: false, settled, settle };
}

export function buildLiveRun(row: RunRow, taskRows: TaskRow[]): LiveRun {
  const spec = JSON.parse(row.spec) as DagSpec;
  const conf = JSON.parse(row.conf) as RunConf;
  const specs = new Map(spec.tasks.map((t) => [t.id, t]));
  const downstream = new Map<string, string[]>(spec.tasks.map((t) => [t.id, []]));
  for (const t of spec.tasks) for (const u of t.upstream) downstream.get(u)!.push(t.id);
  const tasks = new Map(taskRows.map((t) => [t.task_id, t]));
  let pending = 0;
  for (const t of taskRows) if (!isTerminal(t.state)) pending++;
  return { row, spec, conf, identifiers: seriesIdsOf(conf.data_form), tasks, specs, downstream, pending, madeDirs: new Set() };
}

/** What a runner needs to start (or find again) a try of a live run: `services` are the platform's, with the try's credential. */
export function taskLaunch(o: { home: string; services: Record<string, string>; logFile: string }, run: LiveRun, row: TaskRow): TaskLaunch {
  const task = run.specs.get(row.task_id)!;
  // The project's models dir (`/models` in containers, MODELS_DIR), made on demand by the runners.
  const modelsDir = join(o.home, 'models', run.row.project_id);
  return {
    key: tryKey(run, row),
    runId: run.row.id,
    taskId: row.task_id,
    dagId: run.spec.id,
    task,
    workflowDir: run.row.workflow_dir,
    extensionDir: run.row.extension_dir ?? undefined,
    logFile: o.logFile,
    modelsDir,
    env: (workflowDir) => contractEnv({ workflowDir, runId: run.row.id, dagId: run.spec.id, task, conf: run.conf, services: o.services, modelsDir }),
    conf: run.conf,
    startedBy: { projectId: run.row.project_id, userId: run.row.started_by, userName: run.row.started_by_name, role: run.row.started_role },
  };
}

export function taskKey(runId: string, taskId: string): string {
  return `${runId}/${taskId}`;
}

export function tryKey(run: LiveRun, task: TaskRow): string {
  return `${run.row.id}/${task.task_id}/${task.attempt}.${task.try_number}`;
}

const TERMINAL = new Set(['success', 'failed', 'upstream_failed', 'skipped', 'canceled']);
export function isTerminal(state: string): boolean {
  return TERMINAL.has(state);
}

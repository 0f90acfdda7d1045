import { isTerminalRunState, isTerminalTaskState, type RunState, type TaskState } from '@tessera/model';
import type { RunPatch } from '../../store/workflow-store.ts';
import type { RunRow, TaskRow } from '../../store/workflow-tables.ts';
import type { TaskDecision } from './task-readiness.ts';

/** The shape of a run that end decisions read. No I/O behind it. */
export interface RunView {
  row: Pick<RunRow, 'state' | 'attempt'>;
  /** Tasks not yet in a terminal state. */
  pending: number;
  tasks: ReadonlyMap<string, Pick<TaskRow, 'task_id' | 'state' | 'reason'>>;
  downstream: ReadonlyMap<string, readonly string[]>;
}

/** The reason of a run (and its pending tasks) canceled by a person. */
export const CANCELED_BY_USER = 'canceled by a user';

/** Task states that make a run fail, and that a retry of the run runs again. */
const NOT_SUCCEEDED: ReadonlySet<TaskState> = new Set(['failed', 'upstream_failed', 'canceled']);

/**
 * Whether a run has ended, and how: once no task is pending, `failed` if any task
 * failed, did not run for a failed upstream, or was canceled (the reason names the
 * failed tasks first), else `success`. Undefined while tasks are pending or the run
 * has already ended.
 */
export function decideRunEnd(run: Pick<RunView, 'row' | 'pending' | 'tasks'>, now: number): RunPatch | undefined {
  if (run.pending > 0 || isTerminalRunState(run.row.state)) return undefined;
  const bad = [...run.tasks.values()].filter((r) => NOT_SUCCEEDED.has(r.state));
  const failed = bad.filter((r) => r.state === 'failed');
  return {
    state: bad.length > 0 ? 'failed' : 'success',
    reason:
      bad.length === 0
        ? null
        : failed.length > 0
          ? failed.map((r) => `task "${r.task_id}" failed: ${r.reason ?? 'no reason given'}`).slice(0, 5).join('; ')
          : `tasks did not run: ${bad.map((r) => r.task_id).slice(0, 10).join(', ')}`,
    ended_at: now,
  };
}

/**
 * Ends a run before its tasks are done (a cancel, a workflow dir that cannot be
 * made): every task not yet ended is `canceled` with the same reason.
 */
export function decideRunStop(
  run: Pick<RunView, 'tasks'>,
  end: { state: RunState; reason: string; now: number },
): { tasks: TaskDecision[]; run: RunPatch } {
  const tasks: TaskDecision[] = [];
  for (const [id, row] of run.tasks) {
    if (!isTerminalTaskState(row.state)) tasks.push({ taskId: id, patch: { state: 'canceled', reason: end.reason, ended_at: end.now } });
  }
  return { tasks, run: { state: end.state, reason: end.reason, ended_at: end.now } };
}

/**
 * What a retry of an ended run runs again: failed, upstream_failed and canceled
 * tasks, and the skipped tasks downstream of them, reset to `scheduled` under the
 * next attempt; successful tasks keep their results. The run is `running` again.
 */
export function decideRunRetry(run: Pick<RunView, 'row' | 'tasks' | 'downstream'>): { reset: string[]; tasks: TaskDecision[]; run: RunPatch } {
  const reset = new Set<string>();
  for (const [id, r] of run.tasks) if (NOT_SUCCEEDED.has(r.state)) reset.add(id);
  const walk = [...reset];
  while (walk.length > 0) {
    for (const d of run.downstream.get(walk.pop()!) ?? []) {
      if (!reset.has(d) && run.tasks.get(d)!.state === 'skipped') {
        reset.add(d);
        walk.push(d);
      }
    }
  }
  const attempt = run.row.attempt + 1;
  const tasks = [...reset].map((taskId): TaskDecision => ({
    taskId,
    patch: { state: 'scheduled', try_number: 0, attempt, reason: null, exit_code: null, handle: null, started_at: null, ended_at: null, queued_at: null, next_try_at: null, oom_killed: 0, restarts: 0, rerun_reason: null },
  }));
  return { reset: [...reset], tasks, run: { state: 'running', attempt, reason: null, ended_at: null } };
}

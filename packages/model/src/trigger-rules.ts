import type { TriggerRule } from './dag-spec.schema.ts';

export const TASK_STATES = [
  'scheduled',
  'queued',
  'running',
  'success',
  'failed',
  'upstream_failed',
  'skipped',
  'up_for_retry',
  'canceled',
] as const;
export type TaskState = (typeof TASK_STATES)[number];

export const RUN_STATES = ['queued', 'running', 'success', 'failed', 'canceled'] as const;
export type RunState = (typeof RUN_STATES)[number];

const TERMINAL: ReadonlySet<TaskState> = new Set(['success', 'failed', 'upstream_failed', 'skipped', 'canceled']);

export function isTerminalTaskState(s: TaskState): boolean {
  return TERMINAL.has(s);
}

export function isTerminalRunState(s: RunState): boolean {
  return s === 'success' || s === 'failed' || s === 'canceled';
}

/** What a task should do given its upstream tasks' states. */
export type TriggerDecision = 'wait' | 'run' | 'skip' | 'upstream_failed';

/**
 * Airflow's trigger rules. `failed` counts `failed`, `upstream_failed` and `canceled`
 * upstreams. Rules decide as early as Airflow does: one_success and one_failed at the
 * first matching upstream, all_success at the first failed or skipped one, `always`
 * at once; the others wait for all upstreams.
 */
export function evaluateTriggerRule(rule: TriggerRule, upstreamStates: readonly TaskState[]): TriggerDecision {
  let success = 0;
  let failed = 0;
  let skipped = 0;
  let done = 0;
  for (const s of upstreamStates) {
    if (!TERMINAL.has(s)) continue;
    done++;
    if (s === 'success') success++;
    else if (s === 'skipped') skipped++;
    else failed++;
  }
  const all = upstreamStates.length;
  // As in Airflow, a task without upstreams runs whatever its rule, and `always` ignores upstreams.
  if (all === 0 || rule === 'always') return 'run';
  const allDone = done === all;
  switch (rule) {
    case 'all_success':
      if (failed > 0) return 'upstream_failed';
      if (skipped > 0) return 'skip';
      return allDone ? 'run' : 'wait';
    case 'all_failed':
      if (success > 0 || skipped > 0) return 'skip';
      return allDone ? 'run' : 'wait';
    case 'all_done':
      return allDone ? 'run' : 'wait';
    case 'one_success':
      if (success > 0) return 'run';
      if (!allDone) return 'wait';
      return failed > 0 ? 'upstream_failed' : 'skip';
    case 'one_failed':
      if (failed > 0) return 'run';
      return allDone ? 'skip' : 'wait';
    case 'none_failed':
      if (failed > 0) return 'upstream_failed';
      return allDone ? 'run' : 'wait';
    case 'none_failed_min_one_success':
      if (failed > 0) return 'upstream_failed';
      if (!allDone) return 'wait';
      return success > 0 ? 'run' : 'skip';
    case 'none_skipped':
      if (skipped > 0) return 'skip';
      return allDone ? 'run' : 'wait';
  }
}

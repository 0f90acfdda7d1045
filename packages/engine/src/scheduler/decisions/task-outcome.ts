import type { TaskSpec, TaskState } from '@tessera/model';
import type { TaskOutcome } from '../../runners/runner.ts';
import type { TaskPatch } from '../../store/workflow-store.ts';
import type { TaskRow } from '../../store/workflow-tables.ts';

/** Why the scheduler stopped a try, if it did. */
export type StopReason = 'cancel' | 'timeout' | 'shutdown';

export interface OutcomeInput {
  outcome: TaskOutcome;
  stopReason: StopReason | undefined;
  spec: TaskSpec;
  /** The try that ended (1-based). */
  tryNumber: number;
  /** Epoch ms of the end. */
  now: number;
}

export interface OutcomeDecision {
  /** The task's new row fields; `state` is `up_for_retry` when it is retried. */
  patch: TaskPatch;
  /** Set when the task is retried: wait this long, then queue it again. */
  retryInMs?: number;
}

/**
 * Maps how a try ended to the task's state: the runner's outcome, except that a try
 * stopped for its timeout failed; a failed try with retries left waits for its
 * retry in `up_for_retry` (Airflow's state) until `next_try_at`.
 */
export function decideOutcome(input: OutcomeInput): OutcomeDecision {
  const { outcome, spec, now } = input;
  let state: TaskState = outcome.state;
  let reason = outcome.reason ?? null;
  if (input.stopReason === 'timeout') {
    state = 'failed';
    reason = `timed out after ${spec.timeout_s} s (timeout_s of the operator)`;
  }
  const base: TaskPatch = { exit_code: outcome.exitCode ?? null, oom_killed: outcome.oomKilled ? 1 : 0, ended_at: now };
  if (state === 'failed' && input.tryNumber <= spec.retries) {
    const delay = retryDelayMs(spec, input.tryNumber);
    return { patch: { ...base, state: 'up_for_retry', reason, next_try_at: now + delay }, retryInMs: delay };
  }
  return { patch: { ...base, state, reason } };
}

/** Delay before retry number `tryNumber` (1-based count of tries so far). */
export function retryDelayMs(spec: TaskSpec, tryNumber: number): number {
  const base = spec.retry_delay_s * 1000;
  const delay = spec.retry_backoff === 'exponential' ? base * 2 ** Math.max(0, tryNumber - 1) : base;
  const cap = spec.max_retry_delay_s !== undefined ? spec.max_retry_delay_s * 1000 : Number.POSITIVE_INFINITY;
  return Math.min(delay, cap);
}

export interface TryStartInput {
  row: Pick<TaskRow, 'try_number'>;
  /** The run's attempt. */
  attempt: number;
  runner: string;
  /** A try recovered after a restart runs again without using up a retry. */
  rerun: boolean;
  now: number;
}

/** The row of a task whose next try was claimed: `running` on `runner`, with a fresh try number. */
export function decideTryStart(input: TryStartInput): TaskPatch {
  return {
    state: 'running',
    try_number: input.rerun ? Math.max(input.row.try_number, 1) : input.row.try_number + 1,
    attempt: input.attempt,
    runner: input.runner,
    handle: null,
    exit_code: null,
    reason: null,
    oom_killed: 0,
    started_at: input.now,
    ended_at: null,
    next_try_at: null,
  };
}

/** A task whose retry delay is over goes back to the queue. */
export function retryDuePatch(now: number): TaskPatch {
  return { state: 'queued', queued_at: now, next_try_at: null };
}

/** A try that was running when the server stopped, and that its runner cannot re-attach, runs again. */
export function rerunAfterRestartPatch(now: number): TaskPatch {
  return { state: 'queued', queued_at: now, handle: null, reason: 'rerun after a server restart' };
}

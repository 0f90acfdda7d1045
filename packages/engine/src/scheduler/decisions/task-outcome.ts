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
  /** Tries of this attempt that ran again after a server restart: they do not count as retries. */
  restarts: number;
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
  const counted = input.tryNumber - input.restarts;
  if (state === 'failed' && counted <= spec.retries) {
    const delay = retryDelayMs(spec, counted);
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
  row: Pick<TaskRow, 'try_number' | 'started_at'>;
  /** The run's attempt. */
  attempt: number;
  runner: string;
  now: number;
}

/**
 * Whether the task's current try was announced but never started: a try that runs
 * again after a restart is counted (and shown, with its reason) as soon as it is
 * queued, so claiming it does not count it again. Every other queued task has either
 * no try yet (0) or the start time of the try before.
 */
export function isAnnouncedTry(row: Pick<TaskRow, 'try_number' | 'started_at'>): boolean {
  return row.try_number > 0 && row.started_at === null;
}

/** The row of a task whose next try was claimed: `running` on `runner`, with a fresh try number. */
export function decideTryStart(input: TryStartInput): TaskPatch {
  const announced = isAnnouncedTry(input.row);
  return {
    state: 'running',
    try_number: announced ? input.row.try_number : input.row.try_number + 1,
    // The reason of a rerun stays with its try (and after it); a retry is a try of its own.
    ...(announced ? {} : { rerun_reason: null }),
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

/** Why the server stopped while a try ran: it died (crash, kill -9, power loss), or it was shut down and stopped the try. */
export type RestartCause = 'crash' | 'shutdown';

/**
 * A try that was running when the server stopped, whose end is not known (its runner
 * can neither re-attach to it nor tell how it ended), runs again as a new try, queued
 * and shown at once with its reason; it does not use up a retry.
 */
export function rerunAfterRestartPatch(row: Pick<TaskRow, 'try_number' | 'restarts'>, cause: RestartCause, now: number): TaskPatch {
  const n = row.try_number;
  const why =
    cause === 'crash'
      ? `the server stopped while try ${n} ran (it was killed or crashed) and the end of that try is not known`
      : `the server was shut down while try ${n} ran, which stopped it`;
  return {
    state: 'queued',
    try_number: n + 1,
    restarts: row.restarts + 1,
    rerun_reason: `${why}; try ${n + 1} runs the task again and does not use up a retry`,
    queued_at: now,
    handle: null,
    exit_code: null,
    reason: null,
    oom_killed: 0,
    started_at: null,
    ended_at: null,
    next_try_at: null,
  };
}

/** A claimed try that never started before a shutdown: queued again, the same try (it runs at the next start). */
export function notStartedPatch(now: number): TaskPatch {
  return { state: 'queued', queued_at: now, handle: null, started_at: null };
}

import { describe, expect, it } from 'vitest';
import type { TaskSpec } from '@tessera/model';
import { dagView } from '../../__fixtures__/dag-view.ts';
import { outcomeFromExit } from '../../runners/exit-status.ts';
import { decideOutcome, decideTryStart, isAnnouncedTry, rerunAfterRestartPatch, retryDelayMs } from './task-outcome.ts';

const NOW = 1_700_000_000_000;

function taskSpec(fields: Partial<TaskSpec> = {}): TaskSpec {
  return { ...dagView([{ id: 't' }]).specs.get('t')!, ...fields };
}

describe('decideOutcome: how a try ended maps to the task state', () => {
  it('maps exit 0 to success, 126 to skipped and other codes to failed, with the exit code', () => {
    const spec = taskSpec();
    const of = (code: number) => decideOutcome({ outcome: outcomeFromExit(code, null), stopReason: undefined, spec, tryNumber: 1, restarts: 0, now: NOW });
    expect(of(0)).toEqual({ patch: { state: 'success', reason: null, exit_code: 0, oom_killed: 0, ended_at: NOW } });
    expect(of(126).patch).toMatchObject({ state: 'skipped', exit_code: 126, reason: 'the operator asked to be skipped (exit code 126)' });
    expect(of(3)).toEqual({ patch: { state: 'failed', reason: 'exited with code 3', exit_code: 3, oom_killed: 0, ended_at: NOW } });
  });

  it('a failed try with retries left waits in up_for_retry until next_try_at', () => {
    const spec = taskSpec({ retries: 2, retry_delay_s: 5 });
    const first = decideOutcome({ outcome: outcomeFromExit(1, null), stopReason: undefined, spec, tryNumber: 1, restarts: 0, now: NOW });
    expect(first).toEqual({
      patch: { state: 'up_for_retry', reason: 'exited with code 1', exit_code: 1, oom_killed: 0, ended_at: NOW, next_try_at: NOW + 5000 },
      retryInMs: 5000,
    });
    const second = decideOutcome({ outcome: outcomeFromExit(1, null), stopReason: undefined, spec, tryNumber: 2, restarts: 0, now: NOW });
    expect(second.patch.state).toBe('up_for_retry');
  });

  it('a failed try with its retries used up fails the task', () => {
    const spec = taskSpec({ retries: 2, retry_delay_s: 5 });
    const last = decideOutcome({ outcome: { state: 'failed', reason: 'out of memory (limit 64 MB)', oomKilled: true }, stopReason: undefined, spec, tryNumber: 3, restarts: 0, now: NOW });
    expect(last).toEqual({ patch: { state: 'failed', reason: 'out of memory (limit 64 MB)', exit_code: null, oom_killed: 1, ended_at: NOW } });
  });

  it('a try stopped for its timeout failed, whatever the runner saw, and is retried like any failure', () => {
    const stopped = { state: 'failed' as const, reason: 'killed by signal SIGTERM' };
    expect(decideOutcome({ outcome: stopped, stopReason: 'timeout', spec: taskSpec({ timeout_s: 2 }), tryNumber: 1, restarts: 0, now: NOW }).patch).toMatchObject({
      state: 'failed',
      reason: 'timed out after 2 s (timeout_s of the operator)',
    });
    const retried = decideOutcome({ outcome: { state: 'success', exitCode: 0 }, stopReason: 'timeout', spec: taskSpec({ timeout_s: 2, retries: 1 }), tryNumber: 1, restarts: 0, now: NOW });
    expect(retried.patch.state).toBe('up_for_retry');
  });
});

describe('retryDelayMs', () => {
  it('waits retry_delay_s, doubling with exponential backoff, capped by max_retry_delay_s', () => {
    expect([1, 2, 3].map((n) => retryDelayMs(taskSpec({ retry_delay_s: 2 }), n))).toEqual([2000, 2000, 2000]);
    expect([1, 2, 3, 4].map((n) => retryDelayMs(taskSpec({ retry_delay_s: 1, retry_backoff: 'exponential' }), n))).toEqual([1000, 2000, 4000, 8000]);
    expect([1, 2, 3, 4].map((n) => retryDelayMs(taskSpec({ retry_delay_s: 1, retry_backoff: 'exponential', max_retry_delay_s: 3 }), n))).toEqual([1000, 2000, 3000, 3000]);
  });
});

describe('decideTryStart', () => {
  it('counts a new try, except for a try already announced as a rerun after a restart', () => {
    expect(decideTryStart({ row: { try_number: 1, started_at: NOW - 10 }, attempt: 2, runner: 'process', now: NOW })).toMatchObject({
      state: 'running',
      try_number: 2,
      attempt: 2,
      runner: 'process',
      rerun_reason: null,
      started_at: NOW,
      ended_at: null,
    });
    expect(decideTryStart({ row: { try_number: 0, started_at: null }, attempt: 1, runner: 'process', now: NOW }).try_number).toBe(1);
    // Announced by rerunAfterRestartPatch: the try and its reason are kept.
    const announced = decideTryStart({ row: { try_number: 2, started_at: null }, attempt: 1, runner: 'process', now: NOW });
    expect(announced.try_number).toBe(2);
    expect(announced).not.toHaveProperty('rerun_reason');
  });
});

describe('a try rerun after a restart', () => {
  it('is a new try, queued at once with its reason, that does not use up a retry', () => {
    const crash = rerunAfterRestartPatch({ try_number: 1, restarts: 0 }, 'crash', NOW);
    expect(crash).toMatchObject({ state: 'queued', try_number: 2, restarts: 1, started_at: null, ended_at: null, handle: null, queued_at: NOW });
    expect(crash.rerun_reason).toBe('the server stopped while try 1 ran (it was killed or crashed) and the end of that try is not known; try 2 runs the task again and does not use up a retry');
    expect(rerunAfterRestartPatch({ try_number: 2, restarts: 1 }, 'shutdown', NOW).rerun_reason).toMatch(/^the server was shut down while try 2 ran, which stopped it; try 3 runs/);
    expect(isAnnouncedTry({ try_number: crash.try_number!, started_at: crash.started_at! })).toBe(true);
    // Retries: 1. Try 2 was a rerun, so try 3 (the second counted try) still gets its retry; try 4 does not.
    const spec = taskSpec({ retries: 1, retry_delay_s: 1 });
    const failed = (tryNumber: number) => decideOutcome({ outcome: outcomeFromExit(1, null), stopReason: undefined, spec, tryNumber, restarts: 1, now: NOW });
    expect(failed(2).patch.state).toBe('up_for_retry');
    expect(failed(2).retryInMs).toBe(1000);
    expect(failed(3).patch.state).toBe('failed');
  });
});

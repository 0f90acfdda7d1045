import { describe, expect, it } from 'vitest';
import type { RunState, TaskState } from '@tessera/model';
import { dagView, type ViewTask } from '../../__fixtures__/dag-view.ts';
import { CANCELED_BY_USER, decideRunEnd, decideRunRetry, decideRunStop } from './run-end.ts';

const NOW = 1_700_000_000_000;
const TERMINAL = new Set<TaskState>(['success', 'failed', 'upstream_failed', 'skipped', 'canceled']);

function runOf(tasks: ViewTask[], state: RunState = 'running', attempt = 1) {
  const dag = dagView(tasks);
  const pending = [...dag.tasks.values()].filter((t) => !TERMINAL.has(t.state)).length;
  return { ...dag, row: { state, attempt }, pending };
}

function withReason(run: ReturnType<typeof runOf>, taskId: string, reason: string): ReturnType<typeof runOf> {
  run.tasks.get(taskId)!.reason = reason;
  return run;
}

describe('decideRunEnd', () => {
  it('does not end a run while a task is pending, nor a run that has ended', () => {
    expect(decideRunEnd(runOf([{ id: 'a', state: 'success' }, { id: 'b', state: 'up_for_retry' }]), NOW)).toBeUndefined();
    expect(decideRunEnd(runOf([{ id: 'a', state: 'canceled' }], 'canceled'), NOW)).toBeUndefined();
  });

  it('succeeds when every task succeeded or was skipped', () => {
    expect(decideRunEnd(runOf([{ id: 'a', state: 'success' }, { id: 'b', state: 'skipped' }]), NOW)).toEqual({ state: 'success', reason: null, ended_at: NOW });
  });

  it('fails when a task failed, naming the failed tasks and their reasons', () => {
    const run = withReason(runOf([{ id: 'a', state: 'failed' }, { id: 'b', state: 'upstream_failed' }, { id: 'c', state: 'failed' }]), 'a', 'exited with code 2');
    expect(decideRunEnd(run, NOW)).toEqual({ state: 'failed', reason: 'task "a" failed: exited with code 2; task "c" failed: no reason given', ended_at: NOW });
  });

  it('fails when tasks did not run (upstream_failed, canceled) though none failed itself', () => {
    expect(decideRunEnd(runOf([{ id: 'a', state: 'success' }, { id: 'b', state: 'upstream_failed' }, { id: 'c', state: 'canceled' }]), NOW)).toEqual({
      state: 'failed',
      reason: 'tasks did not run: b, c',
      ended_at: NOW,
    });
  });
});

describe('decideRunStop', () => {
  it('cancels a run: its pending tasks become canceled with its reason, ended tasks keep their state', () => {
    const run = runOf([{ id: 'a', state: 'success' }, { id: 'b', state: 'running' }, { id: 'c', state: 'scheduled' }, { id: 'd', state: 'up_for_retry' }]);
    expect(decideRunStop(run, { state: 'canceled', reason: CANCELED_BY_USER, now: NOW })).toEqual({
      tasks: ['b', 'c', 'd'].map((taskId) => ({ taskId, patch: { state: 'canceled', reason: 'canceled by a user', ended_at: NOW } })),
      run: { state: 'canceled', reason: 'canceled by a user', ended_at: NOW },
    });
  });
});

describe('decideRunRetry', () => {
  it('runs again what did not succeed and the skips downstream of it, under the next attempt; successes are kept', () => {
    const run = runOf(
      [
        { id: 'ok', state: 'success' },
        { id: 'bad', state: 'failed' },
        { id: 'after-bad', upstream: ['bad'], state: 'upstream_failed' },
        { id: 'skip-after', upstream: ['after-bad'], state: 'skipped' },
        { id: 'own-skip', state: 'skipped' },
        { id: 'cut', state: 'canceled' },
      ],
      'failed',
      2,
    );
    const retry = decideRunRetry(run);
    expect(retry.reset.sort()).toEqual(['after-bad', 'bad', 'cut', 'skip-after']);
    expect(retry.tasks.every((d) => d.patch.state === 'scheduled' && d.patch.attempt === 3 && d.patch.try_number === 0)).toBe(true);
    expect(retry.run).toEqual({ state: 'running', attempt: 3, reason: null, ended_at: null });
  });
});

import { describe, expect, it } from 'vitest';
import type { TaskState, TriggerRule } from '@tessera/model';
import { dagView, type ViewTask } from '../../__fixtures__/dag-view.ts';
import { outcomeFromExit } from '../../runners/exit-status.ts';
import { decideOutcome } from './task-outcome.ts';
import { decideReadyTasks, noRunnerReason, type ReadinessInput, type TaskDecision } from './task-readiness.ts';

const NOW = 1_700_000_000_000;
const canRun: ReadinessInput['blocker'] = () => undefined;

/** Decisions for the tasks downstream of `ended`, as `{ task: state }`. */
function downstreamOf(tasks: ViewTask[], ended: string[], blocker = canRun): { states: Record<string, TaskState | undefined>; decisions: TaskDecision[] } {
  const decisions = decideReadyTasks(dagView(tasks), { ids: ended, from: 'downstream', attempt: 1, now: NOW, blocker });
  return { states: Object.fromEntries(decisions.map((d) => [d.taskId, d.patch.state])), decisions };
}

/** The decision for one task `t` with the given rule, after upstreams `a` and `b` reached these states. */
function ruleDecision(rule: TriggerRule, a: TaskState, b: TaskState): TaskState | 'wait' {
  const { states } = downstreamOf(
    [{ id: 'a', state: a }, { id: 'b', state: b }, { id: 't', upstream: ['a', 'b'], trigger_rule: rule }],
    ['a', 'b'],
  );
  return states.t ?? 'wait';
}

describe('decideReadyTasks: trigger rules on downstream tasks', () => {
  it('all_success: runs once every upstream succeeded; a failure makes it upstream_failed, a skip skips it', () => {
    expect(ruleDecision('all_success', 'success', 'success')).toBe('queued');
    expect(ruleDecision('all_success', 'success', 'running')).toBe('wait');
    expect(ruleDecision('all_success', 'failed', 'running')).toBe('upstream_failed');
    expect(ruleDecision('all_success', 'skipped', 'success')).toBe('skipped');
    expect(ruleDecision('all_success', 'canceled', 'success')).toBe('upstream_failed');
  });

  it('all_done: runs once every upstream ended, however it ended', () => {
    expect(ruleDecision('all_done', 'success', 'failed')).toBe('queued');
    expect(ruleDecision('all_done', 'skipped', 'upstream_failed')).toBe('queued');
    expect(ruleDecision('all_done', 'failed', 'up_for_retry')).toBe('wait');
  });

  it('none_failed: runs when no upstream failed, skips included; a failure makes it upstream_failed', () => {
    expect(ruleDecision('none_failed', 'success', 'skipped')).toBe('queued');
    expect(ruleDecision('none_failed', 'skipped', 'skipped')).toBe('queued');
    expect(ruleDecision('none_failed', 'success', 'failed')).toBe('upstream_failed');
    expect(ruleDecision('none_failed', 'success', 'queued')).toBe('wait');
  });

  it('none_failed_min_one_success: needs one success and no failure; all skipped skips it', () => {
    expect(ruleDecision('none_failed_min_one_success', 'success', 'skipped')).toBe('queued');
    expect(ruleDecision('none_failed_min_one_success', 'skipped', 'skipped')).toBe('skipped');
    expect(ruleDecision('none_failed_min_one_success', 'success', 'failed')).toBe('upstream_failed');
    expect(ruleDecision('none_failed_min_one_success', 'success', 'running')).toBe('wait');
  });

  it('one_success: runs at the first success without waiting for the others; no success at all means upstream_failed or skipped', () => {
    expect(ruleDecision('one_success', 'success', 'running')).toBe('queued');
    expect(ruleDecision('one_success', 'failed', 'running')).toBe('wait');
    expect(ruleDecision('one_success', 'failed', 'skipped')).toBe('upstream_failed');
    expect(ruleDecision('one_success', 'skipped', 'skipped')).toBe('skipped');
  });

  it('queues a task with the run attempt and the time of the decision', () => {
    const { decisions } = downstreamOf([{ id: 'a', state: 'success' }, { id: 'b', upstream: ['a'] }], ['a']);
    expect(decisions).toEqual([{ taskId: 'b', patch: { state: 'queued', queued_at: NOW, attempt: 1 } }]);
  });
});

describe('decideReadyTasks: propagation', () => {
  it('a task that exits 126 is skipped, and the skip runs down an all_success chain, but not past none_failed', () => {
    const ended = decideOutcome({ outcome: outcomeFromExit(126, null), stopReason: undefined, spec: dagView([{ id: 'a' }]).specs.get('a')!, tryNumber: 1, restarts: 0, now: NOW });
    expect(ended.patch.state).toBe('skipped');
    const { states, decisions } = downstreamOf(
      [
        { id: 'a', state: 'skipped' },
        { id: 'b', upstream: ['a'] },
        { id: 'c', upstream: ['b'] },
        { id: 'd', upstream: ['c'], trigger_rule: 'none_failed' },
        { id: 'e', upstream: ['d'] },
      ],
      ['a'],
    );
    expect(states).toEqual({ b: 'skipped', c: 'skipped', d: 'queued' });
    expect(decisions[0]!.patch).toEqual({ state: 'skipped', reason: 'skipped by trigger rule all_success', ended_at: NOW });
  });

  it('upstream_failed runs down the chain, naming the upstream that did not succeed, until an all_done task', () => {
    const { states, decisions } = downstreamOf(
      [
        { id: 'a', state: 'failed' },
        { id: 'ok', state: 'success' },
        { id: 'b', upstream: ['a', 'ok'] },
        { id: 'c', upstream: ['b'] },
        { id: 'cleanup', upstream: ['c'], trigger_rule: 'all_done' },
      ],
      ['a'],
    );
    expect(states).toEqual({ b: 'upstream_failed', c: 'upstream_failed', cleanup: 'queued' });
    expect(decisions.find((d) => d.taskId === 'b')!.patch.reason).toBe('upstream task "a" did not succeed');
    expect(decisions.find((d) => d.taskId === 'c')!.patch.reason).toBe('upstream task "b" did not succeed');
  });

  it('fails a task that may run but never can here, and its downstream tasks become upstream_failed', () => {
    const { states, decisions } = downstreamOf(
      [{ id: 'a', state: 'success' }, { id: 'big', upstream: ['a'] }, { id: 'after', upstream: ['big'] }],
      ['a'],
      (spec) => (spec.id === 'big' ? 'needs more RAM than the pool has' : undefined),
    );
    expect(states).toEqual({ big: 'failed', after: 'upstream_failed' });
    expect(decisions[0]!.patch).toEqual({ state: 'failed', reason: 'needs more RAM than the pool has', ended_at: NOW });
  });

  it('from self: queues the roots, leaves waiting and already decided tasks alone', () => {
    const dag = dagView([{ id: 'r1' }, { id: 'r2', state: 'success' }, { id: 'x', upstream: ['r1'] }]);
    const decisions = decideReadyTasks(dag, { ids: ['r1', 'r2', 'x'], from: 'self', attempt: 2, now: NOW, blocker: canRun });
    expect(decisions).toEqual([{ taskId: 'r1', patch: { state: 'queued', queued_at: NOW, attempt: 2 } }]);
    expect(dag.tasks.get('r1')!.state).toBe('scheduled'); // decisions only: the rows are the caller's to change
  });
});

describe('noRunnerReason', () => {
  it('says what the task would need', () => {
    const spec = dagView([{ id: 'a' }]).specs.get('a')!;
    expect(noRunnerReason({ ...spec, builtin: 'get-input', process: undefined })).toBe(
      'task "a" cannot run here: it needs the built-in operator "get-input", which this platform does not have',
    );
    expect(noRunnerReason({ ...spec, process: undefined, container: { image: 'x:1' } as never })).toContain('a container runner for image "x:1"');
    expect(noRunnerReason(spec)).toBe('task "a" cannot run here: it needs a runner that can execute it, and none is configured');
  });
});

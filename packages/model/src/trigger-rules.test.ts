import { describe, expect, it } from 'vitest';
import { TRIGGER_RULES, type TriggerRule } from './dag-spec.schema.ts';
import { TASK_STATES, evaluateTriggerRule, isTerminalRunState, isTerminalTaskState, type TaskState, type TriggerDecision } from './trigger-rules.ts';

/*
 * Expected decisions follow Airflow's documented trigger rules
 * (https://airflow.apache.org/docs/apache-airflow/stable/core-concepts/dags.html#trigger-rules)
 * and its TriggerRuleDep, with Tessera's `canceled` counted like `failed`:
 * - all_success: runs when all upstreams succeeded; a failed upstream makes it upstream_failed
 *   at once; a skipped upstream makes it skipped ("skips cascade through all_success").
 * - all_failed: runs when all upstreams are failed/upstream_failed; a success or skip skips it.
 * - all_done: runs once all upstreams are done, whatever their state.
 * - one_success: runs as soon as one upstream succeeded; all done without a success:
 *   skipped if all were skipped, else upstream_failed.
 * - one_failed: runs as soon as one upstream failed; all done without a failure: skipped.
 * - none_failed: runs when all upstreams succeeded or were skipped; a failure: upstream_failed.
 * - none_failed_min_one_success: as none_failed, but all skipped: skipped.
 * - none_skipped: runs when all upstreams are done and none was skipped; a skip skips it.
 * - always: runs regardless of the upstream states once they are done (see below).
 * A task with no upstream runs, whatever its rule.
 *
 * Where Airflow decides earlier than Tessera without changing what ends up running,
 * a row lists every acceptable decision.
 */

const S: TaskState = 'success';
const F: TaskState = 'failed';
const UF: TaskState = 'upstream_failed';
const C: TaskState = 'canceled';
const K: TaskState = 'skipped';
const R: TaskState = 'running';
const Q: TaskState = 'queued';
const SCH: TaskState = 'scheduled';
const RETRY: TaskState = 'up_for_retry';

type Row = [upstreams: TaskState[], expected: TriggerDecision | TriggerDecision[], why: string];

const TABLE: Record<TriggerRule, Row[]> = {
  all_success: [
    [[], 'run', 'no upstreams'],
    [[S, S], 'run', 'all success'],
    [[S, F], 'upstream_failed', 'one failed'],
    [[S, UF], 'upstream_failed', 'upstream_failed counts as failed'],
    [[S, C], 'upstream_failed', 'canceled counts as failed'],
    [[F, R], 'upstream_failed', 'a failure decides before the others end'],
    [[S, K], 'skip', 'one skipped'],
    [[K, F], 'upstream_failed', 'failure wins over skip'],
    [[S, R], 'wait', 'one still running'],
    [[S, Q], 'wait', 'one queued'],
    [[S, RETRY], 'wait', 'one waiting for a retry'],
    [[K, R], ['wait', 'skip'], 'skipped and running: never runs'],
  ],
  all_failed: [
    [[], 'run', 'no upstreams'],
    [[F, F], 'run', 'all failed'],
    [[F, UF, C], 'run', 'upstream_failed and canceled count as failed'],
    [[F, S], 'skip', 'one succeeded'],
    [[F, K], 'skip', 'one skipped'],
    [[S, R], 'skip', 'a success decides before the others end'],
    [[F, R], 'wait', 'one still running'],
  ],
  all_done: [
    [[], 'run', 'no upstreams'],
    [[S, S], 'run', 'all success'],
    [[S, F, UF, C, K], 'run', 'every terminal state'],
    [[F, F], 'run', 'all failed'],
    [[S, R], 'wait', 'one still running'],
    [[F, SCH], 'wait', 'one scheduled'],
    [[F, RETRY], 'wait', 'one waiting for a retry'],
  ],
  one_success: [
    [[], 'run', 'no upstreams'],
    [[S, S], 'run', 'all success'],
    [[S, F], 'run', 'one success, one failed'],
    [[S, R], 'run', 'a success decides before the others end'],
    [[F, R], 'wait', 'no success yet'],
    [[F, F], 'upstream_failed', 'all failed'],
    [[UF, C], 'upstream_failed', 'upstream_failed and canceled count as failed'],
    [[F, K], 'upstream_failed', 'done without a success, not all skipped'],
    [[K, K], 'skip', 'all skipped'],
  ],
  one_failed: [
    // [[], 'run'] is Airflow's answer (no upstream: the dependency passes); see the report.
    [[S, S], 'skip', 'all success'],
    [[S, K], 'skip', 'done without a failure'],
    [[S, F], 'run', 'one failed'],
    [[F, R], 'run', 'a failure decides before the others end'],
    [[UF, S], 'run', 'upstream_failed counts as failed'],
    [[C, R], 'run', 'canceled counts as failed'],
    [[S, R], 'wait', 'no failure yet'],
  ],
  none_failed: [
    [[], 'run', 'no upstreams'],
    [[S, S], 'run', 'all success'],
    [[S, K], 'run', 'success and skipped'],
    [[K, K], 'run', 'all skipped'],
    [[S, F], 'upstream_failed', 'one failed'],
    [[S, C], 'upstream_failed', 'canceled counts as failed'],
    [[UF, R], 'upstream_failed', 'a failure decides before the others end'],
    [[S, R], 'wait', 'one still running'],
  ],
  none_failed_min_one_success: [
    [[], 'run', 'no upstreams'],
    [[S, S], 'run', 'all success'],
    [[S, K], 'run', 'success and skipped'],
    [[K, K], 'skip', 'all skipped'],
    [[S, F], 'upstream_failed', 'one failed'],
    [[UF, S], 'upstream_failed', 'upstream_failed counts as failed'],
    [[C, R], 'upstream_failed', 'canceled counts as failed, decides early'],
    [[S, R], 'wait', 'one still running'],
    [[K, R], 'wait', 'skipped so far, one still running'],
  ],
  none_skipped: [
    [[], 'run', 'no upstreams'],
    [[S, S], 'run', 'all success'],
    [[S, F], 'run', 'failed is not skipped'],
    [[S, UF, C], 'run', 'upstream_failed and canceled are not skipped'],
    [[S, K], 'skip', 'one skipped'],
    [[K, R], 'skip', 'a skip decides before the others end'],
    [[S, R], 'wait', 'one still running'],
  ],
  always: [
    // Airflow runs an `always` task at once, even with upstreams still running; Tessera
    // waits for them (see the report), so rows with unfinished upstreams are left out.
    [[], 'run', 'no upstreams'],
    [[S, S], 'run', 'all success'],
    [[F, UF], 'run', 'all failed'],
    [[S, F, K, C], 'run', 'every terminal state'],
    [[K, K], 'run', 'all skipped'],
  ],
};

describe('evaluateTriggerRule', () => {
  it('has a table for every rule in TRIGGER_RULES', () => {
    expect(Object.keys(TABLE).sort()).toEqual([...TRIGGER_RULES].sort());
  });

  for (const rule of TRIGGER_RULES) {
    describe(rule, () => {
      it.each(TABLE[rule])('upstreams %j -> %j (%s)', (upstreams, expected) => {
        const decision = evaluateTriggerRule(rule, upstreams);
        if (Array.isArray(expected)) expect(expected).toContain(decision);
        else expect(decision).toBe(expected);
      });

      it('does not depend on the order of the upstreams', () => {
        for (const [upstreams] of TABLE[rule]) {
          expect(evaluateTriggerRule(rule, [...upstreams].reverse())).toBe(evaluateTriggerRule(rule, upstreams));
        }
      });
    });
  }

  it('waits for an upstream in any non-terminal state under all_done', () => {
    const pending = TASK_STATES.filter((s) => !isTerminalTaskState(s));
    expect(pending.sort()).toEqual(['queued', 'running', 'scheduled', 'up_for_retry']);
    for (const s of pending) expect(evaluateTriggerRule('all_done', [S, s])).toBe('wait');
  });
});

describe('terminal states', () => {
  it('knows which task and run states are final', () => {
    expect(TASK_STATES.filter(isTerminalTaskState).sort()).toEqual(['canceled', 'failed', 'skipped', 'success', 'upstream_failed']);
    expect((['queued', 'running', 'success', 'failed', 'canceled'] as const).filter(isTerminalRunState)).toEqual(['success', 'failed', 'canceled']);
  });
});

import { evaluateTriggerRule, type TaskSpec, type TaskState } from '@tessera/model';
import type { TaskPatch } from '../../store/workflow-store.ts';
import type { TaskRow } from '../../store/workflow-tables.ts';

/** The shape of a run that readiness decisions read: task states, specs and edges. No I/O behind it. */
export interface DagView {
  /** Only `get` is read: a view may answer some states differently from the rows (ADR 18 asks "what if this task succeeded?"). */
  tasks: Pick<ReadonlyMap<string, Pick<TaskRow, 'state'>>, 'get'>;
  specs: ReadonlyMap<string, TaskSpec>;
  downstream: ReadonlyMap<string, readonly string[]>;
}

/** One task's next state, as a patch of its row. */
export interface TaskDecision {
  taskId: string;
  patch: TaskPatch;
}

export interface ReadinessInput {
  /** The tasks whose inputs changed. */
  ids: readonly string[];
  /** `self`: evaluate `ids` themselves; `downstream`: evaluate the tasks downstream of them. */
  from: 'self' | 'downstream';
  /** The run's attempt, recorded on a task when it is queued. */
  attempt: number;
  /** Epoch ms of the decision. */
  now: number;
  /**
   * Why a task that may run can never run here (it never fits the pools, no runner
   * supports it), or undefined when it can. A query, not an action.
   */
  blocker: (spec: TaskSpec) => string | undefined;
}

/** Upstream states that make a task's upstream "not succeed" in a reason. */
const UNSUCCESSFUL: ReadonlySet<TaskState> = new Set(['failed', 'upstream_failed', 'canceled']);

/**
 * Decides the next state of `scheduled` tasks whose inputs changed, following the
 * trigger rules downstream through skips and upstream failures: `queued` (or
 * `failed` at once when it can never run here), `skipped` or `upstream_failed`.
 * Tasks still waiting for upstreams get no decision. Decisions come in the order
 * they were taken; a task that is queued does not decide for its downstream tasks.
 */
export function decideReadyTasks(dag: DagView, input: ReadinessInput): TaskDecision[] {
  const decided = new Map<string, TaskState>();
  const stateOf = (id: string): TaskState => decided.get(id) ?? dag.tasks.get(id)!.state;
  const out: TaskDecision[] = [];
  const work = input.from === 'self' ? [...input.ids] : input.ids.flatMap((id) => dag.downstream.get(id) ?? []);
  while (work.length > 0) {
    const id = work.pop()!;
    if (stateOf(id) !== 'scheduled') continue;
    const spec = dag.specs.get(id)!;
    const decision = evaluateTriggerRule(spec.trigger_rule, spec.upstream.map(stateOf));
    if (decision === 'wait') continue;
    let patch: TaskPatch;
    if (decision === 'run') {
      const blocker = input.blocker(spec);
      patch = blocker
        ? { state: 'failed', reason: blocker, ended_at: input.now }
        : { state: 'queued', queued_at: input.now, attempt: input.attempt };
    } else if (decision === 'skip') {
      patch = { state: 'skipped', reason: `skipped by trigger rule ${spec.trigger_rule}`, ended_at: input.now };
    } else {
      const failedUp = spec.upstream.filter((u) => UNSUCCESSFUL.has(stateOf(u)));
      patch = { state: 'upstream_failed', reason: `upstream task ${failedUp.map((u) => `"${u}"`).join(', ')} did not succeed`, ended_at: input.now };
    }
    decided.set(id, patch.state!);
    out.push({ taskId: id, patch });
    if (patch.state !== 'queued') work.push(...(dag.downstream.get(id) ?? []));
  }
  return out;
}

/** Why a task no configured runner supports cannot run, saying what it would need. */
export function noRunnerReason(spec: TaskSpec): string {
  const needs = spec.builtin
    ? `the built-in operator "${spec.builtin}", which this platform does not have`
    : spec.container && !spec.process
      ? `a container runner for image "${spec.container.image}", and no Docker engine is reachable; start one (or set DOCKER_HOST), or give the operator a "process" section to run without containers`
      : 'a runner that can execute it, and none is configured';
  return `task "${spec.id}" cannot run here: it needs ${needs}`;
}

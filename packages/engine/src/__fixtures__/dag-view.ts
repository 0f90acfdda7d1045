import { validateDagSpec, type TaskSpec, type TaskState, type TriggerRule } from '@tessera/model';
import type { DagView } from '../scheduler/decisions/task-readiness.ts';

/** A task of a test DAG: its id, upstreams, rule and state; the spec's other fields take their defaults. */
export interface ViewTask {
  id: string;
  upstream?: string[];
  trigger_rule?: TriggerRule;
  state?: TaskState;
  retries?: number;
}

/** A DagView whose rows a test can read and change. */
export interface PlainDag extends DagView {
  tasks: Map<string, { task_id: string; state: TaskState; reason: string | null }>;
}

/** A run's DAG as plain data, for the pure decisions: validated specs, edges, and each task's state (default `scheduled`). */
export function dagView(tasks: ViewTask[]): PlainDag {
  const spec = validateDagSpec({
    spec_version: 1,
    id: 'view',
    workflow_form: { type: 'object' },
    data_form: { type: 'object' },
    tasks: tasks.map(({ state: _state, ...t }) => ({ operator: t.id, output_dir: t.id, process: { command: ['true'] }, ...t })),
  });
  const specs = new Map<string, TaskSpec>(spec.tasks.map((t) => [t.id, t]));
  const downstream = new Map<string, string[]>(spec.tasks.map((t) => [t.id, []]));
  for (const t of spec.tasks) for (const u of t.upstream) downstream.get(u)!.push(t.id);
  const states = new Map(tasks.map((t) => [t.id, { task_id: t.id, state: t.state ?? 'scheduled', reason: null }]));
  return { tasks: states, specs, downstream };
}

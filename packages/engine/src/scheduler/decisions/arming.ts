import { join, sep } from 'node:path';
import { BATCH_NAME, type TaskSpec } from '@tessera/model';
import { outputDirsOf } from '../../operator-contract.ts';
import { decideReadyTasks, type DagView } from './task-readiness.ts';

/** What arming reads of a run: its rows, specs, edges, workflow dir and series. */
export interface ArmingView extends DagView {
  row: { workflow_dir: string };
  identifiers: readonly string[];
}

const SUCCESS = { state: 'success' } as const;
const TERMINAL: ReadonlySet<string> = new Set(['success', 'failed', 'upstream_failed', 'skipped', 'canceled']);

/**
 * Which task may be armed to start the moment `leadId` succeeds (ADR 18), or undefined.
 * It is the one task that the lead's success would queue, when exactly one would be, and
 * when it can take the lead's place as it is: it needs no more RAM or GPU memory than the
 * lead (it takes the lead's slot and share of the pools), has no scale rule (those read
 * the lead's outputs at the claim), and its output dirs, made and emptied before the lead
 * has even ended, are apart from every dir the lead reads or writes. The runner is the
 * caller's to check. No I/O.
 */
export function armable(run: ArmingView, leadId: string, blocker: (spec: TaskSpec) => string | undefined): string | undefined {
  const view: DagView = {
    tasks: { get: (id) => (id === leadId ? SUCCESS : run.tasks.get(id)) },
    specs: run.specs,
    downstream: run.downstream,
  };
  let next: string | undefined;
  for (const d of decideReadyTasks(view, { ids: [leadId], from: 'downstream', attempt: 0, now: 0, blocker })) {
    if (d.patch.state !== 'queued') continue;
    if (next !== undefined) return undefined; // a fan-out: more than one slot would be taken
    next = d.taskId;
  }
  if (next === undefined) return undefined;
  const spec = run.specs.get(next)!;
  // Only the lead's end may decide it: with another upstream still to end (a one_success
  // task, say), that one's end could queue it first, and it would wait for the lead.
  if (spec.upstream.some((u) => u !== leadId && !TERMINAL.has(run.tasks.get(u)!.state))) return undefined;
  const lead = run.specs.get(leadId)!;
  if ((spec.resources?.ram_scale?.length ?? 0) > 0) return undefined;
  if ((spec.resources?.ram_mb ?? 0) > (lead.resources?.ram_mb ?? 0)) return undefined;
  if ((spec.resources?.gpu_mem_mb ?? 0) > (lead.resources?.gpu_mem_mb ?? 0)) return undefined;
  const wf = run.row.workflow_dir;
  const leadDirs = [...outputsOf(wf, lead, run.identifiers), ...inputsOf(wf, lead, run.identifiers)];
  for (const out of outputsOf(wf, spec, run.identifiers)) {
    if (leadDirs.some((d) => overlaps(out, d))) return undefined;
  }
  return next;
}

/** The dirs a try of `task` empties before it starts: its output dirs and output channels. */
function outputsOf(wf: string, task: TaskSpec, identifiers: readonly string[]): string[] {
  const channels = (task.container?.mounts ?? []).filter((m) => m.read_only !== true).map((m) => join(wf, m.source));
  return [...outputDirsOf(wf, task, identifiers), ...channels];
}

/** The dirs a task may read: its input dir at either level, and its input channels. */
function inputsOf(wf: string, task: TaskSpec, identifiers: readonly string[]): string[] {
  const channels = (task.container?.mounts ?? []).filter((m) => m.read_only === true).map((m) => join(wf, m.source));
  if (task.input_dir === undefined) return channels;
  const inDir = task.input_dir;
  return [join(wf, inDir), ...identifiers.map((uid) => join(wf, BATCH_NAME, uid, inDir)), ...channels];
}

/** Whether one of two dirs is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(b + sep) || b.startsWith(a + sep);
}

import type { JobRow, RunRow, StarterColumns, TaskRow } from '@tessera/engine';
import type { LoadedWorkflow } from '@tessera/extension-packages';
import { seriesIdsOf } from '@tessera/model';
import type { DagSpec, Job, Progress, Run, RunDetail, Task, Workflow } from '@tessera/api';
import { iso } from '../http/lists.ts';

/** How runs, jobs, tasks and workflows look in the HTTP API (packages/api/src/workflows.ts). */
export function workflowJson(wf: LoadedWorkflow): Workflow {
  const { spec } = wf;
  return {
    id: spec.id,
    title: spec.title ?? spec.id,
    description: spec.description ?? '',
    extension: { name: wf.extension.name, version: wf.extension.version },
    workflow_form: spec.workflow_form,
    data_form: spec.data_form,
    ...(spec.task_form ? { task_form: spec.task_form } : {}),
    tasks: spec.tasks.map((t) => ({
      id: t.id,
      title: t.title ?? t.id,
      operator: t.operator,
      upstream: t.upstream,
      trigger_rule: t.trigger_rule,
      runs_as: t.builtin ? 'builtin' : t.container && t.process ? 'container or process' : t.container ? 'container' : 'process',
    })),
  };
}

export function taskJson(runId: string, t: TaskRow, upstream: string[]): Task {
  return {
    id: t.task_id,
    state: t.state,
    try_number: t.try_number,
    restarts: t.restarts,
    rerun_reason: t.rerun_reason,
    attempt: t.attempt,
    runner: t.runner,
    exit_code: t.exit_code,
    reason: t.reason,
    oom_killed: t.oom_killed === 1,
    queued_at: iso(t.queued_at),
    started_at: iso(t.started_at),
    ended_at: iso(t.ended_at),
    next_try_at: iso(t.next_try_at),
    log_url: t.try_number > 0 ? `/api/runs/${runId}/tasks/${t.task_id}/log` : null,
    upstream,
  };
}

const DONE = new Set(['success', 'failed', 'upstream_failed', 'skipped', 'canceled']);

export function progressOf(counts: Record<string, number>): Progress {
  let total = 0;
  let done = 0;
  for (const [state, n] of Object.entries(counts)) {
    total += n;
    if (DONE.has(state)) done += n;
  }
  return { total, done, counts };
}

/** The series a run works on (data_form.identifiers): how many, and the UID when it is one. */
function seriesOf(conf: string): { series_count: number; series_uid: string | null } {
  const list = seriesIdsOf((JSON.parse(conf) as { data_form?: unknown }).data_form);
  return { series_count: list.length, series_uid: list.length === 1 ? list[0]! : null };
}

/** Who started a job or a run's latest attempt, as the API shows it (the name they had). */
function starterJson(r: StarterColumns): Pick<Run, 'started_by' | 'started_role'> {
  const role = r.started_role === 'scientist' || r.started_role === 'principal-investigator' ? r.started_role : null;
  return { started_by: r.started_by_name ?? r.started_by, started_role: r.started_by === null ? null : role };
}

/** A run as lists show it. */
export function runJson(r: RunRow, project: string, counts: Record<string, number>): Run {
  return {
    id: r.id,
    job_id: r.job_id,
    project,
    workflow: r.workflow_id,
    state: r.state,
    attempt: r.attempt,
    reason: r.reason,
    created_at: iso(r.created_at)!,
    started_at: iso(r.started_at),
    ended_at: iso(r.ended_at),
    workflow_dir: r.dir_removed_at === null ? r.workflow_dir : null,
    workflow_dir_removed_at: iso(r.dir_removed_at),
    progress: progressOf(counts),
    ...seriesOf(r.conf),
    ...starterJson(r),
  };
}

/** One run with its configuration, the DAG spec it started with (its version, even after an upgrade), where its extension's files are, and its tasks. */
export function runDetailJson(r: RunRow, project: string, tasks: TaskRow[]): RunDetail {
  const spec = JSON.parse(r.spec) as DagSpec;
  const counts: Record<string, number> = {};
  for (const t of tasks) counts[t.state] = (counts[t.state] ?? 0) + 1;
  return {
    ...runJson(r, project, counts),
    conf: JSON.parse(r.conf) as RunDetail['conf'],
    spec,
    extension_dir: r.extension_dir,
    tasks: tasks.map((t) => taskJson(r.id, t, spec.tasks[t.position]?.upstream ?? [])),
  };
}

export function jobJson(j: JobRow, project: string, runs: Run[]): Job {
  const states = runs.map((r) => r.state);
  const state = states.some((s) => s === 'running' || s === 'queued')
    ? 'running'
    : states.some((s) => s === 'failed')
      ? 'failed'
      : states.some((s) => s === 'canceled')
        ? 'canceled'
        : 'success';
  return { id: j.id, project, workflow: j.workflow_id, state, created_at: iso(j.created_at)!, conf: JSON.parse(j.conf) as Job['conf'], ...starterJson(j), runs };
}

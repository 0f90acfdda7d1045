import cliProgress from 'cli-progress';
import { CliError, type ApiClient } from '../api-client.ts';
import type { Job, Run, TriggerJob, Workflow } from '@tessera/api';
import { parseFormValues } from '../form-values.ts';
import { duration, printJson } from '../output.ts';

export interface RunOptions {
  form: string[];
  /** `<task>.<VAR>=value`: settings of Task API tasks (conf.task_form). */
  taskForm?: string[];
  dataset?: string;
  series?: string;
  limit?: number;
  singleExecution?: boolean;
  wait: boolean;
  json?: boolean;
  project: string;
}

/** `tessera run`: triggers a workflow, shows live progress, exits non-zero when any run fails. */
export async function runCommand(api: ApiClient, workflowId: string, o: RunOptions): Promise<number> {
  const wf = await api.get<Workflow>(`/api/workflows/${encodeURIComponent(workflowId)}`);
  const workflowForm = parseFormValues(o.form, wf.workflow_form);
  if (o.singleExecution) workflowForm.single_execution = true;
  if (o.dataset && o.series) throw new CliError('give either --dataset or --series, not both', { exitCode: 2 });
  const dataForm: Record<string, unknown> = {};
  if (o.dataset) dataForm.dataset_name = o.dataset;
  if (o.series) dataForm.identifiers = o.series.split(',').map((s) => s.trim()).filter(Boolean);
  if (o.limit !== undefined) dataForm.dataset_limit = o.limit;
  const taskForm = parseTaskForm(o.taskForm ?? [], wf);
  let job = await api.post<Job>('/api/jobs', {
    workflow: workflowId,
    project: o.project,
    conf: { workflow_form: workflowForm, data_form: dataForm, ...(taskForm ? { task_form: taskForm } : {}) },
  } satisfies TriggerJob);
  if (!o.wait) {
    if (o.json) printJson(job);
    else console.log(`job ${job.id}: ${job.runs.length} run(s): ${job.runs.map((r) => r.id).join(', ')}`);
    return 0;
  }
  if (!o.json) console.error(`job ${job.id}: ${job.runs.length} run(s) of ${workflowId} in project ${job.project}`);
  job = await watchJob(api, job, !o.json);
  if (o.json) printJson(job);
  else printSummary(job);
  return job.runs.every((r) => r.state === 'success') ? 0 : 1;
}

const ENDED = new Set(['success', 'failed', 'canceled']);

async function watchJob(api: ApiClient, job: Job, show: boolean): Promise<Job> {
  const tty = show && process.stderr.isTTY;
  const bars = tty
    ? new cliProgress.MultiBar(
        { format: ' {run} [{bar}] {value}/{total} tasks  {state}', hideCursor: true, clearOnComplete: false, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  // One bar per run for a few runs; one bar over all tasks for a fan-out of many.
  const perRun = job.runs.length <= 10;
  const handles = new Map<string, cliProgress.SingleBar>();
  const lastLine = new Map<string, string>();
  const render = (j: Job): void => {
    if (!show) return;
    const groups: { id: string; done: number; total: number; state: string }[] = perRun
      ? j.runs.map((r) => ({ id: r.id, done: r.progress.done, total: r.progress.total, state: r.state }))
      : [{
          id: `${j.runs.length} runs`,
          done: j.runs.reduce((n, r) => n + r.progress.done, 0),
          total: j.runs.reduce((n, r) => n + r.progress.total, 0),
          state: summarizeStates(j.runs),
        }];
    for (const g of groups) {
      if (bars) {
        let bar = handles.get(g.id);
        if (!bar) {
          bar = bars.create(g.total, g.done, { run: g.id, state: g.state });
          handles.set(g.id, bar);
        }
        bar.setTotal(g.total);
        bar.update(g.done, { run: g.id, state: g.state });
      } else {
        const line = `${g.id}: ${g.done}/${g.total} tasks done, ${g.state}`;
        if (lastLine.get(g.id) !== line) console.error(line);
        lastLine.set(g.id, line);
      }
    }
  };
  let current = job;
  render(current);
  while (!current.runs.every((r) => ENDED.has(r.state))) {
    await new Promise((r) => setTimeout(r, 200));
    current = await api.get<Job>(`/api/jobs/${current.id}`);
    render(current);
  }
  bars?.stop();
  return current;
}

function summarizeStates(runs: Run[]): string {
  const counts: Record<string, number> = {};
  for (const r of runs) counts[r.state] = (counts[r.state] ?? 0) + 1;
  return Object.entries(counts).map(([s, n]) => `${n} ${s}`).join(', ');
}

function printSummary(job: Job): void {
  for (const r of job.runs) {
    const mark = r.state === 'success' ? 'ok' : r.state.toUpperCase();
    console.log(`${mark.padEnd(8)} ${r.id}  ${r.workflow}  ${duration(r.started_at, r.ended_at)}`);
    if (r.reason) console.log(`         ${r.reason}`);
    if (r.workflow_dir) console.log(`         outputs: ${r.workflow_dir}`);
    if (r.state !== 'success') console.log(`         logs:    tessera logs ${r.id}    retry: tessera retry ${r.id}`);
  }
}

/**
 * `--task-form <task>.<VAR>=value` pairs as Kaapana's conf.task_form (`<task>: {env: [{name, value}]}`);
 * the server types and checks each value against the workflow's task_form schema.
 */
export function parseTaskForm(pairs: string[], wf: Pick<Workflow, 'id' | 'task_form'>): Record<string, { env: { name: string; value: string }[] }> | undefined {
  if (pairs.length === 0) return undefined;
  const tasks = (wf.task_form?.properties ?? {}) as Record<string, { properties?: Record<string, unknown> }>;
  const out: Record<string, { env: { name: string; value: string }[] }> = {};
  for (const pair of pairs) {
    const m = /^([^.=]+)\.([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(pair);
    if (!m) throw new CliError(`--task-form "${pair}" must look like <task>.<VAR>=value`, { exitCode: 2 });
    const [, task, name, value] = m as unknown as [string, string, string, string];
    const fields = tasks[task]?.properties;
    if (!fields) {
      const known = Object.keys(tasks);
      throw new CliError(`--task-form ${pair}: workflow "${wf.id}" has no settings for task "${task}"${known.length ? `; tasks with settings: ${known.join(', ')}` : ''}`, { exitCode: 2 });
    }
    if (!Object.hasOwn(fields, name)) throw new CliError(`--task-form ${pair}: task "${task}" has no setting "${name}"; its settings are ${Object.keys(fields).join(', ')}`, { exitCode: 2 });
    (out[task] ??= { env: [] }).env.push({ name, value });
  }
  return out;
}

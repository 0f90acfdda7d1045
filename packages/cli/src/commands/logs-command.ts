import type { RunDetail } from '@tessera/api';
import type { ApiClient } from '../api-client.ts';
import { CliError } from '../api-client.ts';

export interface LogsOptions {
  follow?: boolean;
  try?: number;
  attempt?: number;
}

/**
 * `tessera logs <run> [task]`: one task's log, or every task's log of the run
 * (each line prefixed with its task). `--follow` streams until the task or run ends.
 */
export async function logsCommand(api: ApiClient, runId: string, taskId: string | undefined, o: LogsOptions): Promise<number> {
  const run = await api.get<RunDetail>(`/api/runs/${encodeURIComponent(runId)}`);
  const tasks = run.tasks;
  if (taskId) {
    if (!tasks.some((t) => t.id === taskId)) {
      throw new CliError(`run ${run.id} has no task "${taskId}"; its tasks are ${tasks.map((t) => t.id).join(', ')}`);
    }
    await api.stream(`/api/runs/${run.id}/tasks/${encodeURIComponent(taskId)}/log`, { follow: o.follow, try: o.try, attempt: o.attempt }, (t) => process.stdout.write(t));
    return 0;
  }
  if (!o.follow) {
    for (const t of tasks) {
      if (t.try_number === 0) continue;
      process.stdout.write(`==> ${t.id} (${t.state}, try ${t.try_number}${t.rerun_reason ? ', a rerun after a server restart' : ''}) <==\n`);
      await api.stream(`/api/runs/${run.id}/tasks/${encodeURIComponent(t.id)}/log`, {}, (text) => process.stdout.write(text));
    }
    return 0;
  }
  // Follow the whole run: open a followed stream for each task once it starts.
  const width = Math.max(...tasks.map((t) => t.id.length));
  const started = new Set<string>();
  const streams: Promise<void>[] = [];
  let current = run;
  for (;;) {
    for (const t of current.tasks) {
      if (t.try_number === 0 || started.has(t.id)) continue;
      started.add(t.id);
      streams.push(followPrefixed(api, run.id, t.id, t.id.padEnd(width)));
    }
    if (['success', 'failed', 'canceled'].includes(current.state)) break;
    await new Promise((r) => setTimeout(r, 250));
    current = await api.get<RunDetail>(`/api/runs/${run.id}`);
  }
  await Promise.all(streams);
  return 0;
}

async function followPrefixed(api: ApiClient, runId: string, taskId: string, prefix: string): Promise<void> {
  let partial = '';
  await api.stream(`/api/runs/${runId}/tasks/${encodeURIComponent(taskId)}/log`, { follow: true }, (text) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) process.stdout.write(`${prefix} | ${line}\n`);
  });
  if (partial) process.stdout.write(`${prefix} | ${partial}\n`);
}

import { TesseraError, isTerminalRunState, noSeriesReason, workflowNeedsData } from '@tessera/model';
import type { Transition } from '../store/workflow-store.ts';
import type { RunRow } from '../store/workflow-tables.ts';
import { CANCELED_BY_USER, decideRunRetry } from './decisions/run-end.ts';
import { buildLiveRun, taskKey, type LiveRun, type LiveTask } from './live-run.ts';
import { retryDuePatch } from './decisions/task-outcome.ts';
import type { SchedulerCore } from './scheduler-core.ts';
import { starterColumns, type Starter } from './trigger-input.ts';

/** Cancels a run: pending tasks become `canceled`, running ones are stopped. */
export async function cancelRun(core: SchedulerCore, runId: string): Promise<RunRow> {
  const run = core.runs.get(runId);
  if (!run || isTerminalRunState(run.row.state)) {
    if (run) return run.row; // its end is being written: nothing to cancel
    const row = await core.o.store.getRun(runId);
    if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `run "${runId}" does not exist`);
    return row; // already ended: nothing to cancel
  }
  const toStop: LiveTask[] = [];
  for (const [id, row] of run.tasks) {
    if (row.state === 'running') {
      const live = core.running.get(taskKey(runId, id));
      if (live) {
        live.stopReason = 'cancel';
        // Before it is stopped: a task that exits 0 on SIGTERM must not start what was armed to follow it.
        core.arming.abandonFollowers(live, 'the run was canceled');
        toStop.push(live);
      }
    }
    const timer = core.retryTimers.get(taskKey(runId, id));
    if (timer) {
      clearTimeout(timer);
      core.retryTimers.delete(taskKey(runId, id));
    }
  }
  await core.endRun(run, 'canceled', CANCELED_BY_USER);
  // A try still starting has no handle yet: watch() stops it as soon as it has one.
  await Promise.all(
    toStop.map(async (live) => {
      if (live.handle !== undefined) await core.runnerByName(live.runnerName)?.stop(live.handle);
      await live.settled;
    }),
  );
  return run.row;
}

/** Cancels every run of a job. */
export async function cancelJob(core: SchedulerCore, jobId: string): Promise<RunRow[]> {
  const job = await core.o.store.getJob(jobId);
  if (!job) throw new TesseraError('TESSERA_NOT_FOUND', `job "${jobId}" does not exist`);
  const { runs } = await core.o.store.listRuns({ jobId, limit: 1_000_000 });
  return Promise.all(runs.map((r) => cancelRun(core, r.id)));
}

/**
 * Retries a failed or canceled run: same run id, attempt + 1. Failed,
 * upstream_failed and canceled tasks (and skipped tasks downstream of them)
 * run again; successful tasks keep their results.
 */
export async function retryRun(core: SchedulerCore, runId: string, by?: Starter): Promise<RunRow> {
  if (core.runs.has(runId) || core.retrying.has(runId)) {
    throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" is still active; only a failed or canceled run can be retried`);
  }
  if ([...core.running.values()].some((l) => l.run.row.id === runId)) {
    throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" still has tasks being stopped; retry it in a few seconds`);
  }
  core.retrying.add(runId);
  try {
    const row = await core.o.store.getRun(runId);
    if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `run "${runId}" does not exist`);
    if (row.state !== 'failed' && row.state !== 'canceled') {
      throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" is ${row.state}; only a failed or canceled run can be retried`);
    }
    if (row.dir_removed_at !== null) {
      throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" cannot be retried: its workflow dir was removed by the retention policy`);
    }
    const run = buildLiveRun(row, await core.o.store.getTasks(runId));
    if (run.identifiers.length === 0 && workflowNeedsData(run.spec)) {
      throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" cannot be retried: ${noSeriesReason(run.spec.id)}; start the workflow again with series`);
    }
    const retry = decideRunRetry(run);
    core.makeLogDir(runId);
    // One transition: the reset, the run running again, and the first decisions.
    const t: Transition = {};
    for (const d of retry.tasks) core.patchTask(run, d.taskId, d.patch, t);
    // The new attempt acts with the rights of whoever retried it, never with those of an earlier starter.
    const patch = by ? { ...retry.run, ...starterColumns(by) } : retry.run;
    Object.assign(run.row, patch);
    (t.runs ??= []).push({ runId, patch });
    core.runs.set(runId, run);
    const queued = core.decide(run, retry.reset, t, 'self');
    const claimed = core.queueAndClaim(run, queued, t);
    await core.commit(t);
    core.emit('run', run.row);
    core.afterCommit(run, t, claimed);
    return run.row;
  } finally {
    core.retrying.delete(runId);
  }
}

/** Arms the timer that queues a task in `up_for_retry` again once its delay is over. */
export function scheduleRetry(core: SchedulerCore, run: LiveRun, taskId: string, delayMs: number): void {
  const k = taskKey(run.row.id, taskId);
  const timer = setTimeout(() => {
    core.retryTimers.delete(k);
    const row = run.tasks.get(taskId)!;
    if (row.state !== 'up_for_retry' || core.closing) return;
    const t: Transition = {};
    core.patchTask(run, taskId, retryDuePatch(Date.now()), t);
    void core.commit(t)
      .then(() => {
        core.emit('task', run.row.id, row);
        core.queue.push({ run, taskId });
        core.dispatch();
      })
      .catch((err) => core.fatal(err));
  }, delayMs);
  core.retryTimers.set(k, timer);
}

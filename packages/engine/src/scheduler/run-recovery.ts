import { appendFile } from 'node:fs/promises';
import type { TaskExecution } from '../runners/runner.ts';
import type { Transition } from '../store/workflow-store.ts';
import { rerunAfterRestartPatch } from './decisions/task-outcome.ts';
import { buildLiveRun, newLiveTask, taskKey, type LiveRun, type LiveTask } from './live-run.ts';
import type { SchedulerCore } from './scheduler-core.ts';

/** What recovery at start found. */
export interface RecoveryReport {
  resumedRuns: number;
  reattached: number;
  rerun: number;
  swept: number;
}

/**
 * Resumes after a start (or a crash): re-attaches or re-runs the tries that were
 * running, re-queues queued tasks, re-arms retry timers, and sweeps anything a
 * runner still runs that no task owns.
 */
export async function recoverRuns(core: SchedulerCore): Promise<RecoveryReport> {
  // Nothing is claimed and no outcome is handled until recovery is over: a re-attached
  // try that already ended must not start its downstream tasks while other tries are
  // still being recovered (and their leftovers swept).
  core.recovering = true;
  const rows = await core.o.store.activeRuns();
  let rerun = 0;
  const keep = new Set<string>();
  const resumed: LiveRun[] = [];
  const reattached: { live: LiveTask; exec: TaskExecution; startedAt: number }[] = [];
  for (const row of rows) {
    const run = buildLiveRun(row, await core.o.store.getTasks(row.id));
    core.runs.set(row.id, run);
    resumed.push(run);
    core.makeLogDir(row.id);
    if (row.state === 'queued') continue;
    const runningNow = [...run.tasks.values()].filter((t) => t.state === 'running');
    for (const task of runningNow) {
      const id = task.task_id;
      const runner = core.runnerByName(task.runner ?? '');
      const launch = core.launchFor(run, task);
      const exec = runner ? await runner.recover(launch, task.handle ?? undefined) : undefined;
      if (runner && exec) {
        keep.add(launch.key);
        core.pool.acquire(run.specs.get(id)!);
        const live = newLiveTask({ run, taskId: id, key: launch.key, runnerName: runner.name, handle: exec.handle });
        core.running.set(taskKey(row.id, id), live);
        reattached.push({ live, exec, startedAt: task.started_at ?? Date.now() });
      } else {
        await appendFile(launch.logFile, '\ntessera: the server stopped while this task ran; running it again\n').catch(() => undefined);
        const t: Transition = {};
        core.patchTask(run, id, rerunAfterRestartPatch(Date.now()), t);
        await core.commit(t);
        core.rerun.add(taskKey(row.id, id));
        rerun++;
      }
    }
  }
  let swept = 0;
  for (const r of core.o.runners) swept += await r.sweep(keep);
  core.recovering = false;
  for (const r of reattached) core.watch(r.live, r.exec, r.startedAt);
  for (const run of resumed) {
    if (run.row.state === 'queued') {
      core.background(core.startRun(run));
      continue;
    }
    for (const [id, task] of run.tasks) {
      if (task.state === 'queued') core.queue.push({ run, taskId: id });
      if (task.state === 'up_for_retry') core.scheduleRetry(run, id, Math.max(0, (task.next_try_at ?? 0) - Date.now()));
    }
    // Tasks whose upstreams ended while decisions were not yet written.
    const t: Transition = {};
    const queued = core.decide(run, [...run.tasks.keys()], t, 'self');
    await core.commit(t);
    core.afterDecisions(run, queued, t);
  }
  core.dispatch();
  return { resumedRuns: resumed.length, reattached: reattached.length, rerun, swept };
}

/**
 * Stops scheduling. Tasks on runners that survive a restart (containers) keep
 * running and are re-attached at the next start; local processes are stopped
 * and run again then. Their state stays `running` in the DB on purpose.
 */
export async function closeScheduler(core: SchedulerCore): Promise<void> {
  core.closing = true;
  for (const timer of core.retryTimers.values()) clearTimeout(timer);
  core.retryTimers.clear();
  // Tries being started must get their handle before they can be stopped.
  await Promise.allSettled([...core.pending]);
  const stops: Promise<void>[] = [];
  for (const live of core.running.values()) {
    if (live.timer) clearTimeout(live.timer);
    const runner = core.runnerByName(live.runnerName);
    if (!runner || runner.survivesRestart || live.handle === undefined) continue;
    live.stopReason = 'shutdown';
    stops.push(runner.stop(live.handle));
  }
  await Promise.allSettled(stops);
  await Promise.allSettled([...core.pending]);
  if (core.hasDeferred()) await core.commit({});
}

import { appendFile } from 'node:fs/promises';
import type { TaskExecution } from '../runners/runner.ts';
import type { Transition } from '../store/workflow-store.ts';
import type { TaskPatch } from '../store/workflow-store.ts';
import type { TaskRow } from '../store/workflow-tables.ts';
import { notStartedPatch, rerunAfterRestartPatch } from './decisions/task-outcome.ts';
import { buildLiveRun, newLiveTask, taskKey, type LiveRun, type LiveTask } from './live-run.ts';
import type { SchedulerCore } from './scheduler-core.ts';
import { scheduleRetry } from './run-control.ts';

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
        const t: Transition = {};
        const patch = rerunAfterRestartPatch(task, 'crash', Date.now());
        await noteRerun(core, launch.logFile, row.id, task, patch);
        core.patchTask(run, id, patch, t);
        await core.commit(t);
        rerun++;
      }
    }
  }
  let swept = 0;
  for (const r of core.o.runners) swept += await r.sweep(keep);
  // Tries that ended while the server was down, or run again as a new try, lose their API tokens; re-attached ones keep theirs.
  await core.o.credentials?.retain(keep);
  core.recovering = false;
  for (const r of reattached) core.watch(r.live, r.exec, r.startedAt);
  for (const run of resumed) {
    if (run.row.state === 'queued') {
      core.background(core.startRun(run));
      continue;
    }
    for (const [id, task] of run.tasks) {
      if (task.state === 'queued') core.queue.push({ run, taskId: id });
      if (task.state === 'up_for_retry') scheduleRetry(core, run, id, Math.max(0, (task.next_try_at ?? 0) - Date.now()));
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
 * Says in both logs (the try that stopped, and the new one, which `tessera logs` and
 * the UI show first) why the task runs again.
 */
async function noteRerun(core: SchedulerCore, oldLog: string, runId: string, task: TaskRow, patch: TaskPatch): Promise<void> {
  const line = `tessera: ${patch.rerun_reason}\n`;
  await appendFile(oldLog, `\n${line}`).catch(() => undefined);
  await appendFile(core.logFile(runId, task.task_id, task.attempt, patch.try_number!), line).catch(() => undefined);
}

/**
 * Stops scheduling. Tasks on runners that survive a restart (containers) keep
 * running and are re-attached at the next start; local processes are stopped and
 * queued again as a new try with the reason (it runs at the next start, without
 * using up a retry); a try claimed but not started yet is queued again as it was.
 */
export async function closeScheduler(core: SchedulerCore): Promise<void> {
  core.closing = true;
  // Nothing armed may start now: a task that ends well during the shutdown starts nothing more.
  core.arming.disarmAll('the server is stopping');
  for (const timer of core.retryTimers.values()) clearTimeout(timer);
  core.retryTimers.clear();
  // Tries being started must get their handle before they can be stopped.
  await Promise.allSettled([...core.pending]);
  const stops: Promise<void>[] = [];
  const stopped: LiveTask[] = [];
  for (const live of core.running.values()) {
    if (live.timer) clearTimeout(live.timer);
    const runner = core.runnerByName(live.runnerName);
    if (runner?.survivesRestart) continue;
    stopped.push(live);
    if (!runner || live.handle === undefined) continue;
    live.stopReason = 'shutdown';
    stops.push(runner.stop(live.handle));
  }
  await Promise.allSettled(stops);
  await Promise.allSettled([...core.pending]);
  const t: Transition = {};
  for (const live of stopped) {
    const row = live.run.tasks.get(live.taskId)!;
    if (row.state !== 'running') continue; // canceled meanwhile
    if (live.handle === undefined) {
      core.patchTask(live.run, live.taskId, notStartedPatch(Date.now()), t);
      continue;
    }
    const patch = rerunAfterRestartPatch(row, 'shutdown', Date.now());
    await noteRerun(core, core.logFile(live.run.row.id, row.task_id, row.attempt, row.try_number), live.run.row.id, row, patch);
    core.patchTask(live.run, live.taskId, patch, t);
  }
  if (core.hasDeferred() || (t.tasks ?? []).length > 0) await core.commit(t);
}

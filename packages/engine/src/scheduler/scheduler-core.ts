import { mkdirSync } from 'node:fs';
import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isTerminalRunState, noSeriesReason, workflowNeedsData, type RunState, type TaskSpec } from '@tessera/model';
import { prepareOutputDirs, prepareWorkflowDir } from '../operator-contract.ts';
import type { Runner, TaskExecution, TaskLaunch, TaskOutcome } from '../runners/runner.ts';
import type { TaskPatch, Transition, WorkflowStore } from '../store/workflow-store.ts';
import type { RunRow, TaskRow } from '../store/workflow-tables.ts';
import { Arming, type Armed } from './arming.ts';
import { decideOutcome, decideTryStart } from './decisions/task-outcome.ts';
import { decideReadyTasks, noRunnerReason } from './decisions/task-readiness.ts';
import { decideRunEnd, decideRunStop } from './decisions/run-end.ts';
import { scheduleRetry } from './run-control.ts';
import { isTerminal, newLiveTask, taskKey, taskLaunch, tryKey, type LiveRun, type LiveTask } from './live-run.ts';
import { withScaledRam } from './ram-scale.ts';
import { ResourcePool, type PoolLimits } from './resource-pool.ts';
import type { DataResolverInput } from './trigger-input.ts';

export interface SchedulerOptions {
  store: WorkflowStore;
  /** TESSERA_HOME: workflow dirs go to `<home>/workflows/<run>`, logs to `<home>/logs/<run>`. */
  home: string;
  /** Runners in order of preference; the first that supports a task (and is available) runs it. */
  runners: Runner[];
  limits: PoolLimits;
  /** URLs of platform services, given to every task. */
  services?: Record<string, string>;
  /** Issues and revokes the scoped API credential of each try (none: tasks get no credential). */
  credentials?: TaskCredentials;
  /** Turns a data_form into series UIDs (identifiers). Default: `identifiers` as given, datasets unknown. */
  resolveIdentifiers?: (input: DataResolverInput) => Promise<string[]>;
  /** Reports what the scheduler did that an operator should see (startup recovery, failures to act). */
  log?: (message: string) => void;
}

/**
 * The scoped API credentials of task tries: the server's access control issues one per
 * try that runs outside the server (a process, a container), acting in the run's project
 * with its starter's rights, and revokes it when the try or the run ends.
 */
export interface TaskCredentials {
  /** Issues a credential for one try; answers the variables that carry it (`TESSERA_API_TOKEN`), none when access control is off. */
  issue(run: RunRow, tryKey: string): Promise<Record<string, string>>;
  /** Revokes one try's credential: the try ended. */
  revokeTry(tryKey: string): Promise<void>;
  /** Revokes every credential of a run: it ended. */
  revokeRun(runId: string): Promise<void>;
  /** At start, once recovery knows which tries still run (re-attached): revokes the credentials of every other try. */
  retain(tryKeys: ReadonlySet<string>): Promise<void>;
}

/** The events the scheduler emits: a run's or a task's row changed (and was committed), or it cannot go on. */
export type SchedulerEmit = (event: 'run' | 'task' | 'fatal', ...args: unknown[]) => void;

interface QueueEntry {
  run: LiveRun;
  taskId: string;
}

interface Claimed {
  live: LiveTask;
  runner: Runner;
  /** What was armed for the task (ADR 18), taken out of `armed` by the claim; `adopted` when it is this very try. */
  armed?: Armed;
  adopted?: boolean;
}

/**
 * The scheduler's state and the code that commits and acts on its decisions: it
 * applies what `decisions/` decide to the in-memory rows, writes each transition
 * in one DB transaction before acting, then starts tries on runners, arms timers and
 * announces the change. Internal to the scheduler: DagScheduler is its public face,
 * and run-control.ts and run-recovery.ts work on it.
 */
export class SchedulerCore {
  readonly o: SchedulerOptions;
  readonly emit: SchedulerEmit;
  readonly pool: ResourcePool;
  readonly runs = new Map<string, LiveRun>();
  readonly running = new Map<string, LiveTask>();
  readonly retryTimers = new Map<string, NodeJS.Timeout>();
  /** Tasks in state `queued`, waiting for a slot and pool capacity, in FIFO order. */
  queue: QueueEntry[] = [];
  closing = false;
  recovering = false;
  /** Runs whose retry is being set up (a second retry request must fail, not run tasks twice). */
  readonly retrying = new Set<string>();
  readonly pending = new Set<Promise<void>>();
  /** Tries armed to follow running ones (ADR 18). */
  readonly arming: Arming;
  /** Writes that are not on the critical path (handles); they go with the next commit. */
  #deferred: NonNullable<Transition['tasks']> = [];
  #flushScheduled = false;

  constructor(options: SchedulerOptions, emit: SchedulerEmit) {
    this.o = options;
    this.emit = emit;
    this.pool = new ResourcePool(options.limits);
    this.arming = new Arming(this);
  }

  /** Host path of the log of one try of a task. */
  logFile(runId: string, taskId: string, attempt: number, tryNumber: number): string {
    return join(this.o.home, 'logs', runId, `${taskId}.${attempt}.${tryNumber}.log`);
  }

  workflowDir(runId: string): string {
    return join(this.o.home, 'workflows', runId);
  }

  /** Creates the folder of a run's logs (synchronous: it must exist before any try starts). */
  makeLogDir(runId: string): void {
    mkdirSync(join(this.o.home, 'logs', runId), { recursive: true });
  }

  async startRun(run: LiveRun): Promise<void> {
    try {
      await prepareWorkflowDir(run.row.workflow_dir, run.conf);
      this.makeLogDir(run.row.id);
    } catch (err) {
      if (run.row.state === 'queued') {
        await this.endRun(run, 'failed', `could not prepare the workflow dir ${run.row.workflow_dir}: ${(err as Error).message}`);
      }
      return;
    }
    if (run.row.state !== 'queued' || this.closing) return; // canceled while its dir was prepared
    // A workflow that reads series has nothing to do without any: the run fails, saying so, rather than skip every task.
    if (run.identifiers.length === 0 && workflowNeedsData(run.spec)) {
      await this.endRun(run, 'failed', noSeriesReason(run.spec.id));
      return;
    }
    const t: Transition = { runs: [{ runId: run.row.id, patch: { state: 'running', started_at: run.row.started_at ?? Date.now() } }] };
    Object.assign(run.row, t.runs![0]!.patch);
    // Every scheduled task, not only roots: after an interrupted retry, tasks whose upstreams succeeded long ago wait here.
    const queued = this.decide(run, [...run.tasks.keys()], t, 'self');
    await this.commit(t);
    this.emit('run', run.row);
    this.afterDecisions(run, queued, t);
  }

  // ---------------------------------------------------------------- applying decisions

  /**
   * Applies the readiness decisions for tasks whose inputs changed (and the run's
   * end, if they end it) to the in-memory rows and `t`; returns the tasks that became `queued`.
   */
  decide(run: LiveRun, ids: string[], t: Transition, from: 'self' | 'downstream'): string[] {
    const decisions = decideReadyTasks(run, { ids, from, attempt: run.row.attempt, now: Date.now(), blocker: (spec) => this.blocker(spec) });
    const queued: string[] = [];
    for (const d of decisions) {
      this.patchTask(run, d.taskId, d.patch, t);
      if (d.patch.state === 'queued') queued.push(d.taskId);
    }
    const end = decideRunEnd(run, Date.now());
    if (end) {
      Object.assign(run.row, end);
      (t.runs ??= []).push({ runId: run.row.id, patch: end });
    }
    return queued;
  }

  blocker(spec: TaskSpec): string | undefined {
    return this.pool.neverFits(spec) ?? (this.runnerFor(spec) ? undefined : noRunnerReason(spec));
  }

  runnerFor(spec: TaskSpec): Runner | undefined {
    return this.o.runners.find((r) => r.supports(spec));
  }

  runnerByName(name: string): Runner | undefined {
    return this.o.runners.find((r) => r.name === name);
  }

  patchTask(run: LiveRun, taskId: string, patch: TaskPatch, t: Transition): void {
    const row = run.tasks.get(taskId)!;
    const wasTerminal = isTerminal(row.state);
    Object.assign(row, patch);
    if (!wasTerminal && isTerminal(row.state)) run.pending--;
    if (wasTerminal && !isTerminal(row.state)) run.pending++;
    (t.tasks ??= []).push({ runId: run.row.id, taskId, patch });
  }

  /**
   * Queues the tasks that became `queued` and claims what fits now into the same
   * transition, so that a task's end and the start of the next one are one commit.
   * Returns the claimed tries, to start once `t` is committed.
   */
  queueAndClaim(run: LiveRun, queued: string[], t: Transition): Claimed[] {
    for (const id of queued) this.queue.push({ run, taskId: id });
    return this.#claim(t);
  }

  /** Acts on a committed transition: announces it, starts claimed tries, ends the run if it is done. */
  afterCommit(run: LiveRun, t: Transition, claimed: Claimed[]): void {
    this.#announce(t, run);
    this.#startClaimed(claimed);
    // A claim may fail tasks of other runs, and so end them.
    if (isTerminalRunState(run.row.state)) this.finishRun(run);
    for (const r of t.runs ?? []) {
      const other = this.runs.get(r.runId);
      if (other && isTerminalRunState(other.row.state)) this.finishRun(other);
    }
  }

  /** Used where `t` is already committed: claims in a transition of its own. */
  afterDecisions(run: LiveRun, queued: string[], t: Transition): void {
    this.#announce(t, run);
    for (const id of queued) this.queue.push({ run, taskId: id });
    if (isTerminalRunState(run.row.state)) this.finishRun(run);
    this.dispatch();
  }

  /** Emits a `task` event for each task row a committed transition changed. */
  #announce(t: Transition, run: LiveRun): void {
    for (const c of t.tasks ?? []) {
      const row = (c.runId === run.row.id ? run : this.runs.get(c.runId))?.tasks.get(c.taskId);
      if (row) this.emit('task', c.runId, row);
    }
  }

  // ---------------------------------------------------------------- dispatch

  /** Claims and starts what fits now, in a transition of its own. */
  dispatch(): void {
    const t: Transition = {};
    const claimed = this.#claim(t);
    if (claimed.length === 0 && (t.tasks ?? []).length === 0) return;
    this.background(
      this.commit(t).then(() => {
        for (const c of t.tasks ?? []) {
          const row = this.runs.get(c.runId)?.tasks.get(c.taskId);
          if (row) this.emit('task', c.runId, row);
        }
        this.#startClaimed(claimed);
        for (const r of t.runs ?? []) {
          const ended = this.runs.get(r.runId);
          if (ended && isTerminalRunState(ended.row.state)) this.finishRun(ended);
        }
      }),
    );
  }

  /**
   * Takes queued tasks that fit the slots and pools now (FIFO, smaller ones may pass
   * a big one that waits) and patches them to `running` in `t`.
   */
  #claim(t: Transition): Claimed[] {
    if (this.closing || this.recovering || this.queue.length === 0 || !this.pool.hasFreeSlot()) {
      if (this.queue.length > 0) this.arming.queueWaits();
      return [];
    }
    const rest: QueueEntry[] = [];
    const claimed: Claimed[] = [];
    for (let i = 0; i < this.queue.length; i++) {
      if (!this.pool.hasFreeSlot()) {
        // Nothing more can start now: keep the rest as it is, without looking at each.
        for (let j = i; j < this.queue.length; j++) rest.push(this.queue[j]!);
        break;
      }
      const entry = this.queue[i]!;
      const { run, taskId } = entry;
      const row = run.tasks.get(taskId)!;
      if (row.state !== 'queued') continue; // canceled while waiting
      // Task API scale rules: ram_mb grows with the size of the inputs, now that they are there.
      const spec = withScaledRam(run.row.workflow_dir, run.specs.get(taskId)!);
      run.specs.set(taskId, spec);
      // Checked when the task was queued, but runners and pools may differ after a restart.
      const runner = this.runnerFor(spec);
      const blocker = this.pool.neverFits(spec) ?? (runner ? undefined : noRunnerReason(spec));
      if (blocker) {
        this.patchTask(run, taskId, { state: 'failed', reason: blocker, ended_at: Date.now() }, t);
        this.decide(run, [taskId], t, 'downstream').forEach((id) => rest.push({ run, taskId: id }));
        continue;
      }
      if (!runner || !this.pool.hasFreeSlot() || !this.pool.fitsNow(spec)) {
        rest.push(entry);
        continue;
      }
      this.pool.acquire(spec);
      const k = taskKey(run.row.id, taskId);
      const patch = decideTryStart({ row, attempt: run.row.attempt, runner: runner.name, now: Date.now() });
      // What was armed for it is taken now (ADR 18): adopted when it is this try (one that
      // has started already has its handle written with this commit), else given up.
      const armed = this.arming.take(k);
      // Only once the lead has ended (its outcome is what queued this task): else it would wait for it.
      const adopted = armed !== undefined && armed.runnerName === runner.name && armed.key === `${run.row.id}/${taskId}/${patch.attempt}.${patch.try_number}` && this.running.get(taskKey(run.row.id, armed.lead.taskId)) !== armed.lead;
      if (armed && !adopted) this.arming.abandon(armed, armed.key === tryKey(run, { ...row, ...patch }) ? 'the task was started before the one it was to follow had ended' : 'the task was started again under another try');
      if (adopted && armed.exec) patch.handle = armed.exec.handle;
      this.patchTask(run, taskId, patch, t);
      const live = adopted ? armed.live : newLiveTask({ run, taskId, key: tryKey(run, row), runnerName: runner.name, handle: undefined });
      this.running.set(k, live);
      claimed.push({ live, runner, armed, adopted });
    }
    this.queue = rest;
    if (rest.length > 0) this.arming.queueWaits();
    return claimed;
  }

  #startClaimed(claimed: Claimed[]): void {
    for (const c of claimed) this.background(this.#startTry(c.live, c.runner, c.armed, c.adopted === true));
  }

  /** Starts a claimed try whose `running` state is committed. */
  async #startTry(live: LiveTask, runner: Runner, armed?: Armed, mine = false): Promise<void> {
    const { run, taskId } = live;
    const row = run.tasks.get(taskId)!;
    if (this.closing || live.stopReason || row.state !== 'running') {
      if (mine) this.arming.abandon(armed!, this.closing ? 'the server is stopping' : 'the task was stopped before it started');
      if (this.closing) return; // stays `running` in the DB: it runs at the next start
      await this.#onTaskDone(live, { state: 'failed', reason: 'stopped before it started' });
      return;
    }
    let exec: TaskExecution;
    try {
      exec = await this.arming.adopt(live, armed, mine) ?? await this.#start(live, runner, armed !== undefined && mine ? armed : undefined);
    } catch (err) {
      const reason = `${runner.name} runner could not start the task: ${(err as Error).message}`;
      await appendFile(this.logFile(run.row.id, taskId, row.attempt, row.try_number), `tessera: ${reason}\n`).catch(() => undefined);
      await this.#onTaskDone(live, { state: 'failed', reason });
      return;
    }
    this.watch(live, exec, Date.now());
    if (exec.handle && row.handle === exec.handle) {
      this.arming.armNext(live, runner); // an adopted try whose handle the claim wrote
    } else if (exec.handle) {
      row.handle = exec.handle;
      // Not on the critical path: recovery also finds a try by its key, so the handle rides along with the next commit.
      this.#deferred.push({ runId: run.row.id, taskId, patch: { handle: exec.handle } });
      this.#scheduleDeferredFlush();
      this.arming.armNext(live, runner);
    }
  }

  /** Follows a started (or re-attached) try: timeout timer, outcome. */
  watch(live: LiveTask, exec: TaskExecution, startedAt: number): void {
    live.handle = exec.handle;
    const spec = live.run.specs.get(live.taskId)!;
    const runner = this.runnerByName(live.runnerName)!;
    if (live.stopReason) {
      void runner.stop(exec.handle).catch((err) => this.o.log?.(`could not stop task ${live.key}: ${(err as Error).message}`));
    } else if (spec.timeout_s !== undefined) {
      const left = Math.max(0, spec.timeout_s * 1000 - (Date.now() - startedAt));
      live.timer = setTimeout(() => {
        live.stopReason = 'timeout';
        this.arming.abandonFollowers(live, `"${live.taskId}" timed out`);
        void runner.stop(exec.handle).catch((err) => this.o.log?.(`could not stop timed-out task ${live.key}: ${(err as Error).message}`));
      }, left);
    }
    void exec.done.then((outcome) => this.#onTaskDone(live, outcome)).catch((err) => this.fatal(err));
  }

  /** What a runner needs to start (or find again) a try; `credential`: the variables of its API credential, if it has one. */
  launchFor(run: LiveRun, row: TaskRow, credential: Record<string, string> = {}): TaskLaunch {
    return taskLaunch({ home: this.o.home, services: { ...this.o.services, ...credential }, logFile: this.logFile(run.row.id, row.task_id, row.attempt, row.try_number) }, run, row);
  }

  /** Starts a claimed try on its runner: its output dirs, its credential, then the runner's start. */
  async #start(live: LiveTask, runner: Runner, armed: Armed | undefined): Promise<TaskExecution> {
    const { run, taskId } = live;
    // An armed try of this task being given up is gone first (ADR 18).
    await this.arming.givenUp(taskKey(run.row.id, taskId));
    // What an armed try that did not start prepared is still as it was made, with the credential issued for the same try key.
    if (!armed?.prepared) await prepareOutputDirs(run.row.workflow_dir, run.specs.get(taskId)!, run.identifiers, run.madeDirs);
    // A fresh credential per try, for tasks outside the server; built-in operators act through the server's own checks.
    const reuse = armed !== undefined && Object.keys(armed.credential).length > 0;
    const credential = reuse ? armed.credential : runner.inProcess || !this.o.credentials ? {} : await this.o.credentials.issue(run.row, live.key);
    live.credentialed = Object.keys(credential).length > 0;
    return runner.start(this.launchFor(run, run.tasks.get(taskId)!, credential));
  }

  // ---------------------------------------------------------------- outcomes

  async #onTaskDone(live: LiveTask, outcome: TaskOutcome): Promise<void> {
    if (live.credentialed) {
      live.credentialed = false;
      // Off the critical path: the next task need not wait for it (the run's end revokes it too).
      this.#revoke(this.o.credentials!.revokeTry(live.key), `the API token of try ${live.key}`);
    }
    try {
      await this.#handleOutcome(live, outcome);
    } finally {
      this.arming.abandonFollowers(live);
      live.settle();
    }
  }

  async #handleOutcome(live: LiveTask, outcome: TaskOutcome): Promise<void> {
    const { run, taskId } = live;
    const k = taskKey(run.row.id, taskId);
    const spec = run.specs.get(taskId)!;
    if (live.timer) clearTimeout(live.timer);
    // Every try releases what it acquired, even one that is no longer the task's current try.
    if (!live.released) {
      live.released = true;
      this.pool.release(spec);
    }
    if (this.running.get(k) !== live) {
      this.dispatch();
      return;
    }
    this.running.delete(k);
    const row = run.tasks.get(taskId)!;
    if (this.closing && live.stopReason === 'shutdown') return; // stays `running` in the DB: rerun at next start
    if (isTerminal(row.state)) {
      // Canceled while running: the transition was written by cancel().
      this.dispatch();
      return;
    }
    const t: Transition = {};
    const decision = decideOutcome({ outcome, stopReason: live.stopReason, spec, tryNumber: row.try_number, restarts: row.restarts, now: Date.now() });
    this.patchTask(run, taskId, decision.patch, t);
    if (decision.retryInMs !== undefined) {
      await this.commit(t);
      this.emit('task', run.row.id, row);
      scheduleRetry(this, run, taskId, decision.retryInMs);
      this.dispatch();
      return;
    }
    const queued = this.decide(run, [taskId], t, 'downstream');
    const claimed = this.queueAndClaim(run, queued, t);
    await this.commit(t);
    this.afterCommit(run, t, claimed);
  }

  // ---------------------------------------------------------------- end of runs

  /** Ends a run before its tasks are done: pending tasks become `canceled`. */
  async endRun(run: LiveRun, state: RunState, reason: string): Promise<void> {
    const t: Transition = {};
    const stop = decideRunStop(run, { state, reason, now: Date.now() });
    for (const d of stop.tasks) this.patchTask(run, d.taskId, d.patch, t);
    Object.assign(run.row, stop.run);
    (t.runs ??= []).push({ runId: run.row.id, patch: stop.run });
    await this.commit(t);
    this.finishRun(run);
  }

  finishRun(run: LiveRun): void {
    if (!this.runs.delete(run.row.id)) return;
    if (this.o.credentials) {
      // Its tokens stop working before anyone hears that it ended.
      const revoked = this.o.credentials.revokeRun(run.row.id).catch((err: Error) => this.o.log?.(`could not revoke the API tokens of run ${run.row.id}: ${err.message}`));
      this.background(revoked.then(() => this.#announceEnd(run)));
      return;
    }
    this.#announceEnd(run);
  }

  #announceEnd(run: LiveRun): void {
    this.emit('run', run.row);
    if (run.row.state === 'success' && run.spec.clean_workflow_dir) {
      void rm(run.row.workflow_dir, { recursive: true, force: true })
        .then(() => this.commit({ runs: [{ runId: run.row.id, patch: { dir_removed_at: Date.now() } }] }))
        .catch((err) => this.o.log?.(`could not remove the workflow dir of run ${run.row.id}: ${(err as Error).message}`));
    }
  }

  // ---------------------------------------------------------------- commits and background work

  /** Runs work the caller does not wait for, so that close() can wait for it. */
  background(p: Promise<void>): void {
    const tracked = p.catch((err) => this.fatal(err)).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  /** Writes a transition, with the deferred writes before it, in one DB transaction. */
  async commit(t: Transition): Promise<void> {
    if (this.#deferred.length > 0) {
      t.tasks = [...this.#deferred, ...(t.tasks ?? [])];
      this.#deferred = [];
    }
    await this.o.store.write(t);
  }

  hasDeferred(): boolean {
    return this.#deferred.length > 0;
  }

  #scheduleDeferredFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      if (this.#deferred.length > 0) this.background(this.commit({}));
    });
  }

  /** A revocation that failed is reported, not fatal: the token expires, and the next start revokes it (TaskCredentials.retain). */
  #revoke(p: Promise<void>, what: string): void {
    this.background(p.catch((err: Error) => this.o.log?.(`could not revoke ${what}: ${err.message}`)));
  }

  fatal(err: unknown): void {
    // A failed DB write leaves memory and DB apart; the process must restart and recover from the DB.
    this.o.log?.(`scheduler: unrecoverable error, restart the server to recover from the database: ${(err as Error).stack ?? String(err)}`);
    this.emit('fatal', err);
  }
}

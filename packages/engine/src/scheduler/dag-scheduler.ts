import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { appendFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  TesseraError,
  evaluateTriggerRule,
  validateForm,
  type DagSpec,
  type RunState,
  type TaskSpec,
  type TaskState,
} from '@tessera/model';
import { contractEnv, prepareOutputDirs, prepareWorkflowDir, type RunConf } from '../operator-contract.ts';
import type { Runner, TaskExecution, TaskLaunch, TaskOutcome } from '../runners/runner.ts';
import type { TaskPatch, Transition, WorkflowStore } from '../store/workflow-store.ts';
import type { JobRow, RunRow, TaskRow } from '../store/workflow-tables.ts';
import { newId } from './ids.ts';
import { buildLiveRun, isTerminal, newLiveTask, taskKey, tryKey, type LiveRun, type LiveTask } from './live-run.ts';
import { ResourcePool, type PoolLimits } from './resource-pool.ts';

/** A workflow as the scheduler receives it: the validated spec and the folder it came from. */
export interface WorkflowSource {
  spec: DagSpec;
  extensionDir?: string;
}

export interface DataResolverInput {
  project: { id: string; name: string };
  dataForm: Record<string, unknown>;
}

export interface SchedulerOptions {
  store: WorkflowStore;
  /** TESSERA_HOME: workflow dirs go to `<home>/workflows/<run>`, logs to `<home>/logs/<run>`. */
  home: string;
  /** Runners in order of preference; the first that supports a task (and is available) runs it. */
  runners: Runner[];
  limits: PoolLimits;
  /** URLs and credentials of platform services, given to every task. */
  services?: Record<string, string>;
  /** Turns a data_form into series UIDs (identifiers). Default: `identifiers` as given, datasets unknown. */
  resolveIdentifiers?: (input: DataResolverInput) => Promise<string[]>;
  /** Reports what the scheduler did that an operator should see (startup recovery, failures to act). */
  log?: (message: string) => void;
}

export interface TriggerInput {
  project: { id: string; name: string };
  workflow: WorkflowSource;
  conf?: { workflow_form?: unknown; data_form?: unknown };
}

export interface TriggerResult {
  job: JobRow;
  runs: RunRow[];
}

interface QueueEntry {
  run: LiveRun;
  taskId: string;
}

interface Claimed {
  live: LiveTask;
  runner: Runner;
}

const TERMINAL_RUN: ReadonlySet<RunState> = new Set(['success', 'failed', 'canceled']);

/**
 * The persistent DAG scheduler. It decides; runners act; the DB records.
 * Every transition is written to the DB before it is acted on, decisions are
 * taken synchronously on in-memory state (so concurrent completions cannot
 * race), and a task starts as soon as its upstreams end: no polling anywhere.
 */
export class DagScheduler extends EventEmitter {
  readonly #o: SchedulerOptions;
  readonly #pool: ResourcePool;
  readonly #runs = new Map<string, LiveRun>();
  readonly #running = new Map<string, LiveTask>();
  readonly #retryTimers = new Map<string, NodeJS.Timeout>();
  /** Tasks in state `queued`, waiting for a slot and pool capacity, in FIFO order. */
  #queue: QueueEntry[] = [];
  /** Recovered tries that must run again without using up a retry. */
  readonly #rerun = new Set<string>();
  #closing = false;
  #recovering = false;
  /** Runs whose retry is being set up (a second retry request must fail, not run tasks twice). */
  readonly #retrying = new Set<string>();
  readonly #pending = new Set<Promise<void>>();
  /** Writes that are not on the critical path (handles); they go with the next commit. */
  #deferred: NonNullable<Transition['tasks']> = [];
  #flushScheduled = false;

  constructor(options: SchedulerOptions) {
    super();
    this.setMaxListeners(0);
    this.#o = options;
    this.#pool = new ResourcePool(options.limits);
  }

  get store(): WorkflowStore {
    return this.#o.store;
  }

  get limits(): PoolLimits {
    return this.#pool.limits;
  }

  usage(): ReturnType<ResourcePool['usage']> & { queued: number; activeRuns: number } {
    return { ...this.#pool.usage(), queued: this.#queue.length, activeRuns: this.#runs.size };
  }

  /** Host path of the log of one try of a task. */
  logFile(runId: string, taskId: string, attempt: number, tryNumber: number): string {
    return join(this.#o.home, 'logs', runId, `${taskId}.${attempt}.${tryNumber}.log`);
  }

  workflowDir(runId: string): string {
    return join(this.#o.home, 'workflows', runId);
  }

  // ---------------------------------------------------------------- trigger

  /**
   * Creates a job: one run over all selected series, or with
   * `workflow_form.single_execution` one run per series. Validates both forms first.
   */
  async trigger(input: TriggerInput): Promise<TriggerResult> {
    const { spec } = input.workflow;
    const rawForm = (input.conf?.workflow_form ?? {}) as Record<string, unknown>;
    if (typeof rawForm !== 'object' || rawForm === null || Array.isArray(rawForm)) {
      throw new TesseraError('TESSERA_INVALID_FORM', 'conf.workflow_form must be a JSON object', {
        details: [{ where: 'workflow_form', message: 'must be an object' }],
      });
    }
    // single_execution is a platform key (Kaapana's), not a parameter of the workflow.
    const { single_execution: singleRaw, ...params } = rawForm;
    if (singleRaw !== undefined && typeof singleRaw !== 'boolean') {
      throw new TesseraError('TESSERA_INVALID_FORM', 'workflow_form.single_execution must be true or false', {
        details: [{ where: 'workflow_form.single_execution', message: 'must be a boolean' }],
      });
    }
    const workflowForm = validateForm(spec, 'workflow_form', params);
    const badKeys = Object.keys(workflowForm).flatMap((key) => {
      const why = unsafeEnvName(key);
      return why ? [{ where: `workflow_form.${key}`, message: why }] : [];
    });
    if (badKeys.length > 0) {
      throw new TesseraError('TESSERA_INVALID_FORM', `invalid workflow_form: ${badKeys.map((d) => `${d.where} ${d.message}`).join('; ')}`, { details: badKeys });
    }
    if (singleRaw !== undefined) workflowForm.single_execution = singleRaw;
    const dataForm = validateForm(spec, 'data_form', input.conf?.data_form ?? {});
    const identifiers = await this.#resolve({ project: input.project, dataForm });
    // Identifiers become directory names (batch/<uid>): only DICOM UIDs get there.
    const badIds = identifiers.flatMap((uid, i) => (isDicomUid(uid) ? [] : [{ where: `data_form.identifiers[${i}]`, message: `"${String(uid).slice(0, 80)}" is not a DICOM UID (digits and dots, at most 64 characters)` }]));
    if (badIds.length > 0) {
      throw new TesseraError('TESSERA_INVALID_FORM', `invalid series identifiers: ${badIds.map((d) => `${d.where} ${d.message}`).join('; ')}`, { details: badIds });
    }
    const single = singleRaw === true;
    if (single && identifiers.length === 0) {
      throw new TesseraError('TESSERA_INVALID_FORM', 'single_execution needs series to fan out over, but data_form selects none', {
        details: [{ where: 'data_form', message: 'selects no series' }],
      });
    }

    const now = Date.now();
    const job: JobRow = {
      id: newId('j'),
      project_id: input.project.id,
      workflow_id: spec.id,
      conf: JSON.stringify({ workflow_form: workflowForm, data_form: dataForm }),
      created_at: now,
    };
    const groups = single ? identifiers.map((uid) => [uid]) : [identifiers];
    const runs: RunRow[] = [];
    const tasks: TaskRow[] = [];
    const specText = JSON.stringify(spec);
    for (const ids of groups) {
      const id = newId('r');
      const conf: RunConf = {
        workflow_form: workflowForm,
        data_form: { ...dataForm, identifiers: ids },
        project_form: { id: input.project.id, name: input.project.name },
      };
      runs.push({
        id,
        job_id: job.id,
        project_id: input.project.id,
        workflow_id: spec.id,
        spec: specText,
        conf: JSON.stringify(conf),
        extension_dir: input.workflow.extensionDir ?? null,
        workflow_dir: this.workflowDir(id),
        state: 'queued',
        attempt: 1,
        reason: null,
        created_at: now,
        started_at: null,
        ended_at: null,
        dir_removed_at: null,
      });
      spec.tasks.forEach((t, position) => tasks.push(newTaskRow(id, t.id, position)));
    }
    await this.#o.store.insertJob(job, runs, tasks);
    for (const row of runs) {
      const live = buildLiveRun(row, tasks.filter((t) => t.run_id === row.id));
      this.#runs.set(row.id, live);
      this.emit('run', live.row);
    }
    // Start runs after answering: the caller gets the job at once.
    for (const row of runs) this.#background(this.#startRun(this.#runs.get(row.id)!));
    return { job, runs };
  }

  async #resolve(input: DataResolverInput): Promise<string[]> {
    if (this.#o.resolveIdentifiers) return this.#o.resolveIdentifiers(input);
    if (typeof input.dataForm.dataset_name === 'string') {
      throw new TesseraError(
        'TESSERA_NOT_FOUND',
        `dataset "${input.dataForm.dataset_name}" does not exist in project "${input.project.name}"`,
      );
    }
    const ids = Array.isArray(input.dataForm.identifiers) ? (input.dataForm.identifiers as string[]) : [];
    const limit = typeof input.dataForm.dataset_limit === 'number' ? input.dataForm.dataset_limit : undefined;
    return [...new Set(ids)].slice(0, limit);
  }

  async #startRun(run: LiveRun): Promise<void> {
    try {
      await prepareWorkflowDir(run.row.workflow_dir, run.conf);
      mkdirSync(join(this.#o.home, 'logs', run.row.id), { recursive: true });
    } catch (err) {
      if (run.row.state === 'queued') {
        await this.#endRun(run, 'failed', `could not prepare the workflow dir ${run.row.workflow_dir}: ${(err as Error).message}`);
      }
      return;
    }
    if (run.row.state !== 'queued' || this.#closing) return; // canceled while its dir was prepared
    const t: Transition = { runs: [{ runId: run.row.id, patch: { state: 'running', started_at: run.row.started_at ?? Date.now() } }] };
    Object.assign(run.row, t.runs![0]!.patch);
    // Every scheduled task, not only roots: after an interrupted retry, tasks whose upstreams succeeded long ago wait here.
    const queued = this.#decide(run, [...run.tasks.keys()], t, 'self');
    await this.#commit(t);
    this.emit('run', run.row);
    this.#afterDecisions(run, queued, t);
  }

  // ---------------------------------------------------------------- decisions

  /**
   * Decides the next state of tasks whose inputs changed, following trigger rules
   * downstream through skips and upstream failures. Mutates in-memory rows, adds
   * the writes to `t`, and returns the tasks that became `queued`.
   * `from` = 'self': evaluate `ids` themselves; 'downstream': evaluate their downstream tasks.
   */
  #decide(run: LiveRun, ids: string[], t: Transition, from: 'self' | 'downstream'): string[] {
    const queued: string[] = [];
    const work = from === 'self' ? [...ids] : ids.flatMap((id) => run.downstream.get(id) ?? []);
    const now = Date.now();
    while (work.length > 0) {
      const id = work.pop()!;
      const row = run.tasks.get(id)!;
      if (row.state !== 'scheduled') continue;
      const spec = run.specs.get(id)!;
      const decision = evaluateTriggerRule(
        spec.trigger_rule,
        spec.upstream.map((u) => run.tasks.get(u)!.state),
      );
      if (decision === 'wait') continue;
      let patch: TaskPatch;
      if (decision === 'run') {
        const blocker = this.#pool.neverFits(spec) ?? this.#noRunnerReason(spec);
        patch = blocker
          ? { state: 'failed', reason: blocker, ended_at: now }
          : { state: 'queued', queued_at: now, attempt: run.row.attempt };
      } else if (decision === 'skip') {
        patch = { state: 'skipped', reason: `skipped by trigger rule ${spec.trigger_rule}`, ended_at: now };
      } else {
        const failedUp = spec.upstream.filter((u) => ['failed', 'upstream_failed', 'canceled'].includes(run.tasks.get(u)!.state));
        patch = { state: 'upstream_failed', reason: `upstream task ${failedUp.map((u) => `"${u}"`).join(', ')} did not succeed`, ended_at: now };
      }
      this.#patchTask(run, id, patch, t);
      if (patch.state === 'queued') queued.push(id);
      else work.push(...(run.downstream.get(id) ?? []));
    }
    this.#maybeEndRun(run, t);
    return queued;
  }

  #noRunnerReason(spec: TaskSpec): string | undefined {
    if (this.#runnerFor(spec)) return undefined;
    const needs = spec.builtin
      ? `the built-in operator "${spec.builtin}", which this platform does not have`
      : spec.container && !spec.process
        ? `a container runner for image "${spec.container.image}", and no Docker engine is reachable; start one (or set DOCKER_HOST), or give the operator a "process" section to run without containers`
        : 'a runner that can execute it, and none is configured';
    return `task "${spec.id}" cannot run here: it needs ${needs}`;
  }

  #runnerFor(spec: TaskSpec): Runner | undefined {
    return this.#o.runners.find((r) => r.supports(spec));
  }

  #patchTask(run: LiveRun, taskId: string, patch: TaskPatch, t: Transition): void {
    const row = run.tasks.get(taskId)!;
    const wasTerminal = isTerminal(row.state);
    Object.assign(row, patch);
    if (!wasTerminal && isTerminal(row.state)) run.pending--;
    if (wasTerminal && !isTerminal(row.state)) run.pending++;
    (t.tasks ??= []).push({ runId: run.row.id, taskId, patch });
  }

  #maybeEndRun(run: LiveRun, t: Transition): void {
    if (run.pending > 0 || TERMINAL_RUN.has(run.row.state)) return;
    const bad = [...run.tasks.values()].filter((r) => r.state === 'failed' || r.state === 'upstream_failed' || r.state === 'canceled');
    const failed = bad.filter((r) => r.state === 'failed');
    const patch = {
      state: (bad.length > 0 ? 'failed' : 'success') as RunState,
      reason:
        bad.length === 0
          ? null
          : failed.length > 0
            ? failed.map((r) => `task "${r.task_id}" failed: ${r.reason ?? 'no reason given'}`).slice(0, 5).join('; ')
            : `tasks did not run: ${bad.map((r) => r.task_id).slice(0, 10).join(', ')}`,
      ended_at: Date.now(),
    };
    Object.assign(run.row, patch);
    (t.runs ??= []).push({ runId: run.row.id, patch });
  }

  /**
   * Queues the tasks that became `queued` and claims what fits now into the same
   * transition, so that a task's end and the start of the next one are one commit.
   * Returns the claimed tries, to start once `t` is committed.
   */
  #queueAndClaim(run: LiveRun, queued: string[], t: Transition): Claimed[] {
    for (const id of queued) this.#queue.push({ run, taskId: id });
    return this.#claim(t);
  }

  /** Acts on a committed transition: announces it, starts claimed tries, ends the run if it is done. */
  #afterCommit(run: LiveRun, t: Transition, claimed: Claimed[]): void {
    this.#announce(t, run);
    this.#startClaimed(claimed);
    this.#finishEnded(run, t);
  }

  /** Finishes the runs a committed transition ended (a claim may fail tasks of other runs). */
  #finishEnded(run: LiveRun, t: Transition): void {
    if (TERMINAL_RUN.has(run.row.state)) this.#finishRun(run);
    for (const r of t.runs ?? []) {
      const other = this.#runs.get(r.runId);
      if (other && TERMINAL_RUN.has(other.row.state)) this.#finishRun(other);
    }
  }

  #afterDecisions(run: LiveRun, queued: string[], t: Transition): void {
    // Used where `t` is already committed: claim in a transition of its own.
    this.#announce(t, run);
    for (const id of queued) this.#queue.push({ run, taskId: id });
    if (TERMINAL_RUN.has(run.row.state)) this.#finishRun(run);
    this.#dispatch();
  }

  /** Emits a `task` event for each task row a committed transition changed. */
  #announce(t: Transition, run: LiveRun): void {
    for (const c of t.tasks ?? []) {
      const row = (c.runId === run.row.id ? run : this.#runs.get(c.runId))?.tasks.get(c.taskId);
      if (row) this.emit('task', c.runId, row);
    }
  }

  // ---------------------------------------------------------------- dispatch

  /** Claims and starts what fits now, in a transition of its own. */
  #dispatch(): void {
    const t: Transition = {};
    const claimed = this.#claim(t);
    if (claimed.length === 0 && (t.tasks ?? []).length === 0) return;
    this.#background(
      this.#commit(t).then(() => {
        for (const c of t.tasks ?? []) {
          const row = this.#runs.get(c.runId)?.tasks.get(c.taskId);
          if (row) this.emit('task', c.runId, row);
        }
        this.#startClaimed(claimed);
        for (const r of t.runs ?? []) {
          const ended = this.#runs.get(r.runId);
          if (ended && TERMINAL_RUN.has(ended.row.state)) this.#finishRun(ended);
        }
      }),
    );
  }

  /**
   * Takes queued tasks that fit the slots and pools now (FIFO, smaller ones may pass
   * a big one that waits) and patches them to `running` in `t`.
   */
  #claim(t: Transition): Claimed[] {
    if (this.#closing || this.#recovering || this.#queue.length === 0 || !this.#pool.hasFreeSlot()) return [];
    const rest: QueueEntry[] = [];
    const claimed: Claimed[] = [];
    for (let i = 0; i < this.#queue.length; i++) {
      if (!this.#pool.hasFreeSlot()) {
        // Nothing more can start now: keep the rest as it is, without looking at each.
        for (let j = i; j < this.#queue.length; j++) rest.push(this.#queue[j]!);
        break;
      }
      const entry = this.#queue[i]!;
      const { run, taskId } = entry;
      const row = run.tasks.get(taskId)!;
      if (row.state !== 'queued') continue; // canceled while waiting
      const spec = run.specs.get(taskId)!;
      // Checked when the task was queued, but runners and pools may differ after a restart.
      const runner = this.#runnerFor(spec);
      const blocker = this.#pool.neverFits(spec) ?? (runner ? undefined : this.#noRunnerReason(spec));
      if (blocker) {
        this.#patchTask(run, taskId, { state: 'failed', reason: blocker, ended_at: Date.now() }, t);
        this.#decide(run, [taskId], t, 'downstream').forEach((id) => rest.push({ run, taskId: id }));
        continue;
      }
      if (!runner || !this.#pool.hasFreeSlot() || !this.#pool.fitsNow(spec)) {
        rest.push(entry);
        continue;
      }
      this.#pool.acquire(spec);
      const k = taskKey(run.row.id, taskId);
      const rerun = this.#rerun.delete(k);
      this.#patchTask(
        run,
        taskId,
        {
          state: 'running',
          try_number: rerun ? Math.max(row.try_number, 1) : row.try_number + 1,
          attempt: run.row.attempt,
          runner: runner.name,
          handle: null,
          exit_code: null,
          reason: null,
          oom_killed: 0,
          started_at: Date.now(),
          ended_at: null,
          next_try_at: null,
        },
        t,
      );
      const live = newLiveTask({ run, taskId, key: tryKey(run, row), runnerName: runner.name, handle: undefined });
      this.#running.set(k, live);
      claimed.push({ live, runner });
    }
    this.#queue = rest;
    return claimed;
  }

  #startClaimed(claimed: Claimed[]): void {
    for (const c of claimed) this.#background(this.#startTry(c.live, c.runner));
  }

  /** Starts a claimed try whose `running` state is committed. */
  async #startTry(live: LiveTask, runner: Runner): Promise<void> {
    const { run, taskId } = live;
    const row = run.tasks.get(taskId)!;
    if (this.#closing) return; // stays `running` in the DB: it runs at the next start
    if (live.stopReason || row.state !== 'running') {
      await this.#onTaskDone(live, { state: 'failed', reason: 'stopped before it started' });
      return;
    }
    let exec: TaskExecution;
    try {
      prepareOutputDirs(run.row.workflow_dir, run.specs.get(taskId)!, run.identifiers, run.madeDirs);
      exec = await runner.start(this.#launchFor(run, row));
    } catch (err) {
      const reason = `${runner.name} runner could not start the task: ${(err as Error).message}`;
      await appendFile(this.logFile(run.row.id, taskId, row.attempt, row.try_number), `tessera: ${reason}\n`).catch(() => undefined);
      await this.#onTaskDone(live, { state: 'failed', reason });
      return;
    }
    this.#watch(live, exec, Date.now());
    if (exec.handle) {
      row.handle = exec.handle;
      // Not on the critical path: recovery also finds a try by its key, so the handle rides along with the next commit.
      this.#deferred.push({ runId: run.row.id, taskId, patch: { handle: exec.handle } });
      this.#scheduleDeferredFlush();
    }
  }

  /** Follows a started (or re-attached) try: timeout timer, outcome. */
  #watch(live: LiveTask, exec: TaskExecution, startedAt: number): void {
    live.handle = exec.handle;
    const spec = live.run.specs.get(live.taskId)!;
    const runner = this.#runnerByName(live.runnerName)!;
    if (live.stopReason) {
      void runner.stop(exec.handle).catch((err) => this.#o.log?.(`could not stop task ${live.key}: ${(err as Error).message}`));
    }
    else if (spec.timeout_s !== undefined) {
      const left = Math.max(0, spec.timeout_s * 1000 - (Date.now() - startedAt));
      live.timer = setTimeout(() => {
        live.stopReason = 'timeout';
        void runner.stop(exec.handle).catch((err) => this.#o.log?.(`could not stop timed-out task ${live.key}: ${(err as Error).message}`));
      }, left);
    }
    void exec.done.then((outcome) => this.#onTaskDone(live, outcome)).catch((err) => this.#fatal(err));
  }

  #launchFor(run: LiveRun, row: TaskRow): TaskLaunch {
    const task = run.specs.get(row.task_id)!;
    return {
      key: tryKey(run, row),
      runId: run.row.id,
      taskId: row.task_id,
      dagId: run.spec.id,
      task,
      workflowDir: run.row.workflow_dir,
      extensionDir: run.row.extension_dir ?? undefined,
      logFile: this.logFile(run.row.id, row.task_id, row.attempt, row.try_number),
      env: (workflowDir) =>
        contractEnv({ workflowDir, runId: run.row.id, dagId: run.spec.id, task, conf: run.conf, services: this.#o.services ?? {} }),
    };
  }

  async #onTaskDone(live: LiveTask, outcome: TaskOutcome): Promise<void> {
    try {
      await this.#handleOutcome(live, outcome);
    } finally {
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
      this.#pool.release(spec);
    }
    if (this.#running.get(k) !== live) {
      this.#dispatch();
      return;
    }
    this.#running.delete(k);
    const row = run.tasks.get(taskId)!;
    if (this.#closing && live.stopReason === 'shutdown') return; // stays `running` in the DB: rerun at next start
    if (isTerminal(row.state)) {
      // Canceled while running: the transition was written by cancel().
      this.#dispatch();
      return;
    }
    const now = Date.now();
    const t: Transition = {};
    let state: TaskState = outcome.state;
    let reason = outcome.reason ?? null;
    if (live.stopReason === 'timeout') {
      state = 'failed';
      reason = `timed out after ${spec.timeout_s} s (timeout_s of the operator)`;
    }
    const base: TaskPatch = { exit_code: outcome.exitCode ?? null, oom_killed: outcome.oomKilled ? 1 : 0, ended_at: now };
    let queued: string[] = [];
    if (state === 'failed' && row.try_number <= spec.retries) {
      const delay = retryDelayMs(spec, row.try_number);
      this.#patchTask(run, taskId, { ...base, state: 'up_for_retry', reason, next_try_at: now + delay }, t);
      await this.#commit(t);
      this.emit('task', run.row.id, row);
      this.#scheduleRetry(run, taskId, delay);
    } else {
      this.#patchTask(run, taskId, { ...base, state, reason }, t);
      queued = this.#decide(run, [taskId], t, 'downstream');
      const claimed = this.#queueAndClaim(run, queued, t);
      await this.#commit(t);
      this.#afterCommit(run, t, claimed);
      return;
    }
    this.#dispatch();
  }

  #scheduleRetry(run: LiveRun, taskId: string, delayMs: number): void {
    const k = taskKey(run.row.id, taskId);
    const timer = setTimeout(() => {
      this.#retryTimers.delete(k);
      const row = run.tasks.get(taskId)!;
      if (row.state !== 'up_for_retry' || this.#closing) return;
      const t: Transition = {};
      this.#patchTask(run, taskId, { state: 'queued', queued_at: Date.now(), next_try_at: null }, t);
      void this.#commit(t)
        .then(() => {
          this.emit('task', run.row.id, row);
          this.#queue.push({ run, taskId });
          this.#dispatch();
        })
        .catch((err) => this.#fatal(err));
    }, delayMs);
    this.#retryTimers.set(k, timer);
  }

  // ---------------------------------------------------------------- end of runs

  async #endRun(run: LiveRun, state: RunState, reason: string): Promise<void> {
    const t: Transition = {};
    const now = Date.now();
    for (const [id, row] of run.tasks) {
      if (!isTerminal(row.state)) this.#patchTask(run, id, { state: 'canceled', reason, ended_at: now }, t);
    }
    Object.assign(run.row, { state, reason, ended_at: now });
    (t.runs ??= []).push({ runId: run.row.id, patch: { state, reason, ended_at: now } });
    await this.#commit(t);
    this.#finishRun(run);
  }

  #finishRun(run: LiveRun): void {
    if (!this.#runs.delete(run.row.id)) return;
    this.emit('run', run.row);
    if (run.row.state === 'success' && run.spec.clean_workflow_dir) {
      void rm(run.row.workflow_dir, { recursive: true, force: true })
        .then(() => this.#commit({ runs: [{ runId: run.row.id, patch: { dir_removed_at: Date.now() } }] }))
        .catch((err) => this.#o.log?.(`could not remove the workflow dir of run ${run.row.id}: ${(err as Error).message}`));
    }
  }

  /** Resolves with the run's row once it has ended (success, failed or canceled). */
  async waitForRun(runId: string): Promise<RunRow> {
    let onRun: ((r: RunRow) => void) | undefined;
    // Listen before reading, so that an end between the read and the listener is not missed.
    const ended = new Promise<RunRow>((resolve) => {
      onRun = (r: RunRow): void => {
        if (r.id === runId && TERMINAL_RUN.has(r.state) && !this.#runs.has(runId)) resolve(r);
      };
      this.on('run', onRun);
    });
    try {
      const row = await this.#o.store.getRun(runId);
      if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `run "${runId}" does not exist`);
      if (TERMINAL_RUN.has(row.state) && !this.#runs.has(runId)) return row;
      return await ended;
    } finally {
      this.off('run', onRun!);
    }
  }

  // ---------------------------------------------------------------- cancel and retry

  /** Cancels a run: pending tasks become `canceled`, running ones are stopped. */
  async cancelRun(runId: string): Promise<RunRow> {
    const run = this.#runs.get(runId);
    if (!run || TERMINAL_RUN.has(run.row.state)) {
      if (run) return run.row; // its end is being written: nothing to cancel
      const row = await this.#o.store.getRun(runId);
      if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `run "${runId}" does not exist`);
      return row; // already ended: nothing to cancel
    }
    const reason = 'canceled by a user';
    const toStop: LiveTask[] = [];
    for (const [id, row] of run.tasks) {
      if (row.state === 'running') {
        const live = this.#running.get(taskKey(runId, id));
        if (live) {
          live.stopReason = 'cancel';
          toStop.push(live);
        }
      }
      const timer = this.#retryTimers.get(taskKey(runId, id));
      if (timer) {
        clearTimeout(timer);
        this.#retryTimers.delete(taskKey(runId, id));
      }
    }
    await this.#endRun(run, 'canceled', reason);
    // A try still starting has no handle yet: #watch stops it as soon as it has one.
    await Promise.all(
      toStop.map(async (live) => {
        if (live.handle !== undefined) await this.#runnerByName(live.runnerName)?.stop(live.handle);
        await live.settled;
      }),
    );
    return run.row;
  }

  /** Cancels every run of a job. */
  async cancelJob(jobId: string): Promise<RunRow[]> {
    const job = await this.#o.store.getJob(jobId);
    if (!job) throw new TesseraError('TESSERA_NOT_FOUND', `job "${jobId}" does not exist`);
    const { runs } = await this.#o.store.listRuns({ jobId, limit: 1_000_000 });
    return Promise.all(runs.map((r) => this.cancelRun(r.id)));
  }

  /**
   * Retries a failed or canceled run: same run id, attempt + 1. Failed,
   * upstream_failed and canceled tasks (and skipped tasks downstream of them)
   * run again; successful tasks keep their results.
   */
  async retryRun(runId: string): Promise<RunRow> {
    if (this.#runs.has(runId) || this.#retrying.has(runId)) {
      throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" is still active; only a failed or canceled run can be retried`);
    }
    if ([...this.#running.values()].some((l) => l.run.row.id === runId)) {
      throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" still has tasks being stopped; retry it in a few seconds`);
    }
    this.#retrying.add(runId);
    try {
      const row = await this.#o.store.getRun(runId);
      if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `run "${runId}" does not exist`);
      if (row.state !== 'failed' && row.state !== 'canceled') {
        throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" is ${row.state}; only a failed or canceled run can be retried`);
      }
      if (row.dir_removed_at !== null) {
        throw new TesseraError('TESSERA_CONFLICT', `run "${runId}" cannot be retried: its workflow dir was removed by the retention policy`);
      }
      const run = buildLiveRun(row, await this.#o.store.getTasks(runId));
      const reset = new Set<string>();
      for (const [id, r] of run.tasks) if (r.state === 'failed' || r.state === 'upstream_failed' || r.state === 'canceled') reset.add(id);
      const walk = [...reset];
      while (walk.length > 0) {
        for (const d of run.downstream.get(walk.pop()!) ?? []) {
          if (!reset.has(d) && run.tasks.get(d)!.state === 'skipped') {
            reset.add(d);
            walk.push(d);
          }
        }
      }
      mkdirSync(join(this.#o.home, 'logs', runId), { recursive: true });
      const attempt = row.attempt + 1;
      // One transition: the reset, the run running again, and the first decisions.
      const t: Transition = {};
      for (const id of reset) {
        this.#patchTask(run, id, { state: 'scheduled', try_number: 0, attempt, reason: null, exit_code: null, handle: null, started_at: null, ended_at: null, queued_at: null, next_try_at: null, oom_killed: 0 }, t);
      }
      const runPatch = { state: 'running' as RunState, attempt, reason: null, ended_at: null };
      Object.assign(run.row, runPatch);
      (t.runs ??= []).push({ runId, patch: runPatch });
      this.#runs.set(runId, run);
      const queued = this.#decide(run, [...reset], t, 'self');
      const claimed = this.#queueAndClaim(run, queued, t);
      await this.#commit(t);
      this.emit('run', run.row);
      this.#afterCommit(run, t, claimed);
      return run.row;
    } finally {
      this.#retrying.delete(runId);
    }
  }

  // ---------------------------------------------------------------- recovery and shutdown

  /**
   * Resumes after a start (or a crash): re-attaches or re-runs the tries that were
   * running, re-queues queued tasks, re-arms retry timers, and sweeps anything a
   * runner still runs that no task owns.
   */
  async start(): Promise<{ resumedRuns: number; reattached: number; rerun: number; swept: number }> {
    // Nothing is claimed and no outcome is handled until recovery is over: a re-attached
    // try that already ended must not start its downstream tasks while other tries are
    // still being recovered (and their leftovers swept).
    this.#recovering = true;
    const rows = await this.#o.store.activeRuns();
    let rerun = 0;
    const keep = new Set<string>();
    const resumed: LiveRun[] = [];
    const reattached: { live: LiveTask; exec: TaskExecution; startedAt: number }[] = [];
    for (const row of rows) {
      const run = buildLiveRun(row, await this.#o.store.getTasks(row.id));
      this.#runs.set(row.id, run);
      resumed.push(run);
      mkdirSync(join(this.#o.home, 'logs', row.id), { recursive: true });
      if (row.state === 'queued') continue;
      const runningNow = [...run.tasks.values()].filter((t) => t.state === 'running');
      for (const task of runningNow) {
        const id = task.task_id;
        const runner = this.#runnerByName(task.runner ?? '');
        const launch = this.#launchFor(run, task);
        const exec = runner ? await runner.recover(launch, task.handle ?? undefined) : undefined;
        if (runner && exec) {
          keep.add(launch.key);
          this.#pool.acquire(run.specs.get(id)!);
          const live = newLiveTask({ run, taskId: id, key: launch.key, runnerName: runner.name, handle: exec.handle });
          this.#running.set(taskKey(row.id, id), live);
          reattached.push({ live, exec, startedAt: task.started_at ?? Date.now() });
        } else {
          await appendFile(launch.logFile, '\ntessera: the server stopped while this task ran; running it again\n').catch(() => undefined);
          const t: Transition = {};
          this.#patchTask(run, id, { state: 'queued', queued_at: Date.now(), handle: null, reason: 'rerun after a server restart' }, t);
          await this.#commit(t);
          this.#rerun.add(taskKey(row.id, id));
          rerun++;
        }
      }
    }
    let swept = 0;
    for (const r of this.#o.runners) swept += await r.sweep(keep);
    this.#recovering = false;
    for (const r of reattached) this.#watch(r.live, r.exec, r.startedAt);
    for (const run of resumed) {
      if (run.row.state === 'queued') {
        this.#background(this.#startRun(run));
        continue;
      }
      for (const [id, task] of run.tasks) {
        if (task.state === 'queued') this.#queue.push({ run, taskId: id });
        if (task.state === 'up_for_retry') this.#scheduleRetry(run, id, Math.max(0, (task.next_try_at ?? 0) - Date.now()));
      }
      // Tasks whose upstreams ended while decisions were not yet written.
      const t: Transition = {};
      const queued = this.#decide(run, [...run.tasks.keys()], t, 'self');
      await this.#commit(t);
      this.#afterDecisions(run, queued, t);
    }
    this.#dispatch();
    return { resumedRuns: resumed.length, reattached: reattached.length, rerun, swept };
  }

  /**
   * Stops scheduling. Tasks on runners that survive a restart (containers) keep
   * running and are re-attached at the next start; local processes are stopped
   * and run again then. Their state stays `running` in the DB on purpose.
   */
  async close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#retryTimers.values()) clearTimeout(timer);
    this.#retryTimers.clear();
    // Tries being started must get their handle before they can be stopped.
    await Promise.allSettled([...this.#pending]);
    const stops: Promise<void>[] = [];
    for (const live of this.#running.values()) {
      if (live.timer) clearTimeout(live.timer);
      const runner = this.#runnerByName(live.runnerName);
      if (!runner || runner.survivesRestart || live.handle === undefined) continue;
      live.stopReason = 'shutdown';
      stops.push(runner.stop(live.handle));
    }
    await Promise.allSettled(stops);
    await Promise.allSettled([...this.#pending]);
    if (this.#deferred.length > 0) await this.#commit({});
  }

  /** Runs work the caller does not wait for, so that close() can wait for it. */
  #background(p: Promise<void>): void {
    const tracked = p.catch((err) => this.#fatal(err)).finally(() => this.#pending.delete(tracked));
    this.#pending.add(tracked);
  }

  #runnerByName(name: string): Runner | undefined {
    return this.#o.runners.find((r) => r.name === name);
  }

  async #commit(t: Transition): Promise<void> {
    if (this.#deferred.length > 0) {
      t.tasks = [...this.#deferred, ...(t.tasks ?? [])];
      this.#deferred = [];
    }
    await this.#o.store.write(t);
  }

  #scheduleDeferredFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      if (this.#deferred.length > 0) this.#background(this.#commit({}));
    });
  }

  #fatal(err: unknown): void {
    // A failed DB write leaves memory and DB apart; the process must restart and recover from the DB.
    this.#o.log?.(`scheduler: unrecoverable error, restart the server to recover from the database: ${(err as Error).stack ?? String(err)}`);
    this.emit('fatal', err);
  }
}

function newTaskRow(runId: string, taskId: string, position: number): TaskRow {
  return {
    run_id: runId,
    task_id: taskId,
    position,
    state: 'scheduled',
    try_number: 0,
    attempt: 1,
    runner: null,
    handle: null,
    exit_code: null,
    reason: null,
    oom_killed: 0,
    queued_at: null,
    started_at: null,
    ended_at: null,
    next_try_at: null,
  };
}

const DICOM_UID = /^[0-9]+(\.[0-9]+)*$/;

/**
 * Every workflow_form key becomes an environment variable of the tasks (Kaapana's
 * contract), so a key must not be able to change how programs run: PATH, LD_PRELOAD,
 * NODE_OPTIONS and the like, or the platform's own variables.
 */
const RESERVED_ENV = /^(PATH|HOME|SHELL|ENV|BASH_ENV|IFS|CDPATH|PS4|LD_.*|DYLD_.*|NODE_.*|NPM_.*|PYTHON.*|PERL.*|RUBY.*|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|TESSERA_.*|WORKFLOW_DIR|BATCH_NAME|OPERATOR_.*|BATCHES_INPUT_DIR|RUN_ID|DAG_ID|TASK_ID|EXTENSION_DIR)$/;

function unsafeEnvName(key: string): string | undefined {
  const name = key.toUpperCase();
  if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) return 'must be a name of letters, digits and "_" (it becomes an environment variable of the tasks)';
  if (RESERVED_ENV.test(name)) return `would set the environment variable ${name} of the tasks, which is reserved; rename the parameter`;
  return undefined;
}

/** A DICOM UID: digits and dots, at most 64 characters (PS3.5 9.1). */
export function isDicomUid(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 64 && DICOM_UID.test(value);
}

/** Delay before retry number `tryNumber` (1-based count of tries so far). */
export function retryDelayMs(spec: TaskSpec, tryNumber: number): number {
  const base = spec.retry_delay_s * 1000;
  const delay = spec.retry_backoff === 'exponential' ? base * 2 ** Math.max(0, tryNumber - 1) : base;
  const cap = spec.max_retry_delay_s !== undefined ? spec.max_retry_delay_s * 1000 : Number.POSITIVE_INFINITY;
  return Math.min(delay, cap);
}

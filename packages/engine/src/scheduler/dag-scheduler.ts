import { EventEmitter } from 'node:events';
import { TesseraError, isTerminalRunState } from '@tessera/model';
import type { WorkflowStore } from '../store/workflow-store.ts';
import type { JobRow, RunRow } from '../store/workflow-tables.ts';
import { buildLiveRun } from './live-run.ts';
import type { PoolLimits, ResourcePool } from './resource-pool.ts';
import { cancelJob, cancelRun, retryRun } from './run-control.ts';
import { closeScheduler, recoverRuns, type RecoveryReport } from './run-recovery.ts';
import { SchedulerCore, type SchedulerOptions } from './scheduler-core.ts';
import { checkSeries, identifiersAsGiven, planJob, validateTriggerForms, type Starter, type TriggerInput } from './trigger-input.ts';

export type { SchedulerOptions, TaskCredentials } from './scheduler-core.ts';
export type { DataResolverInput, Starter, TriggerInput, WorkflowSource } from './trigger-input.ts';
export type { RecoveryReport } from './run-recovery.ts';

export interface TriggerResult {
  job: JobRow;
  runs: RunRow[];
}

/**
 * The persistent DAG scheduler. It decides; runners act; the DB records.
 * The decisions are pure functions in `decisions/`; SchedulerCore writes each
 * transition to the DB before acting on it, decisions are taken synchronously on
 * in-memory state (so concurrent completions cannot race), and a task starts as
 * soon as its upstreams end: no polling anywhere.
 *
 * Events: `run` (RunRow) and `task` (runId, TaskRow) after each committed change,
 * `fatal` (error) when a DB write failed and the server must restart.
 */
export class DagScheduler extends EventEmitter {
  readonly #core: SchedulerCore;

  constructor(options: SchedulerOptions) {
    super();
    this.setMaxListeners(0);
    this.#core = new SchedulerCore(options, (event, ...args) => this.emit(event, ...args));
  }

  get store(): WorkflowStore {
    return this.#core.o.store;
  }

  get limits(): PoolLimits {
    return this.#core.pool.limits;
  }

  usage(): ReturnType<ResourcePool['usage']> & { queued: number; activeRuns: number } {
    return { ...this.#core.pool.usage(), queued: this.#core.queue.length, activeRuns: this.#core.runs.size };
  }

  /** Host path of the log of one try of a task. */
  logFile(runId: string, taskId: string, attempt: number, tryNumber: number): string {
    return this.#core.logFile(runId, taskId, attempt, tryNumber);
  }

  workflowDir(runId: string): string {
    return this.#core.workflowDir(runId);
  }

  /**
   * Creates a job: one run over all selected series, or with
   * `workflow_form.single_execution` one run per series. Validates both forms first.
   */
  async trigger(input: TriggerInput): Promise<TriggerResult> {
    const core = this.#core;
    const forms = validateTriggerForms(input.workflow.spec, input.conf);
    const resolverInput = { project: input.project, dataForm: forms.dataForm };
    const identifiers = core.o.resolveIdentifiers ? await core.o.resolveIdentifiers(resolverInput) : identifiersAsGiven(resolverInput);
    checkSeries(identifiers, forms.single);
    const { job, runs, tasks } = planJob({
      project: input.project,
      workflow: input.workflow,
      forms,
      identifiers,
      workflowDir: (runId) => core.workflowDir(runId),
      now: Date.now(),
      ...(input.startedBy ? { startedBy: input.startedBy } : {}),
    });
    await core.o.store.insertJob(job, runs, tasks);
    for (const row of runs) {
      const live = buildLiveRun(row, tasks.filter((t) => t.run_id === row.id));
      core.runs.set(row.id, live);
      this.emit('run', live.row);
    }
    // Start runs after answering: the caller gets the job at once.
    for (const row of runs) core.background(core.startRun(core.runs.get(row.id)!));
    return { job, runs };
  }

  /** Resolves with the run's row once it has ended (success, failed or canceled). */
  async waitForRun(runId: string): Promise<RunRow> {
    let onRun: ((r: RunRow) => void) | undefined;
    // Listen before reading, so that an end between the read and the listener is not missed.
    const ended = new Promise<RunRow>((resolve) => {
      onRun = (r: RunRow): void => {
        if (r.id === runId && isTerminalRunState(r.state) && !this.#core.runs.has(runId)) resolve(r);
      };
      this.on('run', onRun);
    });
    try {
      const row = await this.#core.o.store.getRun(runId);
      if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `run "${runId}" does not exist`);
      if (isTerminalRunState(row.state) && !this.#core.runs.has(runId)) return row;
      return await ended;
    } finally {
      this.off('run', onRun!);
    }
  }

  /** Cancels a run: pending tasks become `canceled`, running ones are stopped. */
  cancelRun(runId: string): Promise<RunRow> {
    return cancelRun(this.#core, runId);
  }

  /** Cancels every run of a job. */
  cancelJob(jobId: string): Promise<RunRow[]> {
    return cancelJob(this.#core, jobId);
  }

  /**
   * Retries a failed or canceled run: same run id, attempt + 1. Failed,
   * upstream_failed and canceled tasks (and skipped tasks downstream of them)
   * run again; successful tasks keep their results. `by` is who retries it: the new
   * attempt acts with their rights (the run records them as its starter); without it,
   * the run keeps its starter.
   */
  retryRun(runId: string, by?: Starter): Promise<RunRow> {
    return retryRun(this.#core, runId, by);
  }

  /**
   * Resumes after a start (or a crash): re-attaches or re-runs the tries that were
   * running, re-queues queued tasks, re-arms retry timers, and sweeps anything a
   * runner still runs that no task owns.
   */
  start(): Promise<RecoveryReport> {
    return recoverRuns(this.#core);
  }

  /**
   * Stops scheduling. Tasks on runners that survive a restart (containers) keep
   * running and are re-attached at the next start; local processes are stopped
   * and run again then. Their state stays `running` in the DB on purpose.
   */
  close(): Promise<void> {
    return closeScheduler(this.#core);
  }
}

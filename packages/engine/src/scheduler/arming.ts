import { appendFile } from 'node:fs/promises';
import { prepareOutputDirs } from '../operator-contract.ts';
import type { ArmedStart, Runner, TaskExecution } from '../runners/runner.ts';
import type { TaskRow } from '../store/workflow-tables.ts';
import { armable } from './decisions/arming.ts';
import { decideTryStart } from './decisions/task-outcome.ts';
import { newLiveTask, taskKey, tryKey, type LiveTask } from './live-run.ts';
import type { SchedulerCore } from './scheduler-core.ts';

/**
 * A try armed on its runner to start the moment the running try `lead` ends with exit
 * code 0 (ADR 18). Its output dirs are made and its credential issued before arming; the
 * claim that follows the lead's success adopts it when it asks for the same try.
 */
export interface Armed {
  /** The try key it was armed with: a claim adopts it only under the same key. */
  key: string;
  lead: LiveTask;
  /**
   * The try as the scheduler will follow it once adopted. Made at arming, so that the
   * task after it can be armed the moment it starts, before the lead's end is even written.
   */
  live: LiveTask;
  runnerName: string;
  logFile: string;
  credential: Record<string, string>;
  /** Settles once armed on the runner (undefined: the runner would not arm it). */
  armed: Promise<ArmedStart | undefined>;
  /** The runner's armed start, once armed: a disarm goes out at once (before a stop of the lead). */
  start?: ArmedStart;
  /** Set when it will not be adopted: a disarm is sent once it is armed. */
  abandoned?: string;
  /** Set once the runner has started it. */
  exec?: TaskExecution;
  /** Set once its output dirs are made (and emptied): a claim that starts it the usual way need not do it again. */
  prepared?: boolean;
}

/**
 * The tries armed to follow running ones (ADR 18), by the task key of the armed task.
 * The scheduler's core takes an entry when it claims the task (adopting it when it is the
 * same try), and gives up whatever the claims did not take.
 */
export class Arming {
  readonly #core: SchedulerCore;
  readonly #armed = new Map<string, Armed>();
  /** Tries being given up (a start of the same task waits for them), by task key. */
  readonly #givingUp = new Map<string, Promise<void>>();

  constructor(core: SchedulerCore) {
    this.#core = core;
  }

  /** Takes what is armed for a task out (a claim of that task adopts or gives it up). */
  take(taskKey: string): Armed | undefined {
    const entry = this.#armed.get(taskKey);
    if (entry) this.#armed.delete(taskKey);
    return entry;
  }

  /**
   * The execution of a claimed try that was armed: the started one when `mine` (the same
   * try) and it started, else undefined (it is then started the usual way). Waits until
   * arming is over, so that its output dirs are never made twice at once.
   */
  async adopt(live: LiveTask, armed: Armed | undefined, mine: boolean): Promise<TaskExecution | undefined> {
    if (!armed || !mine) return undefined;
    const exec = await (await armed.armed)?.started;
    if (exec) live.credentialed = Object.keys(armed.credential).length > 0;
    return exec;
  }

  /**
   * Settles once nothing armed for this task is being given up: a start of the task waits
   * for it, so that an armed try being stopped never runs beside the try that replaces it
   * (the same try key, log and status file, the same output dirs) and its credential is
   * revoked before the new one is issued.
   */
  async givenUp(taskKey: string): Promise<void> {
    for (let p = this.#givingUp.get(taskKey); p !== undefined; p = this.#givingUp.get(taskKey)) await p;
  }

  /** A task waits in the queue for room: what is armed would take a slot before it (the queue is first come, first served). */
  queueWaits(): void {
    if (this.#armed.size > 0) this.disarmAll('a task queued before it waits for room');
  }

  /**
   * Arms the task that the success of `lead` (running, with a handle) would queue, when
   * exactly one would be queued and it can take the lead's place as it is: same runner,
   * no more RAM or GPU memory, no scale rule, output dirs apart from the lead's, and no
   * task waiting in the queue. Its output dirs are made and its credential issued now, so
   * that the runner can start it the moment the lead exits with code 0.
   */
  armNext(lead: LiveTask, runner: Runner): void {
    if (!runner.arm || this.#core.closing || this.#core.recovering || this.#core.queue.length > 0 || lead.stopReason || lead.handle === undefined) return;
    const { run } = lead;
    const next = armable(run, lead.taskId, (spec) => this.#core.blocker(spec));
    if (next === undefined || this.#core.runnerFor(run.specs.get(next)!) !== runner) return;
    const k = taskKey(run.row.id, next);
    if (this.#armed.has(k)) return;
    const row = run.tasks.get(next)!;
    // The row as the claim after the lead's success will make it: queued in this attempt, then started.
    const queuedRow: TaskRow = { ...row, attempt: run.row.attempt };
    const startedRow: TaskRow = { ...queuedRow, ...decideTryStart({ row: queuedRow, attempt: run.row.attempt, runner: runner.name, now: Date.now() }) } as TaskRow;
    const key = tryKey(run, startedRow);
    const entry: Armed = {
      key,
      lead,
      live: newLiveTask({ run, taskId: next, key, runnerName: runner.name, handle: undefined }),
      runnerName: runner.name,
      logFile: this.#core.logFile(run.row.id, next, startedRow.attempt, startedRow.try_number),
      credential: {},
      armed: Promise.resolve(undefined),
    };
    this.#armed.set(k, entry);
    entry.armed = (async (): Promise<ArmedStart | undefined> => {
      await prepareOutputDirs(run.row.workflow_dir, run.specs.get(next)!, run.identifiers, run.madeDirs);
      entry.prepared = true;
      if (!runner.inProcess && this.#core.o.credentials) entry.credential = await this.#core.o.credentials.issue(run.row, entry.key);
      // The lead may have ended meanwhile (the armed start is then dropped at once), or this may have been abandoned.
      if (entry.abandoned !== undefined || lead.stopReason || lead.handle === undefined) return undefined;
      const a = runner.arm!(this.#core.launchFor(run, startedRow, entry.credential), lead.handle);
      entry.start = a;
      void a?.started.then((exec) => {
        entry.exec = exec;
        // It runs: what follows it is armed now, while the lead's end is being written.
        if (!exec || entry.abandoned !== undefined) return;
        entry.live.handle = exec.handle;
        this.armNext(entry.live, runner);
      });
      return a;
    })().catch((err: Error) => {
      // Not armed: the claim starts it the usual way, which reports what is wrong.
      this.#core.o.log?.(`could not arm task ${entry.key} to follow ${lead.key}: ${err.message}`);
      return undefined;
    });
  }

  /** Gives up what is armed: not started, or stopped if it started; its credential revoked, its log told why. */
  abandon(entry: Armed, why: string): void {
    if (entry.abandoned !== undefined) return;
    entry.abandoned = why;
    // At once, not a turn later: a stop of the lead may follow right after this.
    entry.start?.disarm();
    // What was armed to follow it goes with it.
    for (const [k, other] of this.#armed) {
      if (other.lead !== entry.live) continue;
      this.#armed.delete(k);
      this.abandon(other, `"${entry.live.taskId}", which it was to follow, was given up: ${why}`);
    }
    const work = entry.armed.then(async (a) => {
      if (!a) return;
      a.disarm();
      const exec = await a.started;
      if (exec) {
        const runner = this.#core.runnerByName(entry.runnerName)!;
        await appendFile(entry.logFile, `\ntessera: this try was started the moment "${entry.lead.taskId}" ended, and stopped: ${why}\n`).catch(() => undefined);
        await runner.stop(exec.handle);
        await exec.done;
      }
    });
    const k = taskKey(entry.live.run.row.id, entry.live.taskId);
    const done = work
      .then(async () => {
        if (Object.keys(entry.credential).length > 0) await this.#core.o.credentials!.revokeTry(entry.key);
      })
      .catch((err: Error) => this.#core.o.log?.(`could not give up the armed try ${entry.key}: ${err.message}`))
      .finally(() => {
        if (this.#givingUp.get(k) === done) this.#givingUp.delete(k);
      });
    this.#givingUp.set(k, done);
    this.#core.background(done);
  }

  /** Abandons everything armed (the server stops, or the queue is not empty). */
  disarmAll(why: string): void {
    for (const [k, entry] of this.#armed) {
      this.#armed.delete(k);
      this.abandon(entry, why);
    }
  }

  /**
   * Abandons what was armed to follow `lead`: once its outcome was handled (what a claim did
   * not adopt), or before the scheduler stops it (cancel, timeout), with why.
   */
  abandonFollowers(lead: LiveTask, why?: string): void {
    if (this.#armed.size === 0) return;
    // As the scheduler decided, not as the process ended: a try stopped for its timeout may exit 0.
    const succeeded = lead.run.tasks.get(lead.taskId)?.state === 'success';
    for (const [k, entry] of this.#armed) {
      if (entry.lead !== lead) continue;
      this.#armed.delete(k);
      this.abandon(entry, why ?? (succeeded ? 'the task was not the next to start' : `"${lead.taskId}" did not succeed`));
    }
  }
}

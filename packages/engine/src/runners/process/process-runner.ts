import { existsSync, mkdirSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { TaskSpec } from '@tessera/model';
import { outcomeFromExit } from '../exit-status.ts';
import type { ArmedStart, Runner, TaskExecution, TaskLaunch, TaskOutcome } from '../runner.ts';
import { findProcessesByEnv, groupMembers, isAlive, isZombie, killGroup, pollUntil } from './proc-table.ts';
import { LaunchError, LauncherPool, type Launched, type LauncherChoice, type LaunchRequest } from './launcher-pool.ts';
import { findTryRemains, readExitStatus, statusFileOf, watchReattached } from './process-recovery.ts';
import { moduleFoldersAbove, terminateGroup, type BwrapSandbox } from './sandbox.ts';

export interface ProcessRunnerOptions {
  /** Identifies this Tessera home, so that sweeps never touch another instance's processes. */
  homeId: string;
  /** Seconds between SIGTERM and SIGKILL when a task is stopped. */
  killGraceSeconds?: number;
  /** Variables of the server's environment passed on to tasks (default: PATH, HOME, LANG, LC_ALL, TZ, TMPDIR). */
  inheritEnv?: string[];
  /** Launcher processes that start tasks in parallel (default: 2, or 1 on a single core). */
  launchers?: number;
  /** Which launcher program starts tasks (TESSERA_LAUNCHER; default auto: the native one when it can be built, ADR 17). */
  launcher?: LauncherChoice;
  /**
   * Runs every task in this sandbox, seeing its workflow dir (read-write), its extension
   * folder and the node_modules above it (read-only) besides the system (sandbox.ts). Default: none.
   */
  sandbox?: BwrapSandbox;
  /**
   * Set when tasks must not run here as they would (no sandbox, and the admin did not
   * allow running without one): every try fails at once with this reason, in its log too.
   */
  refuse?: string;
}

const KEY_VAR = 'TESSERA_TASK_KEY';
const HOME_VAR = 'TESSERA_HOME_ID';

/**
 * Runs tasks as local processes, each in its own process group, with the
 * extension folder as working directory and stdout/stderr written straight to
 * the task's log file. The processes are started by launcher processes (ADR 5), native
 * ones that use posix_spawn (ADR 17) so that a start costs what a shell loop pays.
 */
export class ProcessRunner implements Runner {
  readonly name = 'process';
  readonly #options: Required<Omit<ProcessRunnerOptions, 'sandbox' | 'refuse'>> & Pick<ProcessRunnerOptions, 'sandbox' | 'refuse'>;
  /** The pids (handles) of the tries this runner started that have not ended. */
  readonly #running = new Set<number>();
  readonly #launchers: LauncherPool;

  constructor(options: ProcessRunnerOptions) {
    this.#options = {
      killGraceSeconds: 3,
      inheritEnv: ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'],
      launchers: Math.min(2, availableParallelism()),
      launcher: 'auto',
      sandbox: undefined,
      refuse: undefined,
      ...options,
    };
    this.#launchers = new LauncherPool({ size: this.#options.launchers, launcher: this.#options.launcher });
  }

  /** Which launcher starts the tasks, and why it is not the native one when it is not. */
  get launcher(): { kind: 'native' | 'node'; fallback?: string } {
    return { kind: this.#launchers.kind, ...(this.#launchers.fallback ? { fallback: this.#launchers.fallback } : {}) };
  }

  supports(task: TaskSpec): boolean {
    return task.process !== undefined;
  }

  async start(launch: TaskLaunch): Promise<TaskExecution> {
    const request = this.#request(launch);
    if (typeof request === 'string') {
      await note(launch.logFile, request);
      return { handle: '', done: Promise.resolve({ state: 'failed', reason: request }) };
    }
    let launched;
    try {
      launched = await this.#launchers.launch(request);
    } catch (err) {
      if (!(err instanceof LaunchError) || err.stage === 'launcher') throw err;
      // Only a failed exec means a missing program; a missing log dir or working directory is something else.
      const program = request.argv[0]!;
      const hint = err.stage === 'exec' && err.code === 'ENOENT' ? ` (is "${program}" installed and on PATH?)` : '';
      const task = launch.task.process!.command;
      const reason = `could not start ${JSON.stringify(program)}${this.#options.sandbox ? ` (the sandbox of ${JSON.stringify(task[0])})` : ''}: ${err.message}${hint}`;
      await note(launch.logFile, reason); // the log may be what could not be opened
      return { handle: '', done: Promise.resolve({ state: 'failed', reason }) };
    }
    return this.#track(launched);
  }

  /** Arms a try to start when the try `after` of this runner exits with code 0 (ADR 18). */
  arm(launch: TaskLaunch, after: string): ArmedStart | undefined {
    const afterPid = Number(after);
    if (!Number.isInteger(afterPid) || afterPid <= 0 || !this.#running.has(afterPid)) return undefined;
    const request = this.#request(launch);
    if (typeof request === 'string') return undefined;
    const armed = this.#launchers.arm(request, afterPid);
    if (!armed) return undefined;
    return { started: armed.started.then((l) => (l ? this.#track(l) : undefined)), disarm: armed.disarm };
  }

  #track(launched: Launched): TaskExecution {
    const { pid } = launched;
    this.#running.add(pid);
    const done = launched.exited.then((e): TaskOutcome => {
      this.#running.delete(pid);
      return e.lost !== undefined ? { state: 'failed', reason: e.lost } : outcomeFromExit(e.code, e.signal);
    });
    return { handle: String(pid), done };
  }

  /** What the launcher is to start for a try, or why it must not start (the runner refuses). */
  #request(launch: TaskLaunch): LaunchRequest | string {
    const task = launch.task.process?.command;
    if (!task || task.length === 0) throw new Error(`task "${launch.taskId}" has no process command`);
    if (this.#options.refuse !== undefined) return this.#options.refuse;
    const env: Record<string, string> = {};
    for (const name of this.#options.inheritEnv) {
      const v = process.env[name];
      if (v !== undefined) env[name] = v;
    }
    const { sandbox } = this.#options;
    const models = modelsDirOf(launch);
    // The server's HOME and TMPDIR are not in the sandbox; its private /tmp is (and gone with the try).
    if (sandbox) Object.assign(env, { HOME: '/tmp', TMPDIR: '/tmp' });
    Object.assign(env, launch.env(launch.workflowDir), { [KEY_VAR]: launch.key, [HOME_VAR]: this.#options.homeId });
    if (launch.extensionDir) env.EXTENSION_DIR = launch.extensionDir;
    const cwd = launch.extensionDir ?? launch.workflowDir;
    // The sandbox's monitor leads the try's process group: its pid is the handle, and its exit code is the task's.
    const argv = sandbox
      ? sandbox.wrap(task, { readWrite: [launch.workflowDir, ...models], readOnly: launch.extensionDir ? [launch.extensionDir, ...moduleFoldersAbove(launch.extensionDir)] : [], cwd })
      : task;
    return { argv, cwd, env, log: launch.logFile, status: statusFileOf(launch.logFile) };
  }

  /**
   * SIGTERM to the task's process group, SIGKILL to what is left after the grace
   * period; resolves only once no process of the group is alive, so that a stopped
   * task never runs beside its next try.
   */
  async stop(handle: string): Promise<void> {
    const pgid = Number(handle.split(':')[0]);
    // Only tries of this runner: after a restart, recover() finds processes by their key instead.
    if (!Number.isInteger(pgid) || pgid <= 0 || !this.#running.has(pgid)) return;
    if (groupMembers(pgid).length === 0) return;
    terminateGroup(pgid);
    if (await pollUntil(() => groupMembers(pgid).length === 0, this.#options.killGraceSeconds * 1000)) return;
    killGroup(pgid, 'SIGKILL');
    if (!(await pollUntil(() => groupMembers(pgid).length === 0, 10_000))) {
      throw new Error(`processes of task group ${pgid} survived SIGKILL: ${groupMembers(pgid).join(', ')}`);
    }
  }

  /**
   * After a restart: a try whose launcher recorded its end (it ended while the server
   * was down) reports that outcome; a try still running under its launcher (which
   * outlives a dead server and records the end) is re-attached and watched to its end;
   * anything else of the try is stopped and undefined is returned, so that it runs again.
   */
  async recover(launch: TaskLaunch, handle?: string): Promise<TaskExecution | undefined> {
    const statusFile = statusFileOf(launch.logFile);
    const remains = findTryRemains(KEY_VAR, launch.key);
    let status = readExitStatus(statusFile);
    if (!status && remains.watched !== undefined) {
      const pid = remains.watched;
      this.#running.add(pid);
      await note(launch.logFile, `the server restarted while this try ran; it was re-attached (pid ${pid}) and runs on`);
      const done = watchReattached(pid, statusFile).then((outcome) => {
        this.#running.delete(pid);
        return outcome;
      });
      return { handle: String(pid), done };
    }
    await this.#kill(remains.pids);
    const pid = Number(handle);
    if (!status && remains.pids.length === 0 && Number.isInteger(pid) && pid > 0 && isZombie(pid)) {
      // It has just ended: its launcher is about to collect it and write its status.
      await pollUntil(() => (status = readExitStatus(statusFile)) !== undefined, 1000);
    }
    if (!status) return undefined;
    const outcome = outcomeFromExit(status.code, status.signal);
    const how = status.code !== null ? `exit code ${status.code}` : `signal ${status.signal}`;
    await note(launch.logFile, `this try ended while the server was down (${how}); its end was recorded at the restart`);
    return { handle: handle ?? '', done: Promise.resolve(outcome) };
  }

  async #kill(pids: number[]): Promise<void> {
    for (const pid of pids) {
      killGroup(pid, 'SIGKILL');
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await pollUntil(() => pids.every((pid) => !isAlive(pid)), 10_000);
  }

  async sweep(keep: ReadonlySet<string>): Promise<number> {
    const mine = new Set(findProcessesByEnv(HOME_VAR).filter((p) => p.value === this.#options.homeId).map((p) => p.pid));
    const killed: number[] = [];
    for (const p of findProcessesByEnv(KEY_VAR)) {
      if (mine.has(p.pid) && !keep.has(p.value)) {
        killGroup(p.pid, 'SIGKILL');
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        killed.push(p.pid);
      }
    }
    await pollUntil(() => killed.every((pid) => !isAlive(pid)), 10_000);
    return killed.length;
  }

  /**
   * Ends the launchers. Running tasks keep running (the scheduler stops them first when
   * it must): a launcher with tasks stays until they end, to record their exit status.
   */
  async close(): Promise<void> {
    await this.#launchers.close();
  }
}

/** A line of the server's own in a try's log. */
async function note(logFile: string, message: string): Promise<void> {
  await appendFile(logFile, `\ntessera: ${message}\n`).catch(() => undefined);
}

/** The project's models dir of a try, made on demand, for the sandbox to show read-write (MODELS_DIR points there). */
function modelsDirOf(launch: TaskLaunch): string[] {
  if (!launch.modelsDir) return [];
  if (!existsSync(launch.modelsDir)) mkdirSync(launch.modelsDir, { recursive: true });
  return [launch.modelsDir];
}

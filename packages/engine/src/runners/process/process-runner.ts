import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { TaskSpec } from '@tessera/model';
import { outcomeFromExit } from '../exit-status.ts';
import type { Runner, TaskExecution, TaskLaunch, TaskOutcome } from '../runner.ts';
import { findProcessesByEnv, groupMembers, isAlive, killGroup, pollUntil, processStartTime } from './proc-table.ts';

export interface ProcessRunnerOptions {
  /** Identifies this Tessera home, so that sweeps never touch another instance's processes. */
  homeId: string;
  /** Seconds between SIGTERM and SIGKILL when a task is stopped. */
  killGraceSeconds?: number;
  /** Variables of the server's environment passed on to tasks (default: PATH, HOME, LANG, TZ, TMPDIR). */
  inheritEnv?: string[];
}

const KEY_VAR = 'TESSERA_TASK_KEY';
const HOME_VAR = 'TESSERA_HOME_ID';

/**
 * Runs tasks as local processes, each in its own process group, with the
 * extension folder as working directory and stdout/stderr written straight
 * to the task's log file (no copy through the server).
 */
export class ProcessRunner implements Runner {
  readonly name = 'process';
  readonly #options: Required<ProcessRunnerOptions>;
  readonly #children = new Map<string, ChildProcess>();

  constructor(options: ProcessRunnerOptions) {
    this.#options = {
      killGraceSeconds: 3,
      inheritEnv: ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR'],
      ...options,
    };
  }

  supports(task: TaskSpec): boolean {
    return task.process !== undefined;
  }

  async start(launch: TaskLaunch): Promise<TaskExecution> {
    const command = launch.task.process?.command;
    if (!command || command.length === 0) throw new Error(`task "${launch.taskId}" has no process command`);
    const env: Record<string, string> = {};
    for (const name of this.#options.inheritEnv) {
      const v = process.env[name];
      if (v !== undefined) env[name] = v;
    }
    Object.assign(env, launch.env(launch.workflowDir), {
      [KEY_VAR]: launch.key,
      [HOME_VAR]: this.#options.homeId,
    });
    if (launch.extensionDir) env.EXTENSION_DIR = launch.extensionDir;
    const log = openSync(launch.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(command[0]!, command.slice(1), {
        cwd: launch.extensionDir ?? launch.workflowDir,
        env,
        stdio: ['ignore', log, log],
        detached: true,
      });
    } catch (err) {
      writeSync(log, `tessera: could not start ${JSON.stringify(command)}: ${(err as Error).message}\n`);
      closeSync(log);
      return { handle: '', done: Promise.resolve({ state: 'failed', reason: `could not start: ${(err as Error).message}` }) };
    }
    const done = new Promise<TaskOutcome>((resolve) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'ENOENT' ? ` (is "${command[0]}" installed and on PATH?)` : '';
        const reason = `could not start ${JSON.stringify(command[0])}: ${err.message}${hint}`;
        try {
          writeSync(log, `tessera: ${reason}\n`);
        } finally {
          closeSync(log);
        }
        resolve({ state: 'failed', reason });
      });
      child.once('exit', (code, signal) => {
        if (child.pid !== undefined) closeSync(log);
        this.#children.delete(handle);
        resolve(outcomeFromExit(code, signal));
      });
    });
    const pid = child.pid;
    const handle = pid === undefined ? '' : `${pid}:${processStartTime(pid) ?? '?'}`;
    if (pid !== undefined) this.#children.set(handle, child);
    return { handle, done };
  }

  /**
   * SIGTERM to the task's process group, SIGKILL to what is left after the grace
   * period; resolves only once no process of the group is alive, so that a stopped
   * task never runs beside its next try.
   */
  async stop(handle: string): Promise<void> {
    const pgid = Number(handle.split(':')[0]);
    if (!Number.isInteger(pgid) || pgid <= 0) return;
    // A leader with another start time is a reused pid: its group is not ours.
    if (this.#alivePid(handle) === undefined && !this.#children.has(handle)) {
      if (isAlive(pgid)) return;
    }
    if (groupMembers(pgid).length === 0) return;
    killGroup(pgid, 'SIGTERM');
    const gone = await pollUntil(() => groupMembers(pgid).length === 0, this.#options.killGraceSeconds * 1000);
    if (gone) return;
    killGroup(pgid, 'SIGKILL');
    if (!(await pollUntil(() => groupMembers(pgid).length === 0, 10_000))) {
      throw new Error(`processes of task group ${pgid} survived SIGKILL: ${groupMembers(pgid).join(', ')}`);
    }
  }

  /** A local process cannot be re-attached: stop what is left of the try so that it runs again. */
  async recover(launch: TaskLaunch, handle: string | undefined): Promise<TaskExecution | undefined> {
    if (handle) await this.stop(handle);
    const left = findProcessesByEnv(KEY_VAR).filter((p) => p.value === launch.key).map((p) => p.pid);
    for (const pid of left) killGroup(pid, 'SIGKILL');
    await pollUntil(() => left.every((pid) => !isAlive(pid)), 10_000);
    return undefined;
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

  async close(): Promise<void> {
    this.#children.clear();
  }

  #alivePid(handle: string): number | undefined {
    const [pidText, start] = handle.split(':');
    const pid = Number(pidText);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const now = processStartTime(pid);
    // A different start time means the pid was reused by another process.
    if (now === undefined || (start !== '?' && now !== start)) return undefined;
    return pid;
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, writeSync } from 'node:fs';
import type { TaskSpec } from '@tessera/model';
import { outcomeFromExit } from '../exit-status.ts';
import type { Runner, TaskExecution, TaskLaunch, TaskOutcome } from '../runner.ts';
import { findProcessesByEnv, killGroup, processStartTime } from './proc-table.ts';

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

  async stop(handle: string): Promise<void> {
    const pid = this.#alivePid(handle);
    if (pid === undefined) return;
    killGroup(pid, 'SIGTERM');
    const live = this.#children.get(handle);
    const child = live && live.exitCode === null && live.signalCode === null ? live : undefined;
    const exited = child
      ? new Promise<void>((resolve) => child.once('exit', () => resolve()))
      : Promise.resolve();
    const timer = setTimeout(() => {
      if (this.#alivePid(handle) !== undefined) killGroup(pid, 'SIGKILL');
    }, this.#options.killGraceSeconds * 1000);
    timer.unref();
    if (!child) {
      // Not our child (after a restart): wait for it to go away by polling /proc.
      while (this.#alivePid(handle) !== undefined) await new Promise((r) => setTimeout(r, 50));
      clearTimeout(timer);
      return;
    }
    await exited;
    clearTimeout(timer);
    // The leader has exited; kill whatever it left behind in its group.
    killGroup(pid, 'SIGKILL');
  }

  /** A local process cannot be re-attached: stop what is left of the try so that it runs again. */
  async recover(launch: TaskLaunch, handle: string | undefined): Promise<TaskExecution | undefined> {
    if (handle) await this.stop(handle);
    for (const p of findProcessesByEnv(KEY_VAR)) {
      if (p.value === launch.key) killGroup(p.pid, 'SIGKILL');
    }
    return undefined;
  }

  async sweep(keep: ReadonlySet<string>): Promise<number> {
    const mine = new Set(findProcessesByEnv(HOME_VAR).filter((p) => p.value === this.#options.homeId).map((p) => p.pid));
    let stopped = 0;
    for (const p of findProcessesByEnv(KEY_VAR)) {
      if (mine.has(p.pid) && !keep.has(p.value)) {
        killGroup(p.pid, 'SIGKILL');
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        stopped++;
      }
    }
    return stopped;
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

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AppSpecT } from '@tessera/extension-packages';
import { killGroup } from '@tessera/engine';
import type { AppExit, AppHandle, AppLaunch, AppRunner } from '../app-runner.ts';

/** Options of the process runner. */
export interface ProcessAppRunnerOptions {
  /** How long an app has, after SIGTERM, before its process group is killed (ms; default 5000). */
  stopGraceMs?: number;
}

/**
 * Runs application processes: each in its own process group (so that stop reaches
 * what it started), in its extension folder, with stdout and stderr appended to its log
 * file, and TESSERA_APP_ID in its environment so that a restarted server knows it.
 */
export class ProcessAppRunner implements AppRunner {
  readonly name = 'process';
  readonly #graceMs: number;

  constructor(options: ProcessAppRunnerOptions = {}) {
    this.#graceMs = options.stopGraceMs ?? 5000;
  }

  canRun(spec: AppSpecT): boolean {
    return spec.process !== undefined;
  }

  start(o: AppLaunch): Promise<AppHandle> {
    const command = o.spec.process!.command;
    mkdirSync(dirname(o.logFile), { recursive: true });
    const log = openSync(o.logFile, 'a');
    return new Promise((resolve, reject) => {
      const child = spawn(command[0]!, command.slice(1), {
        cwd: o.extDir,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LANG: process.env.LANG ?? 'C.UTF-8', ...o.env, TESSERA_APP_ID: o.appId },
        detached: true,
        stdio: ['ignore', log, log],
      });
      closeSync(log);
      const exited = new Promise<AppExit>((done) => child.once('exit', (code, signal) => {
        // What the app started in its group goes with it.
        killGroup(child.pid!, 'SIGKILL');
        done({ code, signal });
      }));
      child.once('error', (err) => reject(new Error(`could not start ${command[0]}: ${err.message}`, { cause: err })));
      child.once('spawn', () => resolve({ id: String(child.pid!), exited }));
    });
  }

  /** SIGTERM to the group, SIGKILL after the grace time; resolves once the process is gone. */
  async stop(handle: AppHandle): Promise<void> {
    const pid = Number(handle.id);
    killGroup(pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), this.#graceMs);
    await handle.exited;
    clearTimeout(timer);
    killGroup(pid, 'SIGKILL'); // whatever the leader left behind in its group
  }

  /** Kills the process group an earlier server started for this instance, if that pid is still one of ours. */
  async removeStale(o: { appId: string; handleId?: string }): Promise<void> {
    if (!o.handleId) return;
    const pid = Number(o.handleId);
    let environ: string;
    try {
      environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
    } catch (err) {
      // Gone (ENOENT), or another user's process that took its pid (EACCES): nothing of ours is left.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM') return;
      throw new Error(`could not check process ${pid} of application instance ${o.appId}`, { cause: err });
    }
    if (environ.split('\0').includes(`TESSERA_APP_ID=${o.appId}`)) killGroup(pid, 'SIGKILL');
  }

  async close(): Promise<void> {
    // Nothing held: the processes are the manager's to stop.
  }
}

import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AppSpecT } from '@tessera/extension-packages';
import { killGroup, LauncherPool, moduleFoldersAbove, terminateGroup, type BwrapSandbox, type LauncherChoice } from '@tessera/engine';
import type { AppExit, AppHandle, AppLaunch, AppRunner } from '../app-runner.ts';

/** Options of the process runner. */
export interface ProcessAppRunnerOptions {
  /** How long an app has, after SIGTERM, before its process group is killed (ms; default 5000). */
  stopGraceMs?: number;
  /**
   * Runs every app in this sandbox, seeing its instance dir, its result bucket and the
   * workflow dir of the run that launched it (read-write), its extension folder and the
   * node_modules above it (read-only) besides the system (@tessera/engine's sandbox.ts). Default: none.
   */
  sandbox?: BwrapSandbox;
  /** Set when apps must not run here (no sandbox, and running without one is not allowed): start() rejects with it. */
  refuse?: string;
  /** Which launcher program starts the processes (TESSERA_LAUNCHER; default auto, ADR 17). */
  launcher?: LauncherChoice;
}

/**
 * Runs application processes: each in its own process group (so that stop reaches
 * what it started), in its extension folder, with stdout and stderr appended to its log
 * file, and TESSERA_APP_ID in its environment so that a restarted server knows it.
 * Started by a launcher process as tasks are (ADR 17), never by a fork of the server.
 */
export class ProcessAppRunner implements AppRunner {
  readonly name = 'process';
  readonly #graceMs: number;
  readonly #sandbox: BwrapSandbox | undefined;
  readonly #refuse: string | undefined;
  readonly #launcherChoice: LauncherChoice;
  #launchers: LauncherPool | undefined;

  constructor(options: ProcessAppRunnerOptions = {}) {
    this.#graceMs = options.stopGraceMs ?? 5000;
    this.#sandbox = options.sandbox;
    this.#refuse = options.refuse;
    this.#launcherChoice = options.launcher ?? 'auto';
  }

  canRun(spec: AppSpecT): boolean {
    return spec.process !== undefined;
  }

  refusal(): string | undefined {
    return this.#refuse;
  }

  async start(o: AppLaunch): Promise<AppHandle> {
    if (this.#refuse !== undefined) throw new Error(this.#refuse);
    const app = o.spec.process!.command;
    mkdirSync(dirname(o.logFile), { recursive: true });
    const sandbox = this.#sandbox;
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LANG: process.env.LANG ?? 'C.UTF-8' };
    let command = app;
    if (sandbox) {
      // The server's HOME is not in the sandbox: the app's own (Jupyter's config, data and
      // history, a shell's dotfiles) lives in its instance dir and stays across restarts.
      env.HOME = join(o.instanceDir, 'home');
      env.TMPDIR = '/tmp';
      mkdirSync(env.HOME, { recursive: true });
      const readWrite = [o.instanceDir];
      // What the launch mounts (as the Docker runner does): its project's result bucket, its run's workflow dir.
      if (o.env.RESULTS_DIR) {
        mkdirSync(o.env.RESULTS_DIR, { recursive: true });
        readWrite.push(o.env.RESULTS_DIR);
      }
      if (o.env.WORKFLOW_DIR && o.runId) readWrite.push(o.env.WORKFLOW_DIR);
      command = sandbox.wrap(app, { readWrite, readOnly: [o.extDir, ...moduleFoldersAbove(o.extDir)], cwd: o.extDir });
    }
    // One launcher, started with the first app: apps start seldom, and each start is one request.
    this.#launchers ??= new LauncherPool({ size: 1, launcher: this.#launcherChoice });
    const launched = await this.#launchers
      .launch({ argv: command, cwd: o.extDir, env: { ...env, ...o.env, TESSERA_APP_ID: o.appId }, log: o.logFile })
      .catch((err: Error) => {
        throw new Error(`could not start ${command[0]}${sandbox ? ` (the sandbox of ${app[0]})` : ''}: ${err.message}`, { cause: err });
      });
    // The launcher kills what the app left in its group when the app ends.
    const exited = launched.exited.then((e): AppExit => (e.lost !== undefined ? { code: null, signal: 'lost' } : { code: e.code, signal: e.signal }));
    return { id: String(launched.pid), exited };
  }

  /** SIGTERM to the group, SIGKILL after the grace time; resolves once the process is gone. */
  async stop(handle: AppHandle): Promise<void> {
    const pid = Number(handle.id);
    terminateGroup(pid);
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

  /** Ends the launcher's input; the processes are the manager's to stop (a launcher with apps stays until they end). */
  async close(): Promise<void> {
    await this.#launchers?.close();
    this.#launchers = undefined;
  }
}

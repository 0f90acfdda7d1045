import type { AppSpecT } from '@tessera/extension-packages';

/** How an application's process or container ended. */
export interface AppExit {
  code: number | null;
  /** The signal that ended a process; `"lost"` when a runner lost track of it. */
  signal: string | null;
}

/** What a runner is given to start one instance of an application. */
export interface AppLaunch {
  /** The instance id: what the runner tags its processes or containers with, to find them after a restart. */
  appId: string;
  /** The app spec of the manifest, as it was when the instance was launched. */
  spec: AppSpecT;
  /** The extension folder (the working directory of a process). */
  extDir: string;
  /** The port on 127.0.0.1 where the app must answer (the proxy connects there). */
  hostPort: number;
  /**
   * The app's environment as the platform sees it: host paths (`RESULTS_DIR`,
   * `WORKFLOW_DIR`), `PORT` = `hostPort`. A runner that isolates the app (a container)
   * mounts those paths and rewrites them.
   */
  env: Record<string, string>;
  /** The workflow run that launched the instance, if one did (its `WORKFLOW_DIR` is mounted under this id). */
  runId?: string;
  /** Where the app's stdout and stderr are appended. */
  logFile: string;
  /** The instance's own folder (its log is there): a sandboxed process app's HOME is `<instanceDir>/home`. */
  instanceDir: string;
}

/** A started instance. */
export interface AppHandle {
  /** What the runner knows it by (a process group id, a container id); kept so that a restarted server finds it. */
  id: string;
  /** Settles when the app has ended, however (what it started in its process group ends with it). */
  exited: Promise<AppExit>;
}

/**
 * Runs application instances: a local process, a container on the Docker engine, and
 * later a Kubernetes pod. Every runner passes app-runner-conformance.ts; a new one is a
 * new folder beside process/ and docker/.
 */
export interface AppRunner {
  /** Recorded with each instance (`app_instances.runner`), so that recovery finds the same runner again. */
  readonly name: string;
  /** Whether this runner can run the spec (a process runner needs `process`, a container runner `container`). */
  canRun(spec: AppSpecT): boolean;
  /**
   * Why this runner will not run apps here although it could (a process runner without
   * a sandbox where running without one is not allowed), or undefined: a launch answers
   * this as its error instead of recording an instance that would only fail.
   */
  refusal?(): string | undefined;
  /** Starts the app; resolves once it is started (not yet healthy). */
  start(launch: AppLaunch): Promise<AppHandle>;
  /** Asks the app to end, ends it (and all it started) after the runner's grace time; resolves once it is gone. */
  stop(handle: AppHandle): Promise<void>;
  /**
   * Removes what an earlier server left running for this instance (after a restart),
   * given the handle id that server recorded, if any.
   */
  removeStale(o: { appId: string; handleId?: string }): Promise<void>;
  /** Releases what the runner holds (not the apps: stop them first). */
  close(): Promise<void>;
}

import type { TaskSpec } from '@tessera/model';
import type { RunConf } from '../operator-contract.ts';

/** Everything a runner needs to start one try of one task. */
export interface TaskLaunch {
  /** Unique per try: `<runId>/<taskId>/<attempt>.<try>`. Runners tag what they start with it. */
  key: string;
  runId: string;
  taskId: string;
  dagId: string;
  task: TaskSpec;
  /** Host path of the run's workflow dir. */
  workflowDir: string;
  /** Folder of the extension the workflow came from (working directory of process tasks). */
  extensionDir: string | undefined;
  /** Host path of the file that receives the task's stdout and stderr. */
  logFile: string;
  /**
   * Host path of the run's project's models dir (`<home>/models/<project id>`), made on
   * demand by the runner: `/models` in a container, `MODELS_DIR` for every task. Unset: none.
   */
  modelsDir?: string;
  /** The operator-contract environment, for a task that sees the workflow dir at `workflowDir`. */
  env(workflowDir: string): Record<string, string>;
  /**
   * The run's configuration as the platform keeps it. Built-in operators take the project
   * from here, never from the workflow dir's conf/conf.json: a task may rewrite that file.
   */
  conf: RunConf;
  /**
   * The run's project and who started it (null: no user, an arrival trigger): the rights
   * the task acts with. Built-in operators check them before they act on data.
   */
  startedBy?: { projectId: string; userId: string | null; userName: string | null; role: string | null };
}

/** How one try ended, as the runner saw it. */
export interface TaskOutcome {
  state: 'success' | 'failed' | 'skipped';
  exitCode?: number;
  /** Human-readable reason for a failure, e.g. "out of memory (limit 64 MB)". */
  reason?: string;
  /** Set when the runner knows the kernel killed the task for memory. */
  oomKilled?: boolean;
}

/** A started try. */
export interface TaskExecution {
  /** Opaque id to find the try again after a restart (pid, container id); stored in the DB. */
  handle: string;
  /** Settles when the try ends, however it ends. Never rejects. */
  done: Promise<TaskOutcome>;
}

/**
 * A try the runner starts by itself the moment another try of it ends with exit code 0
 * (ADR 18), so that the next task of a chain does not wait for the server.
 */
export interface ArmedStart {
  /**
   * Settles once the runner has decided: the started try, or undefined when it will not
   * start it (the try it follows ended otherwise, it was disarmed, or the start failed).
   * Never rejects.
   */
  readonly started: Promise<TaskExecution | undefined>;
  /** Asks the runner not to start it; `started` then settles undefined unless it has started already. */
  disarm(): void;
}

/**
 * One interface for every way of executing a task: local processes, the Docker
 * engine, built-in operators, Kubernetes pods. Every runner passes the shared
 * conformance suite in runner-conformance.ts.
 */
export interface Runner {
  /** `process`, `docker`, `builtin`, ... */
  readonly name: string;
  /**
   * True when tasks keep running while the server is down and can be re-attached
   * (containers). The scheduler leaves such tasks running on a graceful shutdown
   * and stops the others (local processes), which then run again at the next start.
   */
  readonly survivesRestart?: boolean;
  /**
   * True when tasks run inside the server process (built-in operators): they act through
   * the server's own code, which checks the run's rights, and get no API credential.
   */
  readonly inProcess?: boolean;
  /** Whether this runner can run the task; runners are asked in order of preference. */
  supports(task: TaskSpec): boolean;
  /** Starts a try. Rejects only if it could not be started at all. */
  start(launch: TaskLaunch): Promise<TaskExecution>;
  /**
   * Optional: arms a try to start the moment the running try `after` (a handle of this
   * runner) exits with code 0. Undefined when the runner cannot arm it; the scheduler
   * then starts it the usual way. The work start() does before the process (output dirs,
   * credentials) is the caller's, done before arming.
   */
  arm?(launch: TaskLaunch, after: string): ArmedStart | undefined;
  /** Stops a running try (its `done` then settles). Idempotent; stopping an ended try is a no-op. */
  stop(handle: string): Promise<void>;
  /**
   * After a server restart, for a try that was running: re-attach if the runner
   * can (a container that still runs, or one that ended and still holds its
   * exit code); otherwise make sure nothing of it still runs and return undefined,
   * so that the scheduler runs it again.
   */
  recover(launch: TaskLaunch, handle: string | undefined): Promise<TaskExecution | undefined>;
  /** Stops and removes anything this runner started for this Tessera home whose key is not in `keep`. */
  sweep(keep: ReadonlySet<string>): Promise<number>;
  /** Releases the runner's resources (does not stop tasks). */
  close(): Promise<void>;
}

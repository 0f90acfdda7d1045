import type { RunState, TaskState } from '@tessera/model';

/**
 * Who started a job or a run's latest attempt, as recorded when it started: the rights its
 * tasks act with (see `Starter`). All three are null when no user started it (an arrival
 * trigger, or a run from before starters were recorded).
 */
export interface StarterColumns {
  /** The user's id (`local` with access control off). */
  started_by: string | null;
  /** The user's name then (names never change; kept so that a deleted user's runs still say who). */
  started_by_name: string | null;
  /** Their role in the run's project then: `scientist` or `principal-investigator`. */
  started_role: string | null;
}

/** Tables owned by the workflows domain. Times are milliseconds since the epoch. */
export interface JobsTable extends StarterColumns {
  id: string;
  project_id: string;
  workflow_id: string;
  conf: string;
  created_at: number;
}

/** A run; its starter columns name who started its latest attempt (the job's trigger, or a retry). */
export interface RunsTable extends StarterColumns {
  id: string;
  job_id: string;
  project_id: string;
  workflow_id: string;
  /** The DAG spec as it was when the run was triggered (JSON). */
  spec: string;
  /** conf/conf.json of the run (JSON). */
  conf: string;
  extension_dir: string | null;
  workflow_dir: string;
  state: RunState;
  attempt: number;
  reason: string | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  dir_removed_at: number | null;
}

export interface TasksTable {
  run_id: string;
  task_id: string;
  /** Position in the spec, to list tasks in DAG order. */
  position: number;
  state: TaskState;
  try_number: number;
  /** The run attempt this task last ran in. */
  attempt: number;
  runner: string | null;
  handle: string | null;
  exit_code: number | null;
  reason: string | null;
  oom_killed: number;
  queued_at: number | null;
  started_at: number | null;
  ended_at: number | null;
  next_try_at: number | null;
  /**
   * Tries of this attempt that ran again because the server stopped while the try
   * before ran (crash, kill -9, shutdown); they do not use up a retry.
   */
  restarts: number;
  /** Why the latest such try runs again (kept until a try starts for another reason). */
  rerun_reason: string | null;
}

export interface WorkflowTables {
  jobs: JobsTable;
  runs: RunsTable;
  tasks: TasksTable;
}

export type RunRow = RunsTable;
export type TaskRow = TasksTable;
export type JobRow = JobsTable;

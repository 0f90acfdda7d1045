/** Shapes of the HTTP API's answers that the CLI reads (see /api/openapi.json). */

export interface ProjectJson {
  id: string;
  name: string;
  description: string | null;
  created_at: string;
}

export interface WorkflowJson {
  id: string;
  title: string;
  description: string;
  extension: { name: string; version: string };
  workflow_form: Record<string, unknown>;
  data_form: Record<string, unknown>;
  tasks: { id: string; upstream: string[] }[];
}

export interface TaskJson {
  id: string;
  state: string;
  try_number: number;
  attempt: number;
  runner: string | null;
  exit_code: number | null;
  reason: string | null;
  oom_killed: boolean;
  started_at: string | null;
  ended_at: string | null;
  upstream?: string[];
}

export interface RunJson {
  id: string;
  job_id: string;
  project: string;
  workflow: string;
  state: 'queued' | 'running' | 'success' | 'failed' | 'canceled';
  attempt: number;
  reason: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  workflow_dir: string | null;
  progress: { total: number; done: number; counts: Record<string, number> };
  tasks?: TaskJson[];
}

export interface JobJson {
  id: string;
  project: string;
  workflow: string;
  state: string;
  created_at: string;
  runs: RunJson[];
}

export interface Page<T> {
  items: T[];
  total: number;
}

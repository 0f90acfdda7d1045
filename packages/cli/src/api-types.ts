import type { DagSpec } from '@tessera/model';
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
  /** One run only: its configuration, its DAG spec and its extension's folder. */
  conf?: { workflow_form: Record<string, unknown>; data_form: { identifiers?: string[] } & Record<string, unknown> } & Record<string, unknown>;
  spec?: DagSpec;
  extension_dir?: string | null;
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

/** A series of the metadata index (GET /api/series, /api/datasets/<name>/series). */
export interface SeriesJson {
  series_instance_uid: string;
  study_instance_uid: string;
  project: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  body_part: string | null;
  manufacturer: string | null;
  series_date: string | null;
  patient_id: string | null;
  patient_name: string | null;
  study_date: string | null;
  study_description: string | null;
  instances: number;
  size_bytes: number;
  created_at: string;
  updated_at: string;
  complete: boolean;
  thumbnail: string | null;
  thumbnail_error: string | null;
}

/** One series with its datasets and every attribute, typed (GET /api/series/<uid>). */
export interface SeriesDetailJson extends SeriesJson {
  datasets: string[];
  tags: Record<string, unknown>;
}

/** A page of a listing that says where it starts. */
export interface OffsetPage<T> extends Page<T> {
  limit: number;
  offset: number;
}

export interface FacetJson {
  value: string | null;
  count: number;
}

/** GET /api/series/facets */
export interface FacetsJson {
  modality: FacetJson[];
  body_part: FacetJson[];
  manufacturer: FacetJson[];
}

export interface DatasetJson {
  name: string;
  project: string;
  description: string | null;
  series_count: number;
  created_at: string;
  updated_at: string;
}

/** The outcome of one file of an import (a file of the upload, or an entry of a .zip). */
export interface ImportFileJson {
  file: string;
  status: 'stored' | 'duplicate' | 'replaced' | 'rejected';
  sop_instance_uid?: string;
  series_instance_uid?: string;
  study_instance_uid?: string;
  sop_class_uid?: string;
  error?: { code: string; message: string };
}

/** POST /api/dicom/import (also the body of its 400/413 answer, next to `error`). */
export interface ImportSummaryJson {
  stored: number;
  duplicates: number;
  rejected: number;
  files: ImportFileJson[];
}

/** POST /api/series/delete */
export interface SeriesDeleteJson {
  deleted: number;
  results: { series: string; instances?: number; error?: string }[];
}

/** A file of a project's result bucket (GET /api/results). */
export interface ResultFileJson {
  run_id: string;
  path: string;
  size_bytes: number;
  modified_at: string;
  url: string;
}

// The UI's only way to the server: the documented HTTP API. Every failure becomes an
// ApiError whose message is readable as it stands (code, message, the fields it names).

export interface ErrorDetail {
  where: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  /** The whole JSON body of the error answer (an import's `files`, for example). */
  readonly body: unknown;
  constructor(status: number, code: string, message: string, details: ErrorDetail[] = [], body: unknown = undefined) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.body = body;
  }
  /** Details by field (`workflow_form.threshold` -> message). */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) if (d.where) out[d.where] = d.message;
    return out;
  }
}

/** An error of any kind as one readable sentence. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.code ? `${err.message} (${err.code}, HTTP ${err.status})` : `${err.message} (HTTP ${err.status})`;
  if (err instanceof Error) return err.message;
  return String(err);
}

export async function toApiError(res: Response, what: string): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; details?: ErrorDetail[] } };
    if (body.error?.message) return new ApiError(res.status, body.error.code ?? '', body.error.message, body.error.details ?? [], body);
  } catch {
    // not JSON: fall through
  }
  const snippet = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
  return new ApiError(res.status, '', `${what} failed: ${res.status} ${res.statusText}${snippet ? `: ${snippet}` : ''}`);
}

export type Query = Record<string, string | number | boolean | undefined | null | string[]>;

export function qs(query: Query = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

export async function api<T>(method: string, path: string, body?: unknown, init: RequestInit = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      ...init,
      headers: body === undefined ? init.headers : { 'content-type': 'application/json', ...init.headers },
      body: body === undefined ? init.body : JSON.stringify(body),
    });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', `${method} ${path.split('?')[0]}: the server cannot be reached (${(err as Error).message})`);
  }
  if (!res.ok) throw await toApiError(res, `${method} ${path.split('?')[0]}`);
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

export const get = <T>(path: string, query?: Query, init?: RequestInit) => api<T>('GET', path + qs(query), undefined, init);
export const post = <T>(path: string, body?: unknown, query?: Query) => api<T>('POST', path + qs(query), body ?? {});
export const del = <T>(path: string, body?: unknown, query?: Query) => api<T>('DELETE', path + qs(query), body);

// ------------------------------------------------------------------ shapes (what the UI reads)

export interface Project {
  name: string;
  description?: string | null;
}
export interface Series {
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
  complete: boolean;
  thumbnail: string | null;
  thumbnail_error: string | null;
  created_at: string;
}
export interface Page<T> {
  items: T[];
  total: number;
  limit?: number;
  offset?: number;
}
export interface Facet {
  value: string | null;
  count: number;
}
export interface Facets {
  modality: Facet[];
  body_part: Facet[];
  manufacturer: Facet[];
}
export interface Dataset {
  name: string;
  description: string | null;
  series_count?: number;
  series?: number;
  created_at?: string;
}
export type JsonSchema = {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  minimum?: number;
  maximum?: number;
  pattern?: string;
  format?: string;
  [k: string]: unknown;
};
export interface WorkflowTask {
  id: string;
  title: string;
  operator: string;
  upstream: string[];
  runs_as: string;
}
export interface Workflow {
  id: string;
  title: string;
  description: string;
  extension: { name: string; version: string };
  workflow_form: JsonSchema;
  data_form: JsonSchema;
  tasks: WorkflowTask[];
}
export interface Progress {
  total: number;
  done: number;
  counts: Record<string, number>;
}
export interface Run {
  id: string;
  job_id: string;
  project: string;
  workflow: string;
  state: string;
  attempt: number;
  reason: string | null;
  created_at: string;
  started_at: string | null;
  ended_at: string | null;
  workflow_dir: string | null;
  progress: Progress;
  /** The series the run works on; the UID when it is one (a run of a single_execution job). */
  series_count: number;
  series_uid: string | null;
}
export interface Task {
  id: string;
  state: string;
  try_number: number;
  attempt: number;
  runner: string | null;
  exit_code: number | null;
  reason: string | null;
  started_at: string | null;
  ended_at: string | null;
  log_url: string | null;
  upstream: string[];
}
export interface RunDetail extends Run {
  conf: { workflow_form?: Record<string, unknown>; data_form?: Record<string, unknown> };
  tasks: Task[];
}
export interface Job {
  id: string;
  runs: Run[];
}
export interface ResultFile {
  run_id: string;
  path: string;
  size_bytes: number;
  modified_at?: string;
  url: string;
}
export interface ExtensionParameter {
  type: 'string' | 'boolean' | 'list_single' | 'list_multi';
  options?: string[];
  default?: unknown;
  required?: boolean;
  title?: string;
  description?: string;
}
export interface ExtensionVersion {
  version: string;
  source: string;
  platform: string | null;
  problem: string | null;
  uploaded_at: string | null;
}
export interface Extension {
  name: string;
  kind: 'workflow' | 'application';
  title: string | null;
  description: string | null;
  keywords: string[];
  parameters: Record<string, ExtensionParameter>;
  versions: ExtensionVersion[];
  latest: string | null;
  state: string;
  installed: { version: string; source: string; params: Record<string, unknown>; updated_at: string } | null;
  error: string | null;
  progress: string | null;
  linked: string | null;
  workflows: string[];
}
export interface AppInstance {
  id: string;
  name: string;
  project: string;
  extension: string;
  version: string;
  state: string;
  reason: string | null;
  runner: string;
  params: Record<string, unknown>;
  url: string;
  created_at: string;
  started_at: string | null;
  task: { run: string; task: string; completed_at: string | null } | null;
}
export interface ImportFile {
  file: string;
  status: 'stored' | 'replaced' | 'duplicate' | 'rejected';
  sop_instance_uid?: string;
  series_instance_uid?: string;
  error?: { code: string; message: string };
}
export interface ImportResult {
  project: string;
  dataset: string;
  stored: number;
  duplicates: number;
  rejected: number;
  files: ImportFile[];
}

/**
 * The facts of the operator contract that more than one package needs (the engine
 * that runs tasks, the application runtime that launches apps with a run's data, the
 * SDK that names the platform operators). See docs/guides/operator-contract.md.
 */

/** Where a container sees the workflow dirs, so that Kaapana processing containers run unchanged. */
export const CONTAINER_DATA_ROOT = '/kaapana/mounted/data';

/** The folder of per-series batch elements inside a workflow dir (`BATCH_NAME`). */
export const BATCH_NAME = 'batch';

/** The environment variables the contract gives every task, by name. */
export const CONTRACT_ENV = {
  workflowDir: 'WORKFLOW_DIR',
  batchName: 'BATCH_NAME',
  operatorInDir: 'OPERATOR_IN_DIR',
  operatorOutDir: 'OPERATOR_OUT_DIR',
  batchesInputDir: 'BATCHES_INPUT_DIR',
  runId: 'RUN_ID',
  dagId: 'DAG_ID',
  taskId: 'TASK_ID',
  operatorLevel: 'OPERATOR_LEVEL',
} as const;

/** The names of the contract's variables, which a workflow_form key may not set. */
export const CONTRACT_ENV_NAMES: readonly string[] = Object.values(CONTRACT_ENV);

/**
 * The operators the platform itself provides (`builtin:` in a DAG spec), by name:
 * `empty` is a join point; the data operators move DICOM in and out of the store;
 * `launch-app` waits for a person at an application.
 */
export const PLATFORM_OPERATORS = {
  empty: 'empty',
  getInput: 'get-input',
  putResult: 'put-result',
  putFiles: 'put-files',
  launchApp: 'launch-app',
} as const;

export type PlatformOperatorName = (typeof PLATFORM_OPERATORS)[keyof typeof PLATFORM_OPERATORS];

/** `conf.data_form` of a run, in Kaapana's shape: which series it works on. */
export interface DataForm {
  dataset_name?: string;
  dataset_limit?: number;
  /** SeriesInstanceUIDs, resolved from the dataset when the run starts. */
  identifiers?: string[];
  [key: string]: unknown;
}

/**
 * The series UIDs a data_form names directly (`identifiers`), as given; an empty list
 * when it names none or `identifiers` is not a list of strings. Datasets are resolved
 * by the DICOM domain, which knows them.
 */
export function seriesIdsOf(dataForm: unknown): string[] {
  const ids = (dataForm as { identifiers?: unknown } | null | undefined)?.identifiers;
  return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === 'string') : [];
}

/** The reason of a run of a workflow that needs data, started without series (it begins with "no series selected"). */
export function noSeriesReason(workflowId: string): string {
  return `no series selected: workflow "${workflowId}" needs data (choose a dataset or series)`;
}

/**
 * Whether runs of a workflow need series: `needs_data` when the spec says, else true
 * when one of its first tasks (no upstream) is the built-in get-input, which reads them.
 */
export function workflowNeedsData(spec: { needs_data?: boolean; tasks: readonly { upstream?: readonly string[]; builtin?: string }[] }): boolean {
  if (spec.needs_data !== undefined) return spec.needs_data;
  return spec.tasks.some((t) => (t.upstream ?? []).length === 0 && t.builtin === PLATFORM_OPERATORS.getInput);
}

/** Where a container sees its project's models dir (Kaapana mounts its models volume there). */
export const CONTAINER_MODELS_DIR = '/models';

/**
 * Variables the platform gives every task besides the contract's, for containers written
 * for Kaapana (docs/guides/operator-contract.md, "Kaapana's variables"): a workflow_form
 * key may not set them either.
 */
export const PLATFORM_ENV = {
  modelsDir: 'MODELS_DIR',
  cudaVisibleDevices: 'CUDA_VISIBLE_DEVICES',
  backendUrl: 'KAAPANA_BACKEND_URL',
  dicomWebFilterUrl: 'KAAPANA_DICOM_WEB_FILTER_URL',
  legacyDicomWebFilterUrl: 'DICOM_WEB_FILTER_URL',
  projectIdentifier: 'KAAPANA_PROJECT_IDENTIFIER',
} as const;

/**
 * The variables of Kaapana's processing containers that have an equivalent here, for a
 * task that reaches the platform at `apiUrl`, in `project`: the backend is Tessera's API,
 * the DICOMweb filter the project's DICOMweb root, the project identifier its id. No GPU is ever assigned
 * to a task, so `CUDA_VISIBLE_DEVICES` is empty (as Kaapana sets it without a GPU).
 */
export function kaapanaEnv(apiUrl: string | undefined, project: { id: string; name: string }): Record<string, string> {
  const env: Record<string, string> = {
    [PLATFORM_ENV.cudaVisibleDevices]: '',
    [PLATFORM_ENV.projectIdentifier]: project.id,
  };
  if (apiUrl) {
    const base = apiUrl.replace(/\/+$/, '');
    const dicomWeb = `${base}/projects/${encodeURIComponent(project.name)}/dicom-web`;
    env[PLATFORM_ENV.backendUrl] = base;
    env[PLATFORM_ENV.dicomWebFilterUrl] = dicomWeb;
    env[PLATFORM_ENV.legacyDicomWebFilterUrl] = dicomWeb;
  }
  return env;
}

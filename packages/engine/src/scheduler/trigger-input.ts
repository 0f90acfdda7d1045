import { CONTRACT_ENV_NAMES, DICOM_UID_RULE, PLATFORM_ENV, TesseraError, isDicomUid, validateForm, type DagSpec } from '@tessera/model';
import type { RunConf } from '../operator-contract.ts';
import type { JobRow, RunRow, StarterColumns, TaskRow } from '../store/workflow-tables.ts';
import { newId } from './ids.ts';

/** A workflow as the scheduler receives it: the validated spec and the folder it came from. */
export interface WorkflowSource {
  spec: DagSpec;
  extensionDir?: string;
}

export interface DataResolverInput {
  project: { id: string; name: string };
  dataForm: Record<string, unknown>;
}

/**
 * Who starts a job, or retries a run: its tasks act with this user's rights in the run's
 * project, never more than `role` (the platform gives them a token scoped so, and checks
 * it before built-in operators act on data).
 */
export interface Starter {
  userId: string;
  name: string;
  /** Their role in the project when they started it (`scientist`, `principal-investigator`). */
  role: string;
}

/** The starter columns of a job's or a run's row; all null when no user started it (an arrival trigger). */
export function starterColumns(starter: Starter | undefined): StarterColumns {
  return { started_by: starter?.userId ?? null, started_by_name: starter?.name ?? null, started_role: starter?.role ?? null };
}

export interface TriggerInput {
  project: { id: string; name: string };
  workflow: WorkflowSource;
  conf?: { workflow_form?: unknown; data_form?: unknown; task_form?: unknown };
  /** Who triggers it; undefined when no user does (an arrival trigger: its tasks act as a scientist of the project). */
  startedBy?: Starter;
}

/** A trigger's forms, validated against the workflow's schemas, defaults filled. */
export interface TriggerForms {
  workflowForm: Record<string, unknown>;
  dataForm: Record<string, unknown>;
  /** `workflow_form.single_execution`: one run per series. */
  single: boolean;
  /** Kaapana's conf.task_form, as its code reads it: `<task id>: { env: [{name, value}] }`; absent when none is given or declared. */
  taskForm?: Record<string, { env: { name: string; value: string }[] }>;
}

/**
 * Validates both forms of a trigger. `single_execution` is a platform key (Kaapana's),
 * not a parameter of the workflow; every other workflow_form key must be safe as an
 * environment variable name. Throws TESSERA_INVALID_FORM naming each field at fault.
 */
export function validateTriggerForms(spec: DagSpec, conf: TriggerInput['conf']): TriggerForms {
  const rawForm = (conf?.workflow_form ?? {}) as Record<string, unknown>;
  if (typeof rawForm !== 'object' || rawForm === null || Array.isArray(rawForm)) {
    throw new TesseraError('TESSERA_INVALID_FORM', 'conf.workflow_form must be a JSON object', {
      details: [{ where: 'workflow_form', message: 'must be an object' }],
    });
  }
  const { single_execution: singleRaw, ...params } = rawForm;
  if (singleRaw !== undefined && typeof singleRaw !== 'boolean') {
    throw new TesseraError('TESSERA_INVALID_FORM', 'workflow_form.single_execution must be true or false', {
      details: [{ where: 'workflow_form.single_execution', message: 'must be a boolean' }],
    });
  }
  const workflowForm = validateForm(spec, 'workflow_form', params);
  const badKeys = Object.keys(workflowForm).flatMap((key) => {
    const why = unsafeEnvName(key);
    return why ? [{ where: `workflow_form.${key}`, message: why }] : [];
  });
  if (badKeys.length > 0) {
    throw new TesseraError('TESSERA_INVALID_FORM', `invalid workflow_form: ${badKeys.map((d) => `${d.where} ${d.message}`).join('; ')}`, { details: badKeys });
  }
  // Always written, as Kaapana's conf.json has it (and so SINGLE_EXECUTION in every task's env).
  workflowForm.single_execution = singleRaw === true;
  const dataForm = validateForm(spec, 'data_form', conf?.data_form ?? {});
  const taskForm = validateTaskForm(spec, conf?.task_form);
  return { workflowForm, dataForm, single: singleRaw === true, ...(taskForm ? { taskForm } : {}) };
}

/**
 * Validates conf.task_form against the workflow's task_form schema (the adjustable env of
 * its Task API tasks), defaults filled. Takes both of Kaapana's shapes per task: its code's
 * `{ env: [{name, value}] }` and its docs' `{ VAR: value }`; answers the code's, values as strings.
 */
export function validateTaskForm(spec: DagSpec, raw: unknown): TriggerForms['taskForm'] {
  if (!spec.task_form && raw === undefined) return undefined;
  const given = (raw ?? {}) as Record<string, unknown>;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new TesseraError('TESSERA_INVALID_FORM', 'conf.task_form must be a JSON object', { details: [{ where: 'task_form', message: 'must be an object' }] });
  }
  const flat: Record<string, Record<string, unknown>> = {};
  for (const [taskId, value] of Object.entries(given)) {
    const v = value as { env?: unknown } | null;
    if (v && typeof v === 'object' && Array.isArray(v.env)) {
      const vars: Record<string, unknown> = {};
      const properties = ((spec.task_form?.properties as Record<string, { properties?: Record<string, { type?: string }> }> | undefined)?.[taskId]?.properties) ?? {};
      v.env.forEach((e: unknown, i) => {
        const entry = e as { name?: unknown; value?: unknown } | null;
        if (!entry || typeof entry.name !== 'string' || typeof entry.value !== 'string') {
          throw new TesseraError('TESSERA_INVALID_FORM', `task_form.${taskId}.env[${i}] must be {"name": "<VAR>", "value": "<text>"}`, {
            details: [{ where: `task_form.${taskId}.env[${i}]`, message: 'must be {"name", "value"} with text values' }],
          });
        }
        const type = properties[entry.name]?.type;
        vars[entry.name] = type === 'integer' && /^[-+]?\d+$/.test(entry.value) ? Number(entry.value) : type === 'boolean' && /^(true|false)$/i.test(entry.value) ? /^true$/i.test(entry.value) : entry.value;
      });
      flat[taskId] = vars;
    } else {
      flat[taskId] = value as Record<string, unknown>;
    }
  }
  const valid = validateForm(spec, 'task_form', flat) as Record<string, Record<string, unknown>>;
  const out: NonNullable<TriggerForms['taskForm']> = {};
  for (const [taskId, vars] of Object.entries(valid)) {
    if (!vars || typeof vars !== 'object') continue;
    out[taskId] = { env: Object.entries(vars).map(([name, value]) => ({ name, value: typeof value === 'string' ? value : String(value) })) };
  }
  return out;
}

/**
 * Checks the series a trigger resolved to: identifiers become directory names
 * (batch/<uid>), so only DICOM UIDs get there; single_execution needs at least one.
 */
export function checkSeries(identifiers: readonly unknown[], single: boolean): void {
  const badIds = identifiers.flatMap((uid, i) =>
    isDicomUid(uid) ? [] : [{ where: `data_form.identifiers[${i}]`, message: `"${String(uid).slice(0, 80)}" is not a DICOM UID (${DICOM_UID_RULE})` }],
  );
  if (badIds.length > 0) {
    throw new TesseraError('TESSERA_INVALID_FORM', `invalid series identifiers: ${badIds.map((d) => `${d.where} ${d.message}`).join('; ')}`, { details: badIds });
  }
  if (single && identifiers.length === 0) {
    throw new TesseraError('TESSERA_INVALID_FORM', 'single_execution needs series to fan out over, but data_form selects none', {
      details: [{ where: 'data_form', message: 'selects no series' }],
    });
  }
}

/**
 * The series of a data_form when no resolver is configured: `identifiers` as given
 * (each entry checked by checkSeries, so a non-string is reported, not dropped),
 * without duplicates, up to `dataset_limit`. Datasets are unknown here.
 */
export function identifiersAsGiven(input: DataResolverInput): string[] {
  if (typeof input.dataForm.dataset_name === 'string') {
    throw new TesseraError('TESSERA_NOT_FOUND', `dataset "${input.dataForm.dataset_name}" does not exist in project "${input.project.name}"`);
  }
  const ids = Array.isArray(input.dataForm.identifiers) ? (input.dataForm.identifiers as string[]) : [];
  const limit = typeof input.dataForm.dataset_limit === 'number' ? input.dataForm.dataset_limit : undefined;
  return [...new Set(ids)].slice(0, limit);
}

/** The rows a trigger inserts: the job, its runs (one, or one per series) and their tasks, all `queued`/`scheduled`. */
export function planJob(input: {
  project: { id: string; name: string };
  workflow: WorkflowSource;
  forms: TriggerForms;
  identifiers: string[];
  workflowDir: (runId: string) => string;
  now: number;
  startedBy?: Starter;
}): { job: JobRow; runs: RunRow[]; tasks: TaskRow[] } {
  const { spec } = input.workflow;
  const { workflowForm, dataForm, single, taskForm } = input.forms;
  const starter = starterColumns(input.startedBy);
  const job: JobRow = {
    id: newId('j'),
    project_id: input.project.id,
    workflow_id: spec.id,
    conf: JSON.stringify({ workflow_form: workflowForm, data_form: dataForm, ...(taskForm ? { task_form: taskForm } : {}) }),
    created_at: input.now,
    ...starter,
  };
  const groups = single ? input.identifiers.map((uid) => [uid]) : [input.identifiers];
  const runs: RunRow[] = [];
  const tasks: TaskRow[] = [];
  const specText = JSON.stringify(spec);
  for (const ids of groups) {
    const id = newId('r');
    const conf: RunConf = {
      workflow_form: workflowForm,
      data_form: { ...dataForm, identifiers: ids },
      project_form: { id: input.project.id, name: input.project.name },
      ...(taskForm ? { task_form: taskForm } : {}),
    };
    runs.push({
      id,
      job_id: job.id,
      project_id: input.project.id,
      workflow_id: spec.id,
      spec: specText,
      conf: JSON.stringify(conf),
      extension_dir: input.workflow.extensionDir ?? null,
      workflow_dir: input.workflowDir(id),
      state: 'queued',
      attempt: 1,
      reason: null,
      created_at: input.now,
      started_at: null,
      ended_at: null,
      dir_removed_at: null,
      ...starter,
    });
    spec.tasks.forEach((t, position) => tasks.push(newTaskRow(id, t.id, position)));
  }
  return { job, runs, tasks };
}

function newTaskRow(runId: string, taskId: string, position: number): TaskRow {
  return {
    run_id: runId,
    task_id: taskId,
    position,
    state: 'scheduled',
    try_number: 0,
    attempt: 1,
    runner: null,
    handle: null,
    exit_code: null,
    reason: null,
    oom_killed: 0,
    queued_at: null,
    started_at: null,
    ended_at: null,
    next_try_at: null,
    restarts: 0,
    rerun_reason: null,
  };
}

/**
 * Every workflow_form key becomes an environment variable of the tasks (Kaapana's
 * contract), so a key must not be able to change how programs run: PATH, LD_PRELOAD,
 * NODE_OPTIONS and the like, or the platform's own variables (the contract's among them).
 */
const RESERVED_ENV = new RegExp(
  `^(PATH|HOME|SHELL|ENV|BASH_ENV|IFS|CDPATH|PS4|LD_.*|DYLD_.*|NODE_.*|NPM_.*|PYTHON.*|PERL.*|RUBY.*|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|TESSERA_.*|OPERATOR_.*|EXTENSION_DIR|KAAPANA_.*|${[...CONTRACT_ENV_NAMES, ...Object.values(PLATFORM_ENV)].join('|')})$`,
);

/** Why a workflow_form key cannot become an environment variable of the tasks, or undefined when it can. */
export function unsafeEnvName(key: string): string | undefined {
  const name = key.toUpperCase();
  if (!/^[A-Z_][A-Z0-9_]*$/.test(name)) return 'must be a name of letters, digits and "_" (it becomes an environment variable of the tasks)';
  if (RESERVED_ENV.test(name)) return `would set the environment variable ${name} of the tasks, which is reserved; rename the parameter`;
  return undefined;
}

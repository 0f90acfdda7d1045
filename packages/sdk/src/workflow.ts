import {
  DAG_SPEC_VERSION,
  expandTaskTemplate,
  validateDagSpec,
  workflowNeedsData,
  type DagSpec,
  type TaskSpec,
  type TriggerRule,
} from '@tessera/model';
import type { TaskApiBinding } from './task-operator.ts';

/** Resource requests of an operator. Unset means "no request" (0). */
export interface OperatorResources {
  /** RAM in MB; becomes the memory limit of a container. Counted against the RAM pool. */
  ramMb?: number;
  /** CPU in millicores (1000 = one core). */
  cpuMillicores?: number;
  /** GPU memory in MB. Counted against the GPU pool. */
  gpuMemMb?: number;
}

/** Everything that defines an operator, independent of where it sits in a DAG. */
export interface OperatorDefinition {
  /** Operator name; the task id is `name` or `name-parallelId`. */
  name: string;
  title?: string;
  /** Run as a container (Docker engine, Kubernetes). */
  container?: {
    /** A local image name, or a registry reference: `registry.example.org:5000/ns/name:tag`, `name@sha256:<digest>`. */
    image: string;
    command?: string[];
    args?: string[];
    /** When the engine pulls the image (Kubernetes' imagePullPolicy); default the manifest's `image_pull_policy`, else IfNotPresent. */
    imagePullPolicy?: 'IfNotPresent' | 'Always' | 'Never';
  };
  /** Run as a local process, with the extension folder as working directory. Used when no container runner is there. */
  process?: { command: string[]; files?: string[] };
  /** A built-in platform operator, by name. */
  builtin?: string;
  builtinParams?: Record<string, unknown>;
  env?: Record<string, string>;
  /** `batch_element` (default): one output dir per series under batch/<series>/; `batch`: one for the run. */
  level?: 'batch_element' | 'batch';
  /** Output directory name (OPERATOR_OUT_DIR); defaults to the task id. */
  outputDir?: string;
  /**
   * Keep what an earlier try left in the output dirs. By default (false) the task's own
   * output dirs are emptied before each try, so that a retry never sees the files of the
   * try that failed (Kaapana's `delete_output_on_start`). Set it for an operator that
   * resumes from its own earlier output (a checkpoint), or that shares its output dir with
   * another task.
   */
  keepOutputs?: boolean;
  retries?: number;
  /** Seconds before the first retry. */
  retryDelay?: number;
  retryBackoff?: 'fixed' | 'exponential';
  /** Upper bound of the retry delay in seconds (with exponential backoff). */
  maxRetryDelay?: number;
  /** Execution timeout in seconds. */
  timeout?: number;
  resources?: OperatorResources;
}

export interface Operator {
  readonly kind: 'tessera.operator';
  readonly definition: Readonly<OperatorDefinition>;
  /** Set by defineTaskOperator: a Kaapana Task API template and its env. */
  readonly taskApi?: Readonly<TaskApiBinding>;
}

/** Defines a reusable operator. */
export function defineOperator(definition: OperatorDefinition): Operator {
  return { kind: 'tessera.operator', definition: { ...definition } };
}

/** A task placed in a workflow; pass it as an upstream or input of other tasks. */
export interface TaskRef {
  readonly id: string;
  readonly outputDir: string;
  /** Task API tasks: each output channel's folder, relative to the workflow dir (`<task id>/<channel>`). */
  readonly channels?: Readonly<Record<string, string>>;
  /** Task API tasks whose template the platform reads from the image later: any channel name is taken now, and checked then. */
  readonly channelsPending?: boolean;
}

/** Feeds an input channel of a Task API task from an output channel of an upstream one (Kaapana's IOMapping). */
export interface IOChannelMap {
  /** The upstream task (Kaapana's `upstream_operator`). */
  from: TaskRef;
  /** Its output channel (`upstream_output_channel`). */
  output: string;
  /** This task's input channel (`input_channel`). */
  input: string;
}

export interface TaskOptions {
  /** Lets one operator appear several times in a DAG; the task id becomes `name-parallelId`. */
  parallelId?: string;
  /** Tasks this one waits for. */
  upstream?: TaskRef[];
  /** Sets OPERATOR_IN_DIR to that task's output dir, and makes it an upstream. */
  input?: TaskRef;
  /** Input dir name when it is not produced by a task of this DAG (e.g. files placed by a data operator). */
  inputDir?: string;
  triggerRule?: TriggerRule;
  /** Overrides and additions to the operator's env. */
  env?: Record<string, string>;
  /** Overrides of the operator's settings for this task. */
  overrides?: Partial<Omit<OperatorDefinition, 'name'>>;
  /** Task API tasks: where each input channel comes from; makes those tasks upstreams. */
  iochannels?: IOChannelMap[];
}

export interface WorkflowOptions {
  id: string;
  title?: string;
  description?: string;
  /** JSON Schema of the workflow's parameters (the UI form, conf.workflow_form). */
  workflowForm?: Record<string, unknown>;
  /** JSON Schema of which data the workflow runs on (conf.data_form). */
  dataForm?: Record<string, unknown>;
  /** Remove the workflow dir when a run succeeds. */
  cleanWorkflowDir?: boolean;
  /**
   * Whether a run needs series: one started without any fails with the reason "no series
   * selected" instead of running. Default: true when one of the first tasks (those without
   * upstream) is `getInput()`, false otherwise (hello-world runs without data). Set it for
   * a workflow that works on the selected series without get-input (delete-series does).
   */
  needsData?: boolean;
}

/** The default data form: a dataset name or a list of series UIDs, as in Kaapana. */
export const DEFAULT_DATA_FORM: Record<string, unknown> = {
  type: 'object',
  properties: {
    dataset_name: { type: 'string', title: 'Dataset' },
    dataset_limit: { type: 'integer', minimum: 1, title: 'At most this many series' },
    identifiers: {
      type: 'array',
      items: { type: 'string', pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64 },
      title: 'Series Instance UIDs',
    },
  },
  additionalProperties: false,
};

const EMPTY_FORM: Record<string, unknown> = { type: 'object', properties: {}, additionalProperties: false };

/** A workflow under construction. `toDagSpec()` compiles and validates it. */
export class Workflow {
  readonly kind = 'tessera.workflow';
  readonly options: WorkflowOptions;
  readonly #tasks: TaskSpec[] = [];
  readonly #taskForms: Record<string, unknown> = {};

  constructor(options: WorkflowOptions) {
    this.options = options;
  }

  /** Places an operator in the DAG and returns a reference to the new task. */
  task(operator: Operator, options: TaskOptions = {}): TaskRef {
    const d = { ...operator.definition, ...options.overrides };
    const id = options.parallelId ? `${d.name}-${options.parallelId}` : d.name;
    const upstream = [...(options.upstream ?? []).map((t) => t.id)];
    if (options.input && !upstream.includes(options.input.id)) upstream.push(options.input.id);
    const outputDir = d.outputDir ?? id;
    const spec: TaskSpec = {
      id,
      operator: d.name,
      ...(options.parallelId ? { parallel_id: options.parallelId } : {}),
      ...(d.title ? { title: d.title } : {}),
      upstream,
      trigger_rule: options.triggerRule ?? 'all_success',
      level: d.level ?? 'batch_element',
      ...(options.input ? { input_dir: options.input.outputDir } : options.inputDir ? { input_dir: options.inputDir } : {}),
      output_dir: outputDir,
      ...(d.keepOutputs ? { keep_outputs: true } : {}),
      ...(d.container ? { container: containerSpec(d.container) } : {}),
      ...(d.process ? { process: { ...d.process } } : {}),
      ...(d.builtin ? { builtin: d.builtin } : {}),
      ...(d.builtinParams ? { builtin_params: { ...d.builtinParams } } : {}),
      env: { ...d.env, ...options.env },
      retries: d.retries ?? 0,
      retry_delay_s: d.retryDelay ?? 0,
      retry_backoff: d.retryBackoff ?? 'fixed',
      ...(d.maxRetryDelay !== undefined ? { max_retry_delay_s: d.maxRetryDelay } : {}),
      ...(d.timeout !== undefined ? { timeout_s: d.timeout } : {}),
      resources: {
        ...(d.resources?.ramMb !== undefined ? { ram_mb: d.resources.ramMb } : {}),
        ...(d.resources?.cpuMillicores !== undefined ? { cpu_millicores: d.resources.cpuMillicores } : {}),
        ...(d.resources?.gpuMemMb !== undefined ? { gpu_mem_mb: d.resources.gpuMemMb } : {}),
      },
    };
    if (operator.taskApi) return this.#bindTaskApi(spec, operator.taskApi, options);
    if (options.iochannels?.length) throw new Error(`task "${id}": iochannels are for Task API operators (defineTaskOperator)`);
    this.#tasks.push(spec);
    return { id, outputDir };
  }

  /**
   * A Task API task: names its template and input channels (`container.task_template`),
   * and expands it (mounts, env, args, resources, form fields) when the template is known
   * here; otherwise the platform expands it with the same function at install.
   */
  #bindTaskApi(spec: TaskSpec, api: Readonly<TaskApiBinding>, options: TaskOptions): TaskRef {
    for (const map of options.iochannels ?? []) {
      if (!spec.upstream.includes(map.from.id)) spec.upstream.push(map.from.id);
    }
    spec.container = {
      ...spec.container!,
      task_template: {
        identifier: api.identifier,
        ...(options.iochannels?.length ? { iochannels: options.iochannels.map((m) => ({ input: m.input, from: m.from.id, output: m.output })) } : {}),
      },
    };
    const refs = new Map((options.iochannels ?? []).map((m) => [m.from.id, m.from]));
    const upstream = (id: string): readonly string[] | 'pending' | undefined => {
      const ref = refs.get(id);
      return ref?.channelsPending ? 'pending' : ref?.channels ? Object.keys(ref.channels) : undefined;
    };
    if (!api.template) {
      // Checked now as far as they can be: the upstream's channels, when it is expanded.
      for (const map of options.iochannels ?? []) {
        const known = upstream(map.from.id);
        if (known !== 'pending' && !known?.includes(map.output)) {
          throw new Error(`task "${spec.id}" (template "${api.identifier}"): upstream task "${map.from.id}" has no output channel "${map.output}"${known?.length ? ` (it has ${known.join(', ')})` : ' (it is not a Task API task)'}`);
        }
      }
      this.#tasks.push(spec);
      return { id: spec.id, outputDir: spec.output_dir, channelsPending: true };
    }
    const { task, form } = expandTaskTemplate(spec, api.template, upstream);
    if (form) this.#taskForms[task.id] = form;
    this.#tasks.push(task);
    return { id: task.id, outputDir: task.output_dir, channels: Object.fromEntries(api.template.outputs.map((o) => [o.name, `${task.id}/${o.name}`])) };
  }

  /** Compiles to the DAG spec the engine runs; throws TESSERA_INVALID_SPEC naming the task at fault. */
  toDagSpec(): DagSpec {
    return validateDagSpec({
      spec_version: DAG_SPEC_VERSION,
      id: this.options.id,
      ...(this.options.title ? { title: this.options.title } : {}),
      ...(this.options.description ? { description: this.options.description } : {}),
      workflow_form: this.options.workflowForm ?? EMPTY_FORM,
      data_form: this.options.dataForm ?? DEFAULT_DATA_FORM,
      // Written out, so that the spec says what the platform does.
      needs_data: this.options.needsData ?? workflowNeedsData({ tasks: this.#tasks }),
      ...(Object.keys(this.#taskForms).length > 0
        ? { task_form: { type: 'object', properties: structuredClone(this.#taskForms), additionalProperties: false } }
        : {}),
      clean_workflow_dir: this.options.cleanWorkflowDir ?? false,
      tasks: this.#tasks,
    });
  }
}

/** Starts a workflow definition. */
export function defineWorkflow(options: WorkflowOptions): Workflow {
  return new Workflow(options);
}

function containerSpec(c: NonNullable<OperatorDefinition['container']>): NonNullable<TaskSpec['container']> {
  const { imagePullPolicy, ...rest } = c;
  return { ...rest, ...(imagePullPolicy ? { image_pull_policy: imagePullPolicy } : {}) };
}

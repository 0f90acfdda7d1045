import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { TesseraError, type ErrorDetail } from './errors.ts';
import { ajvErrorsToDetails, createAjv } from './json-validator.ts';

/**
 * Kaapana's Task API (0.6): the `processing-container.json` at the root of a processing
 * container's image, which declares its task templates (channels mounted at fixed paths,
 * adjustable env, resources), and the `task.json` that runs one template on host folders.
 *
 * The schemas accept what Kaapana's models accept (unknown keys are ignored, as there) and
 * the fields its developer guide documents beyond them: env `type` and `adjustable`, scale
 * rule `complexity`, and a task channel's `input.host_path` besides `volume_source.host_path`.
 */
export const TASK_API_VERSION = 1;

const Optional = <T extends TSchema>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

export const TaskEnvTypes = ['string', 'int', 'boolean'] as const;

export const TemplateEnvSchema = Type.Object({
  name: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'Environment variable name.' }),
  value: Type.String({ description: 'Default value (always a string, as in Kaapana).' }),
  choices: Optional(Type.Array(Type.String())),
  description: Optional(Type.String()),
  type: Optional(Type.Unsafe<(typeof TaskEnvTypes)[number]>({ type: 'string', enum: [...TaskEnvTypes] })),
  adjustable: Optional(Type.Boolean({ description: 'Whether users may set it when they start a run (a form field).' })),
});

export const ScaleRuleSchema = Type.Object({
  scale_factor: Type.Optional(Type.Integer({ description: 'Memory in bytes = scale_factor × the target size.' })),
  complexity: Type.Optional(Type.String({ pattern: '^[-+]?\\d*(\\.\\d+)?\\*?n(\\*\\*\\d+)?$', description: 'The docs\' form, e.g. "10*n" or "n**2".' })),
  type: Type.Unsafe<'limit' | 'request'>({ type: 'string', enum: ['limit', 'request'] }),
  mode: Type.Unsafe<'sum' | 'max_file_size' | 'max_item_sum'>({ type: 'string', enum: ['sum', 'max_file_size', 'max_item_sum'] }),
  target_dir: Optional(Type.String()),
  target_regex: Optional(Type.String()),
  target_glob: Optional(Type.String()),
});

export const TaskResourcesSchema = Type.Object({
  limits: Optional(Type.Record(Type.String(), Type.Unknown())),
  requests: Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const IOMountSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  mounted_path: Type.String({ pattern: '^/', description: 'Absolute path in the container.' }),
  description: Optional(Type.String()),
  scale_rule: Optional(ScaleRuleSchema),
});

export const TaskTemplateSchema = Type.Object({
  identifier: Type.String({ minLength: 1 }),
  description: Type.String(),
  inputs: Type.Array(IOMountSchema),
  outputs: Type.Array(IOMountSchema),
  env: Type.Array(TemplateEnvSchema),
  command: Optional(Type.Array(Type.String())),
  resources: Optional(TaskResourcesSchema),
});

export const ProcessingContainerSchema = Type.Object({
  name: Type.String(),
  description: Type.String(),
  api_version: Type.Optional(Type.Literal(TASK_API_VERSION)),
  templates: Type.Array(TaskTemplateSchema),
});

const HostPath = Type.Object({ host_path: Type.String({ minLength: 1 }) });

export const TaskChannelSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  volume_source: Type.Optional(HostPath),
  /** The developer guide's form of `volume_source`. */
  input: Type.Optional(HostPath),
  scale_rule: Optional(ScaleRuleSchema),
});

export const TaskEnvSchema = Type.Object({ name: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), value: Type.String() });

export const TaskFileSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  image: Type.String({ minLength: 1 }),
  api_version: Type.Optional(Type.Literal(TASK_API_VERSION)),
  taskTemplate: Type.Union([Type.String({ minLength: 1 }), TaskTemplateSchema]),
  command: Optional(Type.Array(Type.String())),
  resources: Optional(TaskResourcesSchema),
  config: Optional(Type.Object({ type: Type.Optional(Type.String()), labels: Optional(Type.Record(Type.String(), Type.String())) })),
  inputs: Type.Optional(Type.Array(TaskChannelSchema)),
  outputs: Type.Optional(Type.Array(TaskChannelSchema)),
  env: Optional(Type.Array(TaskEnvSchema)),
});

export type TemplateEnv = Static<typeof TemplateEnvSchema>;
export type ScaleRule = Static<typeof ScaleRuleSchema>;
export type IOMount = Static<typeof IOMountSchema>;
export type TaskTemplate = Static<typeof TaskTemplateSchema>;
export type ProcessingContainer = Static<typeof ProcessingContainerSchema>;
export type TaskChannel = Static<typeof TaskChannelSchema>;
export type TaskFile = Static<typeof TaskFileSchema>;
export type TaskEnv = Static<typeof TaskEnvSchema>;

const ajv = createAjv();
const validatePc = ajv.compile(ProcessingContainerSchema);
const validateTask = ajv.compile(TaskFileSchema);

/**
 * Renders Kaapana's template variables: `{{ env.NAME }}` from `env`, `{{ custom.NAME }}`
 * from `custom`; unknown names render empty, as Jinja does.
 */
export function renderTaskVars(text: string, env: Record<string, string | undefined> = {}, custom: Record<string, string> = {}): string {
  return text.replace(/\{\{\s*(env|custom)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_m, scope: string, name: string) =>
    (scope === 'env' ? env[name] : custom[name]) ?? '');
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new TesseraError('TESSERA_INVALID_SPEC', `${what} is not valid JSON: ${(err as Error).message}`, { details: [{ where: what, message: 'is not valid JSON' }] });
  }
}

function fail(what: string, kind: string, details: ErrorDetail[]): never {
  throw new TesseraError('TESSERA_INVALID_SPEC', `${what} is not a valid ${kind}: ${details.map((d) => `${d.where} ${d.message}`).join('; ')}`, { details });
}

function scaleRuleProblems(rule: ScaleRule | null | undefined, where: string): ErrorDetail[] {
  if (!rule) return [];
  const out: ErrorDetail[] = [];
  if (rule.scale_factor === undefined && rule.complexity === undefined) out.push({ where: `${where}.scale_rule`, message: 'needs "scale_factor" (or the docs\' "complexity")' });
  if (rule.target_regex) {
    try {
      new RegExp(rule.target_regex);
    } catch {
      out.push({ where: `${where}.scale_rule.target_regex`, message: 'is not a valid regular expression' });
    }
  }
  return out;
}

function templateProblems(t: TaskTemplate, where: string): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  for (const side of ['inputs', 'outputs'] as const) {
    const names = new Set<string>();
    t[side].forEach((c, i) => {
      const w = `${where}.${side}[${i}]`;
      if (names.has(c.name)) out.push({ where: `${w}.name`, message: `duplicate channel "${c.name}"` });
      names.add(c.name);
      out.push(...scaleRuleProblems(c.scale_rule, w));
    });
  }
  t.env.forEach((e, i) => {
    if (e.choices && e.choices.length > 0 && !e.choices.includes(e.value)) {
      out.push({ where: `${where}.env[${i}].value`, message: `"${e.value}" is not one of its choices (${e.choices.join(', ')})` });
    }
    if (e.type === 'int' && !/^[-+]?\d+$/.test(e.value)) out.push({ where: `${where}.env[${i}].value`, message: `"${e.value}" is not an int (type "int")` });
    if (e.type === 'boolean' && !/^(true|false)$/i.test(e.value)) out.push({ where: `${where}.env[${i}].value`, message: `"${e.value}" is not true or false (type "boolean")` });
  });
  return out;
}

/** Validates a parsed processing-container.json; throws TESSERA_INVALID_SPEC naming each path at fault. */
export function validateProcessingContainer(value: unknown, what = 'processing-container.json'): ProcessingContainer {
  if (!validatePc(value)) fail(what, 'processing-container.json', ajvErrorsToDetails(validatePc.errors, ''));
  const pc = value as ProcessingContainer;
  const details: ErrorDetail[] = [];
  const ids = new Set<string>();
  pc.templates.forEach((t, i) => {
    const where = `templates[${i}] (identifier "${t.identifier}")`;
    if (ids.has(t.identifier)) details.push({ where: `${where}.identifier`, message: `duplicate template identifier "${t.identifier}"` });
    ids.add(t.identifier);
    details.push(...templateProblems(t, where));
  });
  if (details.length > 0) fail(what, 'processing-container.json', details);
  return pc;
}

/** Parses and validates the text of a processing-container.json (after `{{ env.X }}` substitution). */
export function parseProcessingContainer(text: string, what = 'processing-container.json', env: Record<string, string | undefined> = {}): ProcessingContainer {
  return validateProcessingContainer(parseJson(renderTaskVars(text, env), what), what);
}

/** Validates a parsed task.json; throws TESSERA_INVALID_SPEC naming each path at fault. */
export function validateTaskFile(value: unknown, what = 'task.json'): TaskFile {
  if (!validateTask(value)) fail(what, 'task', ajvErrorsToDetails(validateTask.errors, ''));
  const task = value as TaskFile;
  const details: ErrorDetail[] = [];
  for (const side of ['inputs', 'outputs'] as const) {
    (task[side] ?? []).forEach((c, i) => {
      const w = `${side}[${i}]`;
      if (!c.volume_source && !c.input) details.push({ where: `${w}.volume_source`, message: 'is required ({"host_path": "<folder>"})' });
      if (c.volume_source && c.input && c.volume_source.host_path !== c.input.host_path) {
        details.push({ where: `${w}.input`, message: 'names another host_path than volume_source; give one of them' });
      }
      details.push(...scaleRuleProblems(c.scale_rule, w));
    });
  }
  if (typeof task.taskTemplate === 'object') details.push(...templateProblems(task.taskTemplate, 'taskTemplate'));
  if (details.length > 0) fail(what, 'task', details);
  return task;
}

/** Parses and validates the text of a task.json (after `{{ env.X }}` substitution). */
export function parseTaskFile(text: string, what = 'task.json', env: Record<string, string | undefined> = {}): TaskFile {
  return validateTaskFile(parseJson(renderTaskVars(text, env), what), what);
}

/** The host folder of a task channel (`volume_source.host_path`, or the docs' `input.host_path`). */
export function channelHostPath(c: TaskChannel): string {
  return (c.volume_source ?? c.input)!.host_path;
}

/** Finds a template by identifier; throws naming the ones there are. */
export function findTemplate(pc: ProcessingContainer, identifier: string, where = pc.name): TaskTemplate {
  const t = pc.templates.find((x) => x.identifier === identifier);
  if (!t) {
    throw new TesseraError('TESSERA_NOT_FOUND', `${where} has no task template "${identifier}" (it has ${pc.templates.map((x) => `"${x.identifier}"`).join(', ') || 'none'})`);
  }
  return t;
}

/**
 * Kaapana's env precedence: each later list overrides the earlier by name, keeping the
 * first list's order (and its description/choices); new names are appended.
 */
export function mergeTaskEnv(...lists: (readonly { name: string; value: string }[] | null | undefined)[]): { name: string; value: string }[] {
  const out = new Map<string, string>();
  for (const list of lists) for (const e of list ?? []) out.set(e.name, e.value);
  return [...out].map(([name, value]) => ({ name, value }));
}

/** A channel as it is mounted: the template's mount, the task's host folder and scale rule. */
export interface BoundChannel {
  name: string;
  hostPath: string;
  mountedPath: string;
  scaleRule?: ScaleRule;
}

/** A task.json merged with its template, ready to run (Kaapana's TaskInstance). */
export interface TaskInstance {
  name: string;
  image: string;
  template: TaskTemplate;
  command?: string[];
  env: { name: string; value: string }[];
  inputs: BoundChannel[];
  outputs: BoundChannel[];
  resources?: Static<typeof TaskResourcesSchema>;
  labels: Record<string, string>;
  /** Channels of the template without a host folder in the task, and task channels the template lacks (Kaapana ignores both). */
  warnings: string[];
}

/** Merges a task with its template, as Kaapana does: the task's command and resources replace the template's. */
export function createTaskInstance(task: TaskFile, template: TaskTemplate): TaskInstance {
  const warnings: string[] = [];
  const bind = (side: 'inputs' | 'outputs'): BoundChannel[] => {
    const given = task[side] ?? [];
    for (const c of given) {
      if (!template[side].some((m) => m.name === c.name)) {
        warnings.push(`${side} channel "${c.name}" is not one of template "${template.identifier}"'s ${side} (${template[side].map((m) => m.name).join(', ') || 'none'}); ignored`);
      }
    }
    return template[side].flatMap((m) => {
      const v = given.find((c) => c.name === m.name);
      if (!v) {
        warnings.push(`${side.slice(0, -1)} channel "${m.name}" has no host_path in the task; it is not mounted`);
        return [];
      }
      const rule = v.scale_rule ?? m.scale_rule ?? undefined;
      return [{ name: m.name, hostPath: channelHostPath(v), mountedPath: m.mounted_path, ...(rule ? { scaleRule: rule } : {}) }];
    });
  };
  const command = task.command ?? template.command ?? undefined;
  const resources = task.resources ?? template.resources ?? undefined;
  return {
    name: task.name,
    image: task.image,
    template,
    ...(command ? { command } : {}),
    env: mergeTaskEnv(template.env, task.env),
    inputs: bind('inputs'),
    outputs: bind('outputs'),
    ...(resources ? { resources } : {}),
    labels: task.config?.labels ?? {},
    warnings,
  };
}

const UNITS: Record<string, number> = {
  '': 1, B: 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
  k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12,
};

/** Bytes of a Kubernetes memory quantity ("500Mi", "1Gi", "1000000"); undefined when it is none. */
export function memoryBytes(quantity: unknown): number | undefined {
  if (typeof quantity === 'number') return quantity;
  if (typeof quantity !== 'string') return undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(quantity);
  if (!m || !(m[2]! in UNITS)) return undefined;
  return Number(m[1]) * UNITS[m[2]!]!;
}

/** Memory in bytes a scale rule asks for, given the target size n in bytes. */
export function scaleRuleBytes(rule: ScaleRule, n: number): number {
  if (rule.scale_factor !== undefined) return rule.scale_factor * n;
  const m = /^([-+]?\d*(?:\.\d+)?)\*?n(?:\*\*(\d+))?$/.exec(rule.complexity ?? '');
  if (!m) return 0;
  const factor = m[1] === '' || m[1] === '+' ? 1 : m[1] === '-' ? -1 : Number(m[1]);
  return factor * n ** Number(m[2] ?? 1);
}

/**
 * Turns the template's adjustable env into a JSON Schema object form (typed by `type`,
 * with `choices` as an enum). An env entry is adjustable when it says so, or, in
 * Kaapana's code (which has no `adjustable`), when it is not `adjustable: false`.
 */
export function templateEnvForm(env: readonly TemplateEnv[], title?: string): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (const e of env) {
    if (e.adjustable === false) continue;
    const base = { title: e.name, ...(e.description ? { description: e.description } : {}) };
    if (e.type === 'int') properties[e.name] = { ...base, type: 'integer', default: Number(e.value) };
    else if (e.type === 'boolean') properties[e.name] = { ...base, type: 'boolean', default: /^true$/i.test(e.value) };
    else properties[e.name] = { ...base, type: 'string', default: e.value, ...(e.choices && e.choices.length > 0 ? { enum: [...e.choices] } : {}) };
  }
  return { type: 'object', ...(title ? { title } : {}), properties, additionalProperties: false };
}

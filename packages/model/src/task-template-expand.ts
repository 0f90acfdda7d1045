import type { DagSpec, RamScale, TaskSpec } from './dag-spec.schema.ts';
import { TesseraError } from './errors.ts';
import { findTemplate, memoryBytes, templateEnvForm, type ProcessingContainer, type TaskTemplate } from './task-api.ts';

/**
 * Expanding a Kaapana Task API template into a task of a DAG spec: one function for the
 * SDK's defineTaskOperator (with the processing-container.json it was given) and for the
 * platform (with the one it read from the image at install).
 */

/** What an upstream task offers to an input channel: its output channels, 'pending' when its template is not read yet, undefined when it is no Task API task. */
export type UpstreamChannels = (taskId: string) => readonly string[] | 'pending' | undefined;

/** Memory limit of a template's resources in MB (binary units, rounded up), if it has one. */
export function templateRamMb(template: TaskTemplate): number | undefined {
  const bytes = memoryBytes(template.resources?.limits?.memory);
  return bytes === undefined || bytes < 10 ? undefined : Math.ceil(bytes / (1024 * 1024));
}

/** Which env entries of a template are form fields: the `adjustable: true` ones when the template marks any, else all (Kaapana's code lets task_form set every one). */
export function adjustableEnv(template: TaskTemplate, effective: { name: string; value: string }[]): Record<string, unknown> {
  const marked = template.env.some((e) => e.adjustable !== undefined && e.adjustable !== null);
  const value = new Map(effective.map((e) => [e.name, e.value]));
  const fields = template.env
    .filter((e) => (marked ? e.adjustable === true : true))
    .map((e) => ({ ...e, adjustable: true, value: value.get(e.name) ?? e.value }));
  return templateEnvForm(fields);
}

/** The output channels of a task whose template is expanded (its read-write mounts `<task id>/<channel>`). */
export function taskOutputChannels(task: TaskSpec): string[] | undefined {
  const mounts = task.container?.mounts;
  if (!mounts || task.container?.task_template) return undefined;
  const prefix = `${task.id}/`;
  return mounts.filter((m) => m.read_only !== true && m.source.startsWith(prefix)).map((m) => m.source.slice(prefix.length));
}

/**
 * Expands a task that names a template (`container.task_template`): each output channel is
 * the folder `<task id>/<channel>` mounted read-write at its `mounted_path`; each input
 * channel the upstream's output folder, mounted read-only; env is the template's, overridden
 * by the task's (template < operator; conf.task_form comes on top at run time); the command
 * is the task's `args` or the template's; `ram_mb` the task's or the template's memory limit;
 * input scale rules of type "limit" become `ram_scale`. Returns the task and its form (the
 * adjustable env), or throws naming the task and what is wrong.
 */
export function expandTaskTemplate(task: TaskSpec, template: TaskTemplate, upstream: UpstreamChannels): { task: TaskSpec; form?: Record<string, unknown> } {
  const ref = task.container?.task_template;
  if (!task.container || !ref) throw new Error(`task "${task.id}" names no task template`);
  const where = `task "${task.id}" (template "${template.identifier}")`;
  const mounts: NonNullable<NonNullable<TaskSpec['container']>['mounts']> = [];
  const ramScale: RamScale[] = [];
  for (const out of template.outputs) mounts.push({ source: `${task.id}/${out.name}`, target: out.mounted_path, read_only: false });
  for (const map of ref.iochannels ?? []) {
    const input = template.inputs.find((i) => i.name === map.input);
    if (!input) throw new TesseraError('TESSERA_INVALID_SPEC', `${where} has no input channel "${map.input}" (it has ${template.inputs.map((i) => i.name).join(', ') || 'none'})`);
    const known = upstream(map.from);
    if (known !== 'pending' && !known?.includes(map.output)) {
      throw new TesseraError('TESSERA_INVALID_SPEC', `${where}: upstream task "${map.from}" has no output channel "${map.output}"${known?.length ? ` (it has ${known.join(', ')})` : ' (it is not a Task API task)'}`);
    }
    if (mounts.some((m) => m.target === input.mounted_path)) throw new TesseraError('TESSERA_INVALID_SPEC', `${where}: input channel "${map.input}" is mapped twice`);
    const source = `${map.from}/${map.output}`;
    mounts.push({ source, target: input.mounted_path, read_only: true });
    const rule = input.scale_rule;
    if (rule && rule.type === 'limit') {
      const m = /^([-+]?\d*(?:\.\d+)?)\*?n(?:\*\*(\d+))?$/.exec(rule.complexity ?? '');
      const factor = rule.scale_factor ?? (m ? (m[1] === '' || m[1] === '+' ? 1 : Number(m[1])) : 0);
      ramScale.push({
        source,
        factor: Math.max(0, factor),
        ...(rule.scale_factor === undefined && m?.[2] ? { power: Number(m[2]) } : {}),
        mode: rule.mode,
        ...(rule.target_dir ? { target_dir: rule.target_dir } : {}),
        ...(rule.target_regex ? { target_regex: rule.target_regex } : {}),
        ...(rule.target_glob ? { target_glob: rule.target_glob } : {}),
      });
    }
  }
  const merged = new Map(template.env.map((e) => [e.name, e.value]));
  for (const [name, value] of Object.entries(task.env)) merged.set(name, value);
  const { task_template: _ref, ...container } = task.container;
  const args = container.args ?? template.command ?? undefined;
  const ramMb = task.resources?.ram_mb ?? templateRamMb(template);
  const expanded: TaskSpec = {
    ...task,
    ...(task.title === undefined && template.description ? { title: template.description } : {}),
    env: Object.fromEntries(merged),
    container: { ...container, ...(args ? { args: [...args] } : {}), ...(mounts.length ? { mounts } : {}) },
    resources: { ...task.resources, ...(ramMb !== undefined ? { ram_mb: ramMb } : {}), ...(ramScale.length ? { ram_scale: ramScale } : {}) },
  };
  const form = adjustableEnv(template, [...merged].map(([name, value]) => ({ name, value })));
  return Object.keys(form.properties as object).length > 0 ? { task: expanded, form: { ...form, title: task.id } } : { task: expanded };
}

/** The tasks of a spec whose template is not expanded yet, with their images. */
export function pendingTaskTemplates(spec: DagSpec): { task: string; image: string; identifier: string }[] {
  return spec.tasks.flatMap((t) => (t.container?.task_template ? [{ task: t.id, image: t.container.image, identifier: t.container.task_template.identifier }] : []));
}

/**
 * Expands every task of a spec that names a template, with the processing containers read
 * from their images (`containers`: image -> the file, or why it could not be read). With
 * `strict` (install) the first problem throws, naming the image, the template and the ones
 * it has; otherwise (a load without the image) the task keeps its template reference with
 * the `problem`, which a run of it fails with. Adds the form fields to `task_form`.
 */
export function expandTaskTemplates(spec: DagSpec, containers: ReadonlyMap<string, ProcessingContainer | Error>, options: { strict: boolean }): DagSpec {
  const tasks: TaskSpec[] = [];
  const forms: Record<string, unknown> = {};
  const channels = (id: string): readonly string[] | 'pending' | undefined => {
    const t = tasks.find((x) => x.id === id) ?? spec.tasks.find((x) => x.id === id);
    return t?.container?.task_template ? 'pending' : t ? taskOutputChannels(t) : undefined;
  };
  for (const task of spec.tasks) {
    const ref = task.container?.task_template;
    if (!task.container || !ref) {
      tasks.push(task);
      continue;
    }
    try {
      const pc = containers.get(task.container.image);
      if (pc === undefined) throw new Error(`/processing-container.json of image "${task.container.image}" was not read`);
      if (pc instanceof Error) throw pc;
      const template = findTemplate(pc, ref.identifier, `image "${task.container.image}" (processing container "${pc.name}")`);
      const { task: expanded, form } = expandTaskTemplate(task, template, channels);
      tasks.push(expanded);
      if (form) forms[task.id] = form;
    } catch (err) {
      const message = `task "${task.id}": ${(err as Error).message}`;
      if (options.strict) throw new TesseraError(err instanceof TesseraError ? err.code : 'TESSERA_INVALID_SPEC', `workflow "${spec.id}", ${message}`, { cause: err });
      tasks.push({ ...task, container: { ...task.container, task_template: { ...ref, problem: (err as Error).message } } });
    }
  }
  if (Object.keys(forms).length === 0) return { ...spec, tasks };
  const prior = (spec.task_form as { properties?: Record<string, unknown> } | undefined)?.properties ?? {};
  return { ...spec, tasks, task_form: { type: 'object', properties: { ...prior, ...forms }, additionalProperties: false } };
}

import {
  findTemplate,
  memoryBytes,
  mergeTaskEnv,
  templateEnvForm,
  validateProcessingContainer,
  type ProcessingContainer,
  type TaskTemplate,
} from '@tessera/model';
import type { Operator, OperatorDefinition, OperatorResources } from './workflow.ts';

/** A Kaapana Task API operator: one task template of a processing container's image. */
export interface TaskOperatorDefinition {
  /** Operator name (the task id); default the template identifier. */
  name?: string;
  title?: string;
  /** The processing container's image; its `/processing-container.json` declares the template. */
  image: string;
  /**
   * That processing-container.json, as Tessera does not open images when it loads a workflow:
   * the parsed file from beside the image's build context, e.g.
   * `JSON.parse(readFileSync(new URL('../processing/processing-container.json', import.meta.url), 'utf8'))`.
   * Validated here: a wrong one fails the workflow's load, naming the path at fault.
   */
  processingContainer: ProcessingContainer | object;
  /** The template's `identifier` (Kaapana's `taskTemplate`). */
  template: string;
  /** Overrides of the template's env (Kaapana's operator `env`); conf.task_form overrides these in turn. */
  env?: Record<string, string> | { name: string; value: string }[];
  /** Replaces the template's `command` (the container's CMD). */
  command?: string[];
  /** Replaces what the template's `resources.limits.memory` gives. */
  resources?: OperatorResources;
  retries?: number;
  retryDelay?: number;
  timeout?: number;
}

/** What a Task API operator carries into Workflow.task(). */
export interface TaskApiBinding {
  image: string;
  template: TaskTemplate;
  env: { name: string; value: string }[];
  command?: string[];
}

function loadProcessingContainer(source: TaskOperatorDefinition['processingContainer']): { pc: ProcessingContainer; where: string } {
  const pc = validateProcessingContainer(structuredClone(source), 'processingContainer');
  return { pc, where: `processing container "${pc.name}"` };
}

/** Memory limit of a template's resources in MB (binary units, rounded up), if it has one. */
function templateRamMb(template: TaskTemplate): number | undefined {
  const bytes = memoryBytes(template.resources?.limits?.memory);
  return bytes === undefined || bytes < 10 ? undefined : Math.ceil(bytes / (1024 * 1024));
}

/**
 * Defines an operator from a Kaapana Task API template (Kaapana's KaapanaTaskOperator):
 * each output channel is the folder `<WORKFLOW_DIR>/<task id>/<channel>` mounted read-write
 * at the channel's `mounted_path`; each input channel is an upstream task's output folder,
 * chosen with `iochannels` in Workflow.task(), mounted read-only. The template's env is the
 * base of the task's env (template < `env` here < conf.task_form), its adjustable entries
 * become the task's form fields, and its memory limit and scale rules feed the RAM pool.
 */
export function defineTaskOperator(definition: TaskOperatorDefinition): Operator {
  const { pc, where } = loadProcessingContainer(definition.processingContainer);
  const template = findTemplate(pc, definition.template, where);
  const opEnv = Array.isArray(definition.env) ? definition.env : Object.entries(definition.env ?? {}).map(([name, value]) => ({ name, value }));
  const ramMb = definition.resources?.ramMb ?? templateRamMb(template);
  const op: OperatorDefinition = {
    name: definition.name ?? template.identifier,
    title: definition.title ?? template.description,
    container: { image: definition.image },
    level: 'batch',
    resources: { ...definition.resources, ...(ramMb !== undefined ? { ramMb } : {}) },
    ...(definition.retries !== undefined ? { retries: definition.retries } : {}),
    ...(definition.retryDelay !== undefined ? { retryDelay: definition.retryDelay } : {}),
    ...(definition.timeout !== undefined ? { timeout: definition.timeout } : {}),
  };
  const binding: TaskApiBinding = {
    image: definition.image,
    template,
    env: mergeTaskEnv(template.env, opEnv),
    ...((definition.command ?? template.command) ? { command: definition.command ?? template.command! } : {}),
  };
  return { kind: 'tessera.operator', definition: op, taskApi: binding };
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

import {
  findTemplate,
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
   * That processing-container.json, parsed, e.g. from beside the image's build context:
   * `JSON.parse(readFileSync(new URL('../processing/processing-container.json', import.meta.url), 'utf8'))`.
   * Validated here: a wrong one fails the workflow's load, naming the path at fault.
   *
   * Optional: without it the task spec names the template (`container.task_template`) and
   * the platform reads `/processing-container.json` from the image when the extension is
   * installed (after its images are built, loaded or pulled), and expands the task the same way.
   */
  processingContainer?: ProcessingContainer | object;
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

/** What a Task API operator carries into Workflow.task(): the template, when it is known now (else the platform reads it from the image). */
export interface TaskApiBinding {
  identifier: string;
  template?: TaskTemplate;
}

/**
 * Defines an operator from a Kaapana Task API template (Kaapana's KaapanaTaskOperator):
 * each output channel is the folder `<WORKFLOW_DIR>/<task id>/<channel>` mounted read-write
 * at the channel's `mounted_path`; each input channel is an upstream task's output folder,
 * chosen with `iochannels` in Workflow.task(), mounted read-only. The template's env is the
 * base of the task's env (template < `env` here < conf.task_form), its adjustable entries
 * become the task's form fields, and its memory limit and scale rules feed the RAM pool.
 * Without `processingContainer`, that expansion happens when the extension is installed.
 */
export function defineTaskOperator(definition: TaskOperatorDefinition): Operator {
  let template: TaskTemplate | undefined;
  if (definition.processingContainer !== undefined) {
    const pc = validateProcessingContainer(structuredClone(definition.processingContainer), 'processingContainer');
    template = findTemplate(pc, definition.template, `processing container "${pc.name}"`);
  }
  const opEnv = Array.isArray(definition.env) ? Object.fromEntries(definition.env.map((e) => [e.name, e.value])) : { ...definition.env };
  const op: OperatorDefinition = {
    name: definition.name ?? definition.template,
    ...((definition.title ?? template?.description) ? { title: definition.title ?? template!.description } : {}),
    container: { image: definition.image, ...(definition.command ? { args: [...definition.command] } : {}) },
    level: 'batch',
    env: opEnv,
    ...(definition.resources ? { resources: { ...definition.resources } } : {}),
    ...(definition.retries !== undefined ? { retries: definition.retries } : {}),
    ...(definition.retryDelay !== undefined ? { retryDelay: definition.retryDelay } : {}),
    ...(definition.timeout !== undefined ? { timeout: definition.timeout } : {}),
  };
  return { kind: 'tessera.operator', definition: op, taskApi: { identifier: definition.template, ...(template ? { template } : {}) } };
}

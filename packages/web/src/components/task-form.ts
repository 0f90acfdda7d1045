import type { JsonSchema } from './SchemaForm.tsx';

/** Kaapana's conf.task_form as its code reads it: `<task id>: { env: [{name, value}] }`, values as text. */
export type TaskFormConf = Record<string, { env: { name: string; value: string }[] }>;

/** The tasks of a workflow's task_form schema that have settings (an object schema with properties each). */
export function taskFormTasks(schema: JsonSchema | undefined): string[] {
  return Object.entries(schema?.properties ?? {})
    .filter(([, s]) => Object.keys(s.properties ?? {}).length > 0)
    .map(([id]) => id);
}

/**
 * The values of the task settings form (`{<task>: {VAR: value}}`, typed by the schema) in
 * Kaapana's list shape. Values stay as typed JSON until here and become text, as env values
 * are; the server checks each against the workflow's schema and answers errors at
 * `task_form.<task>.<VAR>`. Tasks without a value are left out (the server fills defaults).
 */
export function taskFormConf(values: Record<string, unknown>): TaskFormConf | undefined {
  const out: TaskFormConf = {};
  for (const [task, vars] of Object.entries(values)) {
    if (!vars || typeof vars !== 'object' || Array.isArray(vars)) continue;
    const env = Object.entries(vars as Record<string, unknown>)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([name, v]) => ({ name, value: typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v) }));
    if (env.length > 0) out[task] = { env };
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

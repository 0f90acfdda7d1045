import type { AnswerOf, Workflow, workflowRoutes } from '@tessera/api';
import type { ApiClient } from '../api-client.ts';
import { printJson, table } from '../output.ts';

interface FieldSchema {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  items?: { type?: string; enum?: unknown[] };
  minimum?: number;
  maximum?: number;
}

/** A field's type for people: `integer`, `string`, `array of string`. */
function typeOf(f: FieldSchema): string {
  const t = Array.isArray(f.type) ? f.type.join('|') : (f.type ?? 'any');
  return t === 'array' ? `array of ${f.items?.type ?? 'any'}` : t;
}

function show(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The rows (name, type, choices, default, description) of an object schema's properties. */
export function fieldRows(schema: Record<string, unknown> | undefined): string[][] {
  const props = (schema?.properties ?? {}) as Record<string, FieldSchema>;
  return Object.entries(props).map(([name, f]) => {
    const choices = f.enum ?? f.items?.enum;
    const range = f.minimum !== undefined || f.maximum !== undefined ? `${f.minimum ?? ''}..${f.maximum ?? ''}` : '';
    return [
      name,
      typeOf(f),
      choices ? choices.map(show).join(', ') : range || '-',
      f.default === undefined ? '-' : show(f.default),
      f.description ?? '',
    ];
  });
}

/** A workflow for people: its tasks, its parameters (workflow_form) and the settings of its Task API tasks (task_form). */
export function describeWorkflow(w: Workflow): string {
  const out: string[] = [`${w.id}: ${w.title}`];
  if (w.description) out.push(w.description);
  out.push(`extension: ${w.extension.name}@${w.extension.version}`, '');
  out.push('TASKS', table(['TASK', 'OPERATOR', 'RUNS AS', 'AFTER'], w.tasks.map((t) => [t.id, t.operator, t.runs_as, t.upstream.join(',') || '-'])), '');
  const params = fieldRows(w.workflow_form);
  out.push(params.length ? 'PARAMETERS (--form key=value)' : 'PARAMETERS: none');
  if (params.length) out.push(table(['PARAMETER', 'TYPE', 'CHOICES', 'DEFAULT', 'DESCRIPTION'], params), '');
  const tasks = Object.entries((w.task_form?.properties ?? {}) as Record<string, Record<string, unknown>>);
  if (tasks.length) {
    if (!params.length) out.push('');
    out.push('TASK SETTINGS (--task-form task.VAR=value)');
    const rows = tasks.flatMap(([task, schema]) => fieldRows(schema).map((r) => [task, ...r]));
    out.push(table(['TASK', 'SETTING', 'TYPE', 'CHOICES', 'DEFAULT', 'DESCRIPTION'], rows));
  }
  return out.join('\n').trimEnd();
}

/** `tessera workflows <id>`: one workflow with its tasks, parameters and task settings. */
export async function workflowShowCommand(api: ApiClient, id: string, o: { json?: boolean }): Promise<void> {
  const w = await api.get<AnswerOf<typeof workflowRoutes.get, 200>>(`/api/workflows/${encodeURIComponent(id)}`);
  if (o.json) return printJson(w);
  console.log(describeWorkflow(w));
}

import { DagSpecSchema, type DagSpec, type TaskSpec } from './dag-spec.schema.ts';
import { TesseraError, type ErrorDetail } from './errors.ts';
import { imageReferenceProblem } from './image-reference.ts';
import { ajvErrorsToDetails, compileFormSchema, createAjv } from './json-validator.ts';

const ajv = createAjv({ useDefaults: true });
const validateSchema = ajv.compile(DagSpecSchema);

/**
 * Validates an untrusted DAG spec and returns it with defaults filled in.
 * Throws TESSERA_INVALID_SPEC with one detail per problem, each naming the task
 * (by index and id) or field at fault: schema violations, duplicate task ids,
 * unknown upstreams, cycles, tasks with no way to run, form schemas that do not compile.
 */
export function validateDagSpec(input: unknown): DagSpec {
  const spec = structuredClone(input) as DagSpec;
  const label = typeof (input as { id?: unknown })?.id === 'string' ? `workflow "${(input as { id: string }).id}"` : 'workflow';
  if (!validateSchema(spec)) {
    const details = ajvErrorsToDetails(validateSchema.errors, '', (pointer) => describeTaskPointer(spec, pointer));
    const summary = details.map((d) => `${d.where || '(spec)'} ${d.message}`).join('; ');
    throw new TesseraError('TESSERA_INVALID_SPEC', `${label}: the DAG spec does not match its schema: ${summary}`, { details });
  }
  const details = [...checkTasks(spec.tasks), ...checkForms(spec)];
  if (details.length > 0) {
    throw new TesseraError('TESSERA_INVALID_SPEC', `${label}: ${details.map((d) => `${d.where}: ${d.message}`).join('; ')}`, {
      details,
    });
  }
  return spec;
}

function describeTaskPointer(spec: DagSpec, pointer: string): string {
  const m = /^\/tasks\/(\d+)(.*)$/.exec(pointer);
  if (!m) return pointer;
  const id = (spec.tasks as unknown[])[Number(m[1])] as { id?: unknown } | undefined;
  const name = typeof id?.id === 'string' ? ` (id "${id.id}")` : '';
  return `/tasks[${m[1]}]${name}${m[2]}`;
}

function checkTasks(tasks: TaskSpec[]): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  const seen = new Map<string, number>();
  tasks.forEach((t, i) => {
    const where = `tasks[${i}] (id "${t.id}")`;
    const first = seen.get(t.id);
    if (first !== undefined) details.push({ where, message: `duplicate task id "${t.id}" (also tasks[${first}])` });
    else seen.set(t.id, i);
    if (t.builtin !== undefined && (t.container !== undefined || t.process !== undefined)) {
      details.push({ where, message: 'a built-in operator cannot also have "container" or "process"' });
    }
    if (t.builtin === undefined && t.container === undefined && t.process === undefined) {
      details.push({ where, message: 'has no way to run: give it "container" (an image), "process" (a local command) or "builtin"' });
    }
    if (t.container !== undefined) {
      const problem = imageReferenceProblem(t.container.image);
      if (problem) details.push({ where: `${where}.container.image`, message: problem });
    }
    const ups = new Set<string>();
    for (const u of t.upstream) {
      if (u === t.id) details.push({ where, message: 'depends on itself' });
      if (ups.has(u)) details.push({ where, message: `lists upstream "${u}" twice` });
      ups.add(u);
    }
  });
  // Each task's output dir is emptied before it starts (unless keep_outputs): two tasks
  // writing to the same one would delete each other's outputs.
  const byDir = new Map<string, number>();
  tasks.forEach((t, i) => {
    if (seen.get(t.id) !== i) return; // a duplicate id, reported above
    const key = `${t.level}\0${t.output_dir}`;
    const first = byDir.get(key);
    if (first === undefined) return void byDir.set(key, i);
    const other = tasks[first]!;
    if (other.keep_outputs && t.keep_outputs) return;
    details.push({
      where: `tasks[${i}] (id "${t.id}").output_dir`,
      message: `"${t.output_dir}" is also the output dir of task "${other.id}" (tasks[${first}]): a task's output dir is emptied before it starts, so one would delete the other's outputs; give each task its own output_dir (the SDK uses the task's id), or set keep_outputs on both`,
    });
  });
  tasks.forEach((t, i) => {
    for (const u of t.upstream) {
      if (!seen.has(u)) details.push({ where: `tasks[${i}] (id "${t.id}")`, message: `unknown upstream task "${u}"` });
    }
  });
  if (details.length === 0) {
    const cycle = findCycle(tasks);
    if (cycle) details.push({ where: `task "${cycle[0]}"`, message: `is part of a cycle: ${cycle.join(' -> ')}` });
  }
  return details;
}

/** Returns one cycle as a list of task ids (first repeated at the end), or undefined. */
export function findCycle(tasks: Pick<TaskSpec, 'id' | 'upstream'>[]): string[] | undefined {
  const upstreamOf = new Map(tasks.map((t) => [t.id, t.upstream]));
  const state = new Map<string, 'visiting' | 'done'>();
  // Iterative DFS so that a 100,000-task chain does not overflow the stack.
  for (const start of tasks) {
    if (state.has(start.id)) continue;
    const stack: { id: string; next: number }[] = [{ id: start.id, next: 0 }];
    state.set(start.id, 'visiting');
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const ups = upstreamOf.get(top.id) ?? [];
      if (top.next < ups.length) {
        const u = ups[top.next++]!;
        const s = state.get(u);
        if (s === 'visiting') {
          const ids = stack.map((f) => f.id);
          const from = ids.indexOf(u);
          // Stack holds downstream -> upstream; report in execution order.
          return [...ids.slice(from), u].reverse();
        }
        if (s === undefined && upstreamOf.has(u)) {
          state.set(u, 'visiting');
          stack.push({ id: u, next: 0 });
        }
      } else {
        state.set(top.id, 'done');
        stack.pop();
      }
    }
  }
  return undefined;
}

function checkForms(spec: DagSpec): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  for (const form of ['workflow_form', 'data_form'] as const) {
    try {
      compileFormSchema(spec[form], { useDefaults: false });
    } catch (err) {
      details.push({ where: form, message: `is not a valid JSON Schema: ${(err as Error).message}` });
    }
  }
  return details;
}

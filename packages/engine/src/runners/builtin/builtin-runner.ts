import { appendFile } from 'node:fs/promises';
import { PLATFORM_OPERATORS, type TaskSpec } from '@tessera/model';
import type { Runner, TaskExecution, TaskLaunch, TaskOutcome } from '../runner.ts';

/** What a built-in operator receives. */
export interface BuiltinContext {
  launch: TaskLaunch;
  params: Record<string, unknown>;
  /** Aborted when the task is stopped (cancel, timeout); long operations must honour it. */
  signal: AbortSignal;
  /** Appends a line to the task's log. */
  log: (line: string) => Promise<void>;
}

/** A built-in platform operator: runs inside the server process. Return 'skipped' to skip. */
export type BuiltinOperator = (ctx: BuiltinContext) => Promise<void | 'skipped'>;

/** Runs built-in platform operators (e.g. the data operators of the DICOM domain) in the server process. */
export class BuiltinRunner implements Runner {
  readonly name = 'builtin';
  readonly inProcess = true;
  readonly #operators = new Map<string, BuiltinOperator>();
  readonly #running = new Map<string, AbortController>();
  #next = 0;

  constructor(operators: Record<string, BuiltinOperator> = {}) {
    for (const [name, op] of Object.entries(operators)) this.register(name, op);
  }

  /** Adds a built-in operator; domains call this at start. */
  register(name: string, operator: BuiltinOperator): void {
    if (this.#operators.has(name)) throw new Error(`built-in operator "${name}" is registered twice`);
    this.#operators.set(name, operator);
  }

  names(): string[] {
    return [...this.#operators.keys()];
  }

  supports(task: TaskSpec): boolean {
    return task.builtin !== undefined && this.#operators.has(task.builtin);
  }

  async start(launch: TaskLaunch): Promise<TaskExecution> {
    const op = this.#operators.get(launch.task.builtin ?? '');
    if (!op) throw new Error(`unknown built-in operator "${launch.task.builtin}"`);
    const handle = `builtin-${process.pid}-${++this.#next}`;
    const controller = new AbortController();
    this.#running.set(handle, controller);
    const log = (line: string): Promise<void> => appendFile(launch.logFile, `${line}\n`);
    const done = op({ launch, params: launch.task.builtin_params ?? {}, signal: controller.signal, log })
      .then((r): TaskOutcome => (controller.signal.aborted ? { state: 'failed', reason: 'stopped' } : r === 'skipped' ? { state: 'skipped' } : { state: 'success', exitCode: 0 }))
      .catch(async (err: Error): Promise<TaskOutcome> => {
        await log(`tessera: built-in operator "${launch.task.builtin}" failed: ${err.message}`).catch(() => undefined);
        return { state: 'failed', reason: err.message };
      })
      .finally(() => this.#running.delete(handle));
    return { handle, done };
  }

  async stop(handle: string): Promise<void> {
    this.#running.get(handle)?.abort();
  }

  /** In-process work dies with the process: always run it again. */
  async recover(): Promise<undefined> {
    return undefined;
  }

  async sweep(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    for (const c of this.#running.values()) c.abort();
  }
}

/** Built-ins every platform has. `empty` does nothing: a join point (Airflow's EmptyOperator). */
export const CORE_BUILTINS: Record<string, BuiltinOperator> = {
  [PLATFORM_OPERATORS.empty]: async () => undefined,
};

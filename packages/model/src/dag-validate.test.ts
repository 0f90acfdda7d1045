import { describe, expect, it } from 'vitest';
import { TesseraError } from './errors.ts';
import { findCycle, validateDagSpec } from './dag-validate.ts';

type RawTask = Record<string, unknown> & { id: string };

/** A task that can run (a local process) with only the required fields; `undefined` in extra removes a field. */
function task(id: string, extra: Record<string, unknown> = {}): RawTask {
  const t: RawTask = { id, operator: id, output_dir: id, process: { command: ['true'] }, ...extra };
  for (const [k, v] of Object.entries(t)) if (v === undefined) delete t[k];
  return t;
}

function spec(tasks: RawTask[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { spec_version: 1, id: 'wf', workflow_form: { type: 'object' }, data_form: { type: 'object' }, tasks, ...extra };
}

/** Validates and returns the TesseraError it must throw. */
function rejection(input: unknown): TesseraError {
  try {
    validateDagSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    const e = err as TesseraError;
    expect(e.code).toBe('TESSERA_INVALID_SPEC');
    expect(e.status).toBe(400);
    expect(e.kind).toBe('user');
    return e;
  }
  throw new Error('expected validateDagSpec to reject the spec');
}

function chain(n: number, reversed: boolean): RawTask[] {
  // reversed: tasks[0] depends on tasks[1] ... so a DFS from tasks[0] walks the whole chain.
  return Array.from({ length: n }, (_, i) => {
    const up = reversed ? (i + 1 < n ? [`t${i + 1}`] : []) : i > 0 ? [`t${i - 1}`] : [];
    return task(`t${i}`, { upstream: up });
  });
}

describe('validateDagSpec: a valid spec', () => {
  it('fills the defaults of every task and of the workflow', () => {
    const out = validateDagSpec(spec([task('a'), task('b', { upstream: ['a'] })]));
    expect(out.clean_workflow_dir).toBe(false);
    expect(out.tasks[0]).toEqual({
      id: 'a',
      operator: 'a',
      output_dir: 'a',
      process: { command: ['true'] },
      upstream: [],
      trigger_rule: 'all_success',
      level: 'batch_element',
      env: {},
      retries: 0,
      retry_delay_s: 0,
      retry_backoff: 'fixed',
    });
    expect(out.tasks[1]).toMatchObject({ upstream: ['a'], trigger_rule: 'all_success', level: 'batch_element', retries: 0, env: {} });
  });

  it('keeps explicit values instead of the defaults', () => {
    const out = validateDagSpec(
      spec([task('a'), task('b', { upstream: ['a'], trigger_rule: 'all_done', level: 'batch', retries: 3, env: { MODE: 'x' } })]),
    );
    expect(out.tasks[1]).toMatchObject({ trigger_rule: 'all_done', level: 'batch', retries: 3, env: { MODE: 'x' } });
  });

  it('does not modify the input it is given', () => {
    const input = spec([task('a')]);
    const before = structuredClone(input);
    validateDagSpec(input);
    expect(input).toEqual(before);
  });

  it('accepts a diamond (two paths to one task) as acyclic', () => {
    const out = validateDagSpec(
      spec([task('a'), task('b', { upstream: ['a'] }), task('c', { upstream: ['a'] }), task('d', { upstream: ['b', 'c'] })]),
    );
    expect(out.tasks.map((t) => t.id)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('accepts builtin and container tasks', () => {
    const out = validateDagSpec(
      spec([task('get', { process: undefined, builtin: 'get-input-data' }), task('seg', { process: undefined, container: { image: 'seg:1' }, upstream: ['get'] })]),
    );
    expect(out.tasks[0]!.builtin).toBe('get-input-data');
    expect(out.tasks[1]!.container).toEqual({ image: 'seg:1' });
  });
});

describe('validateDagSpec: graph problems name the task at fault', () => {
  it('rejects a cycle and lists it in execution order', () => {
    const e = rejection(spec([task('a', { upstream: ['c'] }), task('b', { upstream: ['a'] }), task('c', { upstream: ['b'] })]));
    expect(e.message).toContain('a -> b -> c -> a');
    expect(e.message).toContain('workflow "wf"');
    expect(e.details).toHaveLength(1);
    expect(e.details[0]!.where).toContain('"a"');
    expect(e.details[0]!.message).toContain('a -> b -> c -> a');
  });

  it('lists only the tasks of the cycle, not the tasks leading into it', () => {
    const e = rejection(
      spec([task('start'), task('x', { upstream: ['start', 'z'] }), task('y', { upstream: ['x'] }), task('z', { upstream: ['y'] }), task('end', { upstream: ['z'] })]),
    );
    expect(e.message).toMatch(/x -> y -> z -> x|y -> z -> x -> y|z -> x -> y -> z/);
    expect(e.message).not.toContain('start ->');
    expect(e.message).not.toContain('end');
  });

  it('rejects a two-task cycle', () => {
    const e = rejection(spec([task('a', { upstream: ['b'] }), task('b', { upstream: ['a'] })]));
    expect(e.message).toMatch(/a -> b -> a|b -> a -> b/);
  });

  it('rejects an unknown upstream, naming the task and the unknown id', () => {
    const e = rejection(spec([task('a'), task('b', { upstream: ['a', 'ghost'] })]));
    expect(e.details).toEqual([{ where: 'tasks[1] (id "b")', message: expect.stringContaining('"ghost"') }]);
    expect(e.message).toContain('tasks[1] (id "b")');
    expect(e.message).toContain('ghost');
  });

  it('rejects a duplicate task id, naming both places', () => {
    const e = rejection(spec([task('a'), task('b'), task('a')]));
    expect(e.details).toHaveLength(1);
    expect(e.details[0]!.where).toBe('tasks[2] (id "a")');
    expect(e.details[0]!.message).toContain('duplicate task id "a"');
    expect(e.details[0]!.message).toContain('tasks[0]');
  });

  it('rejects a task that depends on itself', () => {
    const e = rejection(spec([task('a'), task('b', { upstream: ['b'] })]));
    expect(e.details).toEqual([{ where: 'tasks[1] (id "b")', message: expect.stringContaining('itself') }]);
  });

  it('rejects an upstream listed twice', () => {
    const e = rejection(spec([task('a'), task('b', { upstream: ['a', 'a'] })]));
    expect(e.details[0]!.where).toBe('tasks[1] (id "b")');
    expect(e.details[0]!.message).toContain('"a"');
  });

  it('rejects a task with no way to run', () => {
    const e = rejection(spec([task('a'), task('b', { process: undefined })]));
    expect(e.details).toEqual([{ where: 'tasks[1] (id "b")', message: expect.stringContaining('no way to run') }]);
  });

  it('rejects a builtin together with a container or a process', () => {
    const withContainer = rejection(spec([task('a', { process: undefined, builtin: 'x', container: { image: 'i' } })]));
    expect(withContainer.details).toEqual([{ where: 'tasks[0] (id "a")', message: expect.stringContaining('built-in') }]);
    const withProcess = rejection(spec([task('a', { builtin: 'x' })]));
    expect(withProcess.details[0]!.where).toBe('tasks[0] (id "a")');
  });

  it('rejects two tasks of a level that share an output dir, unless both keep their outputs', () => {
    const e = rejection(spec([task('a', { output_dir: 'out' }), task('b', { output_dir: 'out' })]));
    expect(e.details).toEqual([{ where: 'tasks[1] (id "b").output_dir', message: expect.stringContaining('"out" is also the output dir of task "a" (tasks[0]): a task\'s output dir is emptied before it starts') }]);
    expect(rejection(spec([task('a', { output_dir: 'out', keep_outputs: true }), task('b', { output_dir: 'out' })])).details).toHaveLength(1);
    // Both keep them, or the levels differ (out of the run, batch/<series>/out): accepted.
    expect(() => validateDagSpec(spec([task('a', { output_dir: 'out', keep_outputs: true }), task('b', { output_dir: 'out', keep_outputs: true })]))).not.toThrow();
    expect(() => validateDagSpec(spec([task('a', { output_dir: 'out', level: 'batch' }), task('b', { output_dir: 'out', level: 'batch_element' })]))).not.toThrow();
  });

  it('reports every graph problem at once', () => {
    const e = rejection(spec([task('a'), task('a'), task('b', { upstream: ['nope'] }), task('c', { process: undefined })]));
    const wheres = e.details.map((d) => d.where);
    expect(wheres).toEqual(expect.arrayContaining(['tasks[1] (id "a")', 'tasks[2] (id "b")', 'tasks[3] (id "c")']));
    expect(e.details).toHaveLength(3);
  });
});

describe('validateDagSpec: schema violations name the field', () => {
  it('rejects retries: -1 at tasks[i] (id "x").retries', () => {
    const e = rejection(spec([task('a'), task('b', { upstream: ['a'], retries: -1 })]));
    expect(e.details).toEqual([{ where: 'tasks[1] (id "b").retries', message: 'must be >= 0' }]);
    expect(e.message).toContain('tasks[1] (id "b").retries must be >= 0');
  });

  it('rejects an unknown property such as "retrys"', () => {
    const e = rejection(spec([task('a', { retrys: 2 })]));
    expect(e.details).toEqual([{ where: 'tasks[0] (id "a").retrys', message: 'is not a known property' }]);
  });

  it('rejects an unknown trigger_rule', () => {
    const e = rejection(spec([task('a', { trigger_rule: 'all_sucess' })]));
    expect(e.details.length).toBeGreaterThan(0);
    for (const d of e.details) expect(d.where).toBe('tasks[0] (id "a").trigger_rule');
  });

  it('rejects a bad task id and names the field', () => {
    const e = rejection(spec([task('Segment Liver')]));
    expect(e.details.map((d) => d.where)).toContain('tasks[0] (id "Segment Liver").id');
  });

  it('rejects a missing field, an empty task list and a wrong spec_version at the top level', () => {
    const missing = rejection({ spec_version: 1, id: 'wf', data_form: {}, tasks: [task('a')] });
    expect(missing.details).toEqual([{ where: 'workflow_form', message: 'is required' }]);
    const empty = rejection(spec([]));
    expect(empty.details.map((d) => d.where)).toEqual(['tasks']);
    const version = rejection(spec([task('a')], { spec_version: 2 }));
    expect(version.details.map((d) => d.where)).toEqual(['spec_version']);
  });

  it('rejects a value that is not an object', () => {
    for (const bad of [null, 'spec', 42, []]) {
      const e = rejection(bad);
      expect(e.details.length).toBeGreaterThan(0);
    }
  });

  it('rejects an output_dir that leaves the workflow dir', () => {
    const e = rejection(spec([task('a', { output_dir: '../etc' })]));
    expect(e.details.map((d) => d.where)).toEqual(['tasks[0] (id "a").output_dir']);
  });
});

describe('validateDagSpec: forms', () => {
  it('rejects a workflow_form that is not a valid JSON Schema', () => {
    const e = rejection(spec([task('a')], { workflow_form: { type: 'objekt' } }));
    expect(e.details).toEqual([{ where: 'workflow_form', message: expect.stringContaining('is not a valid JSON Schema') }]);
    expect(e.message).toContain('workflow_form');
  });

  it('rejects a data_form that is not a valid JSON Schema', () => {
    const e = rejection(spec([task('a')], { data_form: { properties: 5 } }));
    expect(e.details).toEqual([{ where: 'data_form', message: expect.stringContaining('is not a valid JSON Schema') }]);
  });
});

describe('findCycle', () => {
  it('returns undefined for an acyclic graph and the cycle (first repeated last) otherwise', () => {
    expect(findCycle([{ id: 'a', upstream: [] }, { id: 'b', upstream: ['a'] }])).toBeUndefined();
    expect(findCycle([{ id: 'a', upstream: ['b'] }, { id: 'b', upstream: ['a'] }])).toEqual(['a', 'b', 'a']);
  });

  it('ignores upstreams that are not tasks (reported elsewhere)', () => {
    expect(findCycle([{ id: 'a', upstream: ['ghost'] }])).toBeUndefined();
  });
});

describe('validateDagSpec: large graphs', () => {
  it.each([
    ['listed in execution order', false],
    ['listed downstream first (deep walk)', true],
  ])('validates a 20,000-task chain %s without overflowing the stack', (_name, reversed) => {
    const started = performance.now();
    const out = validateDagSpec(spec(chain(20_000, reversed)));
    expect(out.tasks).toHaveLength(20_000);
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('finds a 20,000-task cycle without overflowing the stack', () => {
    const tasks = chain(20_000, true);
    tasks[tasks.length - 1]!.upstream = ['t0'];
    const cycle = findCycle(tasks as { id: string; upstream: string[] }[]);
    expect(cycle).toHaveLength(20_001);
    expect(cycle![0]).toBe(cycle![20_000]);
  });
});

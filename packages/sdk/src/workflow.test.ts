import { describe, expect, it } from 'vitest';
import { TesseraError, validateDagSpec, validateForm, type TaskSpec } from '@tessera/model';
import helloWorld from '../../../extensions/hello-world/workflows/hello-world.ts';
import { DEFAULT_DATA_FORM, defineOperator, defineWorkflow, Workflow } from './workflow.ts';

const fetchData = defineOperator({ name: 'get-input', builtin: 'get-input-data', level: 'batch' });
const segment = defineOperator({
  name: 'segment',
  title: 'Segment organs',
  container: { image: 'registry.example/seg:1.2', args: ['--fast'] },
  env: { MODEL: 'nnunet', DEVICE: 'cpu' },
  retries: 2,
  retryDelay: 30,
  retryBackoff: 'exponential',
  maxRetryDelay: 600,
  timeout: 3600,
  resources: { ramMb: 8000, cpuMillicores: 2000, gpuMemMb: 6000 },
});
const report = defineOperator({ name: 'report', process: { command: ['node', 'report.mjs'], files: ['report.mjs'] } });

function byId(tasks: TaskSpec[], id: string): TaskSpec {
  const t = tasks.find((x) => x.id === id);
  if (!t) throw new Error(`no task "${id}" in ${tasks.map((x) => x.id).join(', ')}`);
  return t;
}

function specError(wf: Workflow): TesseraError {
  try {
    wf.toDagSpec();
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe('TESSERA_INVALID_SPEC');
    return err as TesseraError;
  }
  throw new Error('expected toDagSpec to throw');
}

describe('defineWorkflow: compiling to the DAG spec', () => {
  it('compiles the workflow header, with the default data form and a workflow form that takes no parameters', () => {
    const wf = defineWorkflow({ id: 'liver-seg', title: 'Liver', description: 'Segments livers' });
    wf.task(report);
    const spec = wf.toDagSpec();
    expect(spec).toMatchObject({ spec_version: 1, id: 'liver-seg', title: 'Liver', description: 'Segments livers', clean_workflow_dir: false });
    expect(spec.data_form).toEqual(DEFAULT_DATA_FORM);
    expect(validateForm(spec, 'workflow_form', {})).toEqual({});
    // Without a declared form, a parameter is a typo, not a value to pass on as an env var.
    expect(() => validateForm(spec, 'workflow_form', { anything: 1 })).toThrow(/workflow_form.anything is not a known property/);
    expect(validateForm(spec, 'data_form', { dataset_name: 'ct', dataset_limit: 2 })).toEqual({ dataset_name: 'ct', dataset_limit: 2 });
    expect(() => validateForm(spec, 'data_form', { dataset_limit: 0 })).toThrow(/data_form\.dataset_limit/);
  });

  it('uses the given forms and cleanWorkflowDir', () => {
    const workflowForm = { type: 'object', properties: { threshold: { type: 'number', default: 0.5 } } };
    const dataForm = { type: 'object', properties: { identifiers: { type: 'array' } } };
    const wf = defineWorkflow({ id: 'w', workflowForm, dataForm, cleanWorkflowDir: true });
    wf.task(report);
    const spec = wf.toDagSpec();
    expect(spec.workflow_form).toEqual(workflowForm);
    expect(spec.data_form).toEqual(dataForm);
    expect(spec.clean_workflow_dir).toBe(true);
  });

  it('compiles an operator to a task: id, title, run method, env, level, output dir', () => {
    const wf = defineWorkflow({ id: 'w' });
    wf.task(fetchData);
    wf.task(report);
    const { tasks } = wf.toDagSpec();
    expect(byId(tasks, 'get-input')).toMatchObject({
      operator: 'get-input',
      builtin: 'get-input-data',
      level: 'batch',
      output_dir: 'get-input',
      upstream: [],
      trigger_rule: 'all_success',
    });
    const r = byId(tasks, 'report');
    expect(r.process).toEqual({ command: ['node', 'report.mjs'], files: ['report.mjs'] });
    expect(r.level).toBe('batch_element');
    expect(r.parallel_id).toBeUndefined();
    expect(r.input_dir).toBeUndefined();
    expect(r.container).toBeUndefined();
  });

  it('maps retries, backoff, timeout and resources to the spec fields', () => {
    const wf = defineWorkflow({ id: 'w' });
    wf.task(segment);
    const t = wf.toDagSpec().tasks[0]!;
    expect(t).toMatchObject({
      id: 'segment',
      title: 'Segment organs',
      container: { image: 'registry.example/seg:1.2', args: ['--fast'] },
      env: { MODEL: 'nnunet', DEVICE: 'cpu' },
      retries: 2,
      retry_delay_s: 30,
      retry_backoff: 'exponential',
      max_retry_delay_s: 600,
      timeout_s: 3600,
      resources: { ram_mb: 8000, cpu_millicores: 2000, gpu_mem_mb: 6000 },
    });
  });

  it('leaves retries at 0, fixed backoff, no timeout and no resource request when unset', () => {
    const wf = defineWorkflow({ id: 'w' });
    wf.task(report);
    const t = wf.toDagSpec().tasks[0]!;
    expect(t).toMatchObject({ retries: 0, retry_delay_s: 0, retry_backoff: 'fixed', env: {} });
    expect(t.timeout_s).toBeUndefined();
    expect(t.max_retry_delay_s).toBeUndefined();
    expect(t.resources ?? {}).toEqual({});
  });

  it('names a task `name-parallelId` when parallelId is given', () => {
    const wf = defineWorkflow({ id: 'w' });
    const a = wf.task(segment, { parallelId: 'liver' });
    const b = wf.task(segment, { parallelId: 'spleen' });
    expect(a).toEqual({ id: 'segment-liver', outputDir: 'segment-liver' });
    expect(b.id).toBe('segment-spleen');
    const { tasks } = wf.toDagSpec();
    expect(tasks.map((t) => [t.id, t.operator, t.parallel_id, t.output_dir])).toEqual([
      ['segment-liver', 'segment', 'liver', 'segment-liver'],
      ['segment-spleen', 'segment', 'spleen', 'segment-spleen'],
    ]);
  });

  it('`input` sets input_dir to the upstream output dir and adds the upstream once', () => {
    const wf = defineWorkflow({ id: 'w' });
    const data = wf.task(fetchData);
    const seg = wf.task(segment, { input: data });
    const withBoth = wf.task(report, { upstream: [data, seg], input: seg });
    const { tasks } = wf.toDagSpec();
    expect(byId(tasks, seg.id)).toMatchObject({ input_dir: 'get-input', upstream: ['get-input'] });
    expect(byId(tasks, withBoth.id)).toMatchObject({ input_dir: 'segment', upstream: ['get-input', 'segment'] });
  });

  it('`input` follows an overridden output dir; `inputDir` names a dir without adding an upstream', () => {
    const wf = defineWorkflow({ id: 'w' });
    const data = wf.task(fetchData, { overrides: { outputDir: 'dicoms' } });
    expect(data.outputDir).toBe('dicoms');
    wf.task(segment, { input: data });
    wf.task(report, { inputDir: 'nifti' });
    const { tasks } = wf.toDagSpec();
    expect(byId(tasks, 'get-input').output_dir).toBe('dicoms');
    expect(byId(tasks, 'segment').input_dir).toBe('dicoms');
    expect(byId(tasks, 'report')).toMatchObject({ input_dir: 'nifti', upstream: [] });
  });

  it('applies upstream and trigger rule options', () => {
    const wf = defineWorkflow({ id: 'w' });
    const a = wf.task(segment, { parallelId: 'a' });
    const b = wf.task(segment, { parallelId: 'b' });
    wf.task(report, { upstream: [a, b], triggerRule: 'all_done' });
    expect(byId(wf.toDagSpec().tasks, 'report')).toMatchObject({ upstream: ['segment-a', 'segment-b'], trigger_rule: 'all_done' });
  });

  it('applies overrides and env to one task only, not to the operator or other tasks', () => {
    const wf = defineWorkflow({ id: 'w' });
    wf.task(segment, {
      parallelId: 'gpu',
      overrides: { container: { image: 'registry.example/seg:2.0' }, retries: 5, timeout: 60, resources: { gpuMemMb: 12000 } },
      env: { DEVICE: 'cuda', EXTRA: '1' },
    });
    wf.task(segment, { parallelId: 'cpu' });
    const { tasks } = wf.toDagSpec();
    expect(byId(tasks, 'segment-gpu')).toMatchObject({
      container: { image: 'registry.example/seg:2.0' },
      retries: 5,
      timeout_s: 60,
      resources: { gpu_mem_mb: 12000 },
      env: { MODEL: 'nnunet', DEVICE: 'cuda', EXTRA: '1' },
    });
    expect(byId(tasks, 'segment-cpu')).toMatchObject({
      container: { image: 'registry.example/seg:1.2' },
      retries: 2,
      timeout_s: 3600,
      env: { MODEL: 'nnunet', DEVICE: 'cpu' },
    });
    expect(segment.definition.env).toEqual({ MODEL: 'nnunet', DEVICE: 'cpu' });
    expect(segment.definition.retries).toBe(2);
  });

  it('compiles the same spec every time', () => {
    const wf = defineWorkflow({ id: 'w' });
    wf.task(segment, { input: wf.task(fetchData) });
    expect(wf.toDagSpec()).toEqual(wf.toDagSpec());
  });
});

describe('defineWorkflow: invalid graphs', () => {
  it('rejects the same operator placed twice without parallelId, naming the task', () => {
    const wf = defineWorkflow({ id: 'twice' });
    wf.task(segment);
    wf.task(segment);
    const e = specError(wf);
    expect(e.details).toEqual([{ where: 'tasks[1] (id "segment")', message: expect.stringContaining('duplicate task id "segment"') }]);
    expect(e.message).toContain('workflow "twice"');
  });

  it('rejects an upstream that belongs to another workflow', () => {
    const other = defineWorkflow({ id: 'other' });
    const foreign = other.task(fetchData, { parallelId: 'elsewhere' });
    const wf = defineWorkflow({ id: 'w' });
    wf.task(segment, { input: foreign });
    const e = specError(wf);
    expect(e.details).toEqual([{ where: 'tasks[0] (id "segment")', message: 'unknown upstream task "get-input-elsewhere"' }]);
  });

  it('rejects an operator with no way to run', () => {
    const wf = defineWorkflow({ id: 'w' });
    wf.task(defineOperator({ name: 'nothing' }));
    expect(specError(wf).details[0]).toEqual({ where: 'tasks[0] (id "nothing")', message: expect.stringContaining('no way to run') });
  });

  it('rejects invalid values, naming the task and the spec field', () => {
    const wf = defineWorkflow({ id: 'w' });
    wf.task(defineOperator({ name: 'Bad Name', builtin: 'x' }));
    wf.task(report, { overrides: { retries: -1 } });
    const wheres = specError(wf).details.map((d) => d.where);
    expect(wheres).toContain('tasks[0] (id "Bad Name").id');
    expect(wheres).toContain('tasks[1] (id "report").retries');
  });

  it('rejects a workflow without tasks', () => {
    expect(specError(defineWorkflow({ id: 'empty' })).details).toEqual([{ where: 'tasks', message: expect.stringContaining('fewer than 1') }]);
  });
});

describe('the hello-world extension workflow', () => {
  it('compiles to a valid spec with 4 tasks and parallel transform tasks', () => {
    expect(helloWorld).toBeInstanceOf(Workflow);
    const spec = helloWorld.toDagSpec();
    expect(validateDagSpec(spec)).toEqual(spec);
    expect(spec.id).toBe('hello-world');
    expect(spec.tasks.map((t) => t.id)).toEqual(['greet', 'transform-upper', 'transform-reverse', 'summarize']);
    const upper = byId(spec.tasks, 'transform-upper');
    const reverse = byId(spec.tasks, 'transform-reverse');
    expect(upper).toMatchObject({ operator: 'transform', parallel_id: 'upper', input_dir: 'greet', upstream: ['greet'], env: { MODE: 'upper' } });
    expect(reverse).toMatchObject({ operator: 'transform', parallel_id: 'reverse', input_dir: 'greet', upstream: ['greet'], env: { MODE: 'reverse' } });
    expect(byId(spec.tasks, 'summarize')).toMatchObject({ upstream: ['transform-upper', 'transform-reverse'], trigger_rule: 'all_done' });
    expect(validateForm(spec, 'workflow_form', {})).toEqual({ message: 'Hello, Tessera!', repeat: 1 });
  });
});

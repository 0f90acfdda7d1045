import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TesseraError, validateDagSpec, type TaskSpec } from '@tessera/model';
import { createTestEngine, PROJECT, shellDag, type TestEngine } from '../__fixtures__/test-engine.ts';
import { prepareOutputDirs } from '../operator-contract.ts';

let engine: TestEngine | undefined;
afterEach(async () => {
  await engine?.close();
  engine = undefined;
});

const SERIES = ['1.2.3', '1.2.4'];

/**
 * A task whose first try leaves a file in each of its output dirs and fails; the second
 * try writes what it finds there to seen-<series>.txt (outside the output dirs) and succeeds.
 */
function retriedTask(extra: Record<string, unknown>): ReturnType<typeof shellDag> {
  const sh = [
    'if [ ! -e "$WORKFLOW_DIR/first-try-done" ]; then',
    '  for d in "$BATCHES_INPUT_DIR"/*; do echo stale > "$d/$OPERATOR_OUT_DIR/first-try.txt"; done',
    '  touch "$WORKFLOW_DIR/first-try-done"; exit 1',
    'fi',
    'for d in "$BATCHES_INPUT_DIR"/*; do ls -A "$d/$OPERATOR_OUT_DIR" > "$WORKFLOW_DIR/seen-$(basename "$d").txt"; echo fresh > "$d/$OPERATOR_OUT_DIR/second-try.txt"; done',
  ].join('\n');
  return shellDag('retried', [{ id: 'work', retries: 1, retry_delay_s: 0, sh, ...extra }]);
}

describe('output dirs before each try', () => {
  it('a retried try does not see what the first try left in its output dirs (the default)', async () => {
    engine = await createTestEngine();
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: retriedTask({}) }, conf: { data_form: { identifiers: SERIES } } });
    const run = await engine.scheduler.waitForRun(runs[0]!.id);
    const [task] = await engine.scheduler.store.getTasks(run.id);
    expect(run.state, run.reason ?? '').toBe('success');
    expect(task!.try_number).toBe(2);
    for (const uid of SERIES) {
      expect(await readFile(join(run.workflow_dir, `seen-${uid}.txt`), 'utf8')).toBe('');
      expect(await readdir(join(run.workflow_dir, 'batch', uid, 'work'))).toEqual(['second-try.txt']);
      // Nothing renamed aside stays behind.
      expect(await readdir(join(run.workflow_dir, 'batch', uid))).toEqual(['work']);
    }
  });

  it('a retried try of a task with keep_outputs sees the first try\'s files', async () => {
    engine = await createTestEngine();
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: retriedTask({ keep_outputs: true }) }, conf: { data_form: { identifiers: SERIES } } });
    const run = await engine.scheduler.waitForRun(runs[0]!.id);
    expect(run.state, run.reason ?? '').toBe('success');
    for (const uid of SERIES) {
      expect(await readFile(join(run.workflow_dir, `seen-${uid}.txt`), 'utf8')).toBe('first-try.txt\n');
    }
  });

  it('a run-level (batch) task gets an empty <output_dir> on a retry of the run, and other dirs stay', async () => {
    engine = await createTestEngine();
    const spec = shellDag('run-retry', [
      { id: 'keep', level: 'batch', sh: 'echo mine > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/kept.txt"' },
      {
        id: 'flaky',
        level: 'batch',
        upstream: ['keep'],
        sh: 'ls -A "$WORKFLOW_DIR/$OPERATOR_OUT_DIR" > "$WORKFLOW_DIR/seen.txt"; echo partial > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/partial.txt"; [ -e "$WORKFLOW_DIR/ok" ]',
      },
    ]);
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec }, conf: {} });
    const first = await engine.scheduler.waitForRun(runs[0]!.id);
    expect(first.state).toBe('failed');
    await writeFile(join(first.workflow_dir, 'ok'), '');
    await engine.scheduler.retryRun(first.id);
    const second = await engine.scheduler.waitForRun(first.id);
    expect(second.state, second.reason ?? '').toBe('success');
    expect(await readFile(join(second.workflow_dir, 'seen.txt'), 'utf8')).toBe('');
    expect(await readFile(join(second.workflow_dir, 'keep', 'kept.txt'), 'utf8')).toBe('mine\n');
  });
});

describe('prepareOutputDirs: only the task\'s own dirs, never through a symbolic link', () => {
  let dir: string;
  let outside: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-outputs-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  let n = 0;
  async function setup(task: Partial<TaskSpec> = {}): Promise<{ wd: string; spec: TaskSpec }> {
    n++;
    const wd = join(dir, `wd-${n}`);
    outside = join(dir, `outside-${n}`);
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'precious.txt'), 'keep me');
    for (const uid of SERIES) await mkdir(join(wd, 'batch', uid), { recursive: true });
    const spec = validateDagSpec({ spec_version: 1, id: 'x', workflow_form: {}, data_form: {}, tasks: [{ id: 'op', operator: 'op', output_dir: 'out', process: { command: ['true'] }, ...task }] }).tasks[0]!;
    return { wd, spec };
  }

  it('empties each series\' output dir and leaves the rest of the batch element alone', async () => {
    const { wd, spec } = await setup();
    for (const uid of SERIES) {
      await mkdir(join(wd, 'batch', uid, 'out', 'sub'), { recursive: true });
      await writeFile(join(wd, 'batch', uid, 'out', 'sub', 'old.txt'), 'old');
      await mkdir(join(wd, 'batch', uid, 'other'), { recursive: true });
      await writeFile(join(wd, 'batch', uid, 'other', 'input.dcm'), 'input');
    }
    await writeFile(join(wd, 'out-of-the-run.txt'), 'x');
    await prepareOutputDirs(wd, spec, SERIES);
    for (const uid of SERIES) {
      expect(await readdir(join(wd, 'batch', uid, 'out'))).toEqual([]);
      expect(await readFile(join(wd, 'batch', uid, 'other', 'input.dcm'), 'utf8')).toBe('input');
      expect((await readdir(join(wd, 'batch', uid))).sort()).toEqual(['other', 'out']);
    }
    expect(existsSync(join(wd, 'out-of-the-run.txt'))).toBe(true);
  });

  it('keeps them with keep_outputs', async () => {
    const { wd, spec } = await setup({ keep_outputs: true, level: 'batch' });
    await mkdir(join(wd, 'out'));
    await writeFile(join(wd, 'out', 'old.txt'), 'old');
    await prepareOutputDirs(wd, spec, SERIES);
    expect(await readdir(join(wd, 'out'))).toEqual(['old.txt']);
  });

  it('removes a symbolic link in the output dir\'s place, not its target', async () => {
    const { wd, spec } = await setup({ level: 'batch' });
    await symlink(outside, join(wd, 'out'));
    await prepareOutputDirs(wd, spec, SERIES);
    expect(await readdir(join(wd, 'out'))).toEqual([]);
    expect(await readFile(join(outside, 'precious.txt'), 'utf8')).toBe('keep me');
  });

  it('does not follow a symbolic link inside the output dir', async () => {
    const { wd, spec } = await setup({ level: 'batch' });
    await mkdir(join(wd, 'out'));
    await symlink(outside, join(wd, 'out', 'link'));
    await symlink(join(outside, 'precious.txt'), join(wd, 'out', 'file-link'));
    await prepareOutputDirs(wd, spec, SERIES);
    expect(await readdir(join(wd, 'out'))).toEqual([]);
    expect(await readFile(join(outside, 'precious.txt'), 'utf8')).toBe('keep me');
  });

  it('refuses an output dir reached through a symbolic link (a batch element made a link), touching nothing', async () => {
    const { wd, spec } = await setup();
    await mkdir(join(outside, 'out'));
    await writeFile(join(outside, 'out', 'precious.txt'), 'keep me too');
    await rm(join(wd, 'batch', SERIES[0]!), { recursive: true });
    await symlink(outside, join(wd, 'batch', SERIES[0]!));
    await expect(prepareOutputDirs(wd, spec, SERIES)).rejects.toThrow(/will not empty the output dir .*: a symbolic link is on its path/);
    expect(await readFile(join(outside, 'out', 'precious.txt'), 'utf8')).toBe('keep me too');
  });
});

describe('workflows that need data', () => {
  const getInputFirst = (extra: Record<string, unknown> = {}) =>
    shellDag('reads-series', [{ id: 'get-input', builtin: 'get-input', level: 'batch' }, { id: 'work', upstream: ['get-input'], sh: 'true' }], extra);

  it('a run of a workflow whose first task is get-input, without series, fails with "no series selected"', async () => {
    engine = await createTestEngine();
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: getInputFirst() }, conf: {} });
    const run = await engine.scheduler.waitForRun(runs[0]!.id);
    expect(run.state).toBe('failed');
    expect(run.reason).toMatch(/^no series selected: workflow "reads-series" needs data/);
    const tasks = await engine.scheduler.store.getTasks(run.id);
    expect(tasks.map((t) => [t.task_id, t.state, t.try_number])).toEqual([['get-input', 'canceled', 0], ['work', 'canceled', 0]]);
    // A retry would fail the same way: refused, saying why.
    const retry = await engine.scheduler.retryRun(run.id).catch((e: unknown) => e);
    expect(retry).toBeInstanceOf(TesseraError);
    expect((retry as Error).message).toMatch(/cannot be retried: no series selected/);
  });

  it('needs_data in the spec decides over the default: false runs without series, true fails', async () => {
    engine = await createTestEngine();
    const off = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: shellDag('no-data', [{ id: 'a', sh: 'true' }], { needs_data: false }) }, conf: {} });
    expect((await engine.scheduler.waitForRun(off.runs[0]!.id)).state).toBe('success');
    const plain = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: shellDag('plain', [{ id: 'a', sh: 'true' }]) }, conf: {} });
    expect((await engine.scheduler.waitForRun(plain.runs[0]!.id)).state).toBe('success');
    const on = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: shellDag('needs', [{ id: 'a', sh: 'true' }], { needs_data: true }) }, conf: {} });
    const failed = await engine.scheduler.waitForRun(on.runs[0]!.id);
    expect(failed.state).toBe('failed');
    expect(failed.reason).toMatch(/^no series selected/);
  });
});

describe('a process task\'s context', () => {
  it('gets MODELS_DIR (its project\'s, made on demand), an empty CUDA_VISIBLE_DEVICES and KAAPANA_PROJECT_IDENTIFIER', async () => {
    engine = await createTestEngine();
    const sh = 'echo "models=$MODELS_DIR cuda=[${CUDA_VISIBLE_DEVICES-unset}] project=$KAAPANA_PROJECT_IDENTIFIER" > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/env.txt"; echo w > "$MODELS_DIR/w.bin"';
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: shellDag('ctx', [{ id: 'a', level: 'batch', sh }]) }, conf: {} });
    const run = await engine.scheduler.waitForRun(runs[0]!.id);
    expect(run.state, run.reason ?? '').toBe('success');
    const models = join(engine.home, 'models', PROJECT.id);
    expect(await readFile(join(run.workflow_dir, 'a', 'env.txt'), 'utf8')).toBe(`models=${models} cuda=[] project=${PROJECT.id}\n`);
    expect(existsSync(join(models, 'w.bin'))).toBe(true);
  });
});

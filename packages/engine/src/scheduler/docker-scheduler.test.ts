import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BASE_IMAGE, OPERATOR_IMAGE, containersFor, dockerProblem, dockerSocket, skipDocker } from '../__fixtures__/docker-env.ts';
import { createTestEngine, PROJECT, shellDag, type TestEngine } from '../__fixtures__/test-engine.ts';
import { BuiltinRunner, CORE_BUILTINS } from '../runners/builtin/builtin-runner.ts';
import { DockerRunner } from '../runners/docker/docker-runner.ts';
import { ProcessRunner } from '../runners/process/process-runner.ts';

let engine: TestEngine;
afterEach(async () => {
  await engine?.close();
});

const withDocker = (homeId: string) => [
  new BuiltinRunner(CORE_BUILTINS),
  new DockerRunner({ homeId, socketPath: dockerSocket, killGraceSeconds: 1 }),
  new ProcessRunner({ homeId, killGraceSeconds: 1 }),
];

const sh = (script: string) => ({ container: { image: BASE_IMAGE, command: ['sh', '-c', script] } });

describe.skipIf(skipDocker)('scheduler with the Docker runner', () => {
  it('has a Docker engine with the test images', () => {
    expect(dockerProblem, dockerProblem).toBeUndefined();
  });

  it('runs a Kaapana-style processing container over the series of a run, in the container layout', { timeout: 60_000 }, async () => {
    engine = await createTestEngine({ runners: withDocker });
    const spec = shellDag('kaapana', [
      { id: 'stage', ...sh('for d in "$BATCHES_INPUT_DIR"/*; do echo "dicom of $(basename $d)" > "$d/$OPERATOR_OUT_DIR/image.dcm"; done') },
      { id: 'summarize', upstream: ['stage'], input_dir: 'stage', container: { image: OPERATOR_IMAGE }, resources: { ram_mb: 256 } },
    ]);
    const { runs } = await engine.scheduler.trigger({
      project: PROJECT,
      workflow: { spec },
      conf: { workflow_form: { message: 'hello container' }, data_form: { identifiers: ['1.2.3.1', '1.2.3.2'] } },
    });
    const run = await engine.scheduler.waitForRun(runs[0]!.id);
    const tasks = await engine.scheduler.store.getTasks(run.id);
    expect(run.state, JSON.stringify(tasks)).toBe('success');
    expect(tasks.map((t) => t.runner)).toEqual(['docker', 'docker']);
    const summary = JSON.parse(await readFile(join(run.workflow_dir, 'batch/1.2.3.2/summarize/summary.json'), 'utf8'));
    expect(summary.env.WORKFLOW_DIR).toBe(`/kaapana/mounted/data/${run.id}`);
    expect(summary.env.OPERATOR_IN_DIR).toBe('stage');
    expect(summary.input_files).toEqual(['image.dcm']);
    expect(JSON.stringify(summary)).toContain('hello container');
    expect(await containersFor(run.id)).toBe(0);
  });

  it('reports an out-of-memory kill as such and retries it', { timeout: 60_000 }, async () => {
    engine = await createTestEngine({ runners: withDocker });
    const spec = shellDag('oom', [
      { id: 'hungry', container: { image: OPERATOR_IMAGE }, env: { ALLOCATE_MB: '300' }, resources: { ram_mb: 64 }, retries: 1 },
    ]);
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec }, conf: { data_form: { identifiers: ['1.2'] } } });
    const run = await engine.scheduler.waitForRun(runs[0]!.id);
    const [task] = await engine.scheduler.store.getTasks(run.id);
    expect(run.state).toBe('failed');
    expect(task!.try_number).toBe(2);
    expect(task!.oom_killed).toBe(1);
    expect(task!.reason).toMatch(/out of memory.*64 MB/);
    expect(await containersFor(run.id)).toBe(0);
  });

  it('leaves no container behind after a timeout or a cancel', { timeout: 60_000 }, async () => {
    engine = await createTestEngine({ runners: withDocker });
    const slow = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: shellDag('slow', [{ id: 'sleep', timeout_s: 1, ...sh('sleep 60') }]) } });
    const timedOut = await engine.scheduler.waitForRun(slow.runs[0]!.id);
    expect((await engine.scheduler.store.getTasks(timedOut.id))[0]!.reason).toBe('timed out after 1 s (timeout_s of the operator)');
    expect(await containersFor(timedOut.id)).toBe(0);

    const long = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: shellDag('long', [{ id: 'sleep', ...sh('sleep 60') }, { id: 'next', upstream: ['sleep'], ...sh('true') }]) } });
    const runId = long.runs[0]!.id;
    for (let i = 0; i < 200 && (await containersFor(runId)) === 0; i++) await new Promise((r) => setTimeout(r, 50));
    await engine.scheduler.cancelRun(runId);
    const canceled = await engine.scheduler.waitForRun(runId);
    expect(canceled.state).toBe('canceled');
    expect((await engine.scheduler.store.getTasks(runId)).map((t) => t.state)).toEqual(['canceled', 'canceled']);
    expect(await containersFor(runId)).toBe(0);
  });

  it('re-attaches a container that still runs after the scheduler died, and runs it only once', { timeout: 60_000 }, async () => {
    engine = await createTestEngine({ runners: withDocker });
    const marks = join(engine.home, 'marks');
    await mkdir(marks, { recursive: true });
    await writeFile(join(marks, 'count'), '');
    const spec = shellDag('reattach', [
      { id: 'work', ...sh('echo started >> "$WORKFLOW_DIR/count"; sleep 2; echo "finished work"') },
      { id: 'after', upstream: ['work'], ...sh('echo after >> "$WORKFLOW_DIR/count"') },
    ]);
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec } });
    const runId = runs[0]!.id;
    for (let i = 0; i < 200 && (await containersFor(runId)) === 0; i++) await new Promise((r) => setTimeout(r, 50));
    // The scenario is a container the scheduler knew of: wait until its handle is committed
    // (it goes with the next commit, which a loaded machine can delay past a fixed pause).
    const handleOf = async () => (await engine.scheduler.store.getTasks(runId)).find((t) => t.task_id === 'work')?.handle;
    for (let i = 0; i < 200 && !(await handleOf()); i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 500));
    // No graceful close: as after kill -9, the container keeps running without its scheduler.
    const restarted = await engine.restart({ graceful: false });
    const run = await restarted.waitForRun(runId);
    expect(run.state).toBe('success');
    const tasks = await restarted.store.getTasks(runId);
    expect(tasks.map((t) => [t.task_id, t.state, t.try_number])).toEqual([['work', 'success', 1], ['after', 'success', 1]]);
    expect((await readFile(join(run.workflow_dir, 'count'), 'utf8')).trim().split('\n')).toEqual(['started', 'after']);
    expect(await readFile(join(engine.home, 'logs', runId, 'work.1.1.log'), 'utf8')).toContain('finished work');
    expect(await containersFor(runId)).toBe(0);
  });

  it('prefers the container of an operator that has both, and falls back to its process without an engine', { timeout: 60_000 }, async () => {
    const both = shellDag('both', [{ id: 'where', container: { image: BASE_IMAGE, command: ['sh', '-c', 'echo container'] }, process: { command: ['sh', '-c', 'echo process'] } }]);
    engine = await createTestEngine({ runners: withDocker });
    const a = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: both } });
    await engine.scheduler.waitForRun(a.runs[0]!.id);
    expect((await engine.scheduler.store.getTasks(a.runs[0]!.id))[0]!.runner).toBe('docker');
    await engine.close();
    engine = await createTestEngine();
    const b = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec: both } });
    await engine.scheduler.waitForRun(b.runs[0]!.id);
    const [task] = await engine.scheduler.store.getTasks(b.runs[0]!.id);
    expect(task!.runner).toBe('process');
    expect(await readFile(join(engine.home, 'logs', b.runs[0]!.id, 'where.1.1.log'), 'utf8')).toBe('process\n');
  });
});

import { existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { createTestEngine, PROJECT, shellDag, type TestEngine } from '../__fixtures__/test-engine.ts';
import { findProcessesByEnv } from '../runners/process/proc-table.ts';
import { removeExpiredWorkflowDirs } from './retention.ts';

let engine: TestEngine;
afterEach(async () => {
  await engine?.close();
});

async function runToEnd(spec: Parameters<TestEngine['scheduler']['trigger']>[0]['workflow']['spec'], conf: Record<string, unknown> = {}) {
  const { job, runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec }, conf });
  const ended = await engine.scheduler.waitForRun(runs[0]!.id);
  const tasks = await engine.scheduler.store.getTasks(ended.id);
  const state = Object.fromEntries(tasks.map((t) => [t.task_id, t.state]));
  return { job, run: ended, tasks, state };
}

describe('DagScheduler', () => {
  it('runs a chain in order with the operator contract and records every state in the DB', async () => {
    engine = await createTestEngine();
    const spec = shellDag('chain', [
      { id: 'a', sh: 'for d in "$BATCHES_INPUT_DIR"/*; do echo "$MESSAGE" > "$d/$OPERATOR_OUT_DIR/a.txt"; done' },
      { id: 'b', upstream: ['a'], input_dir: 'a', sh: 'for d in "$BATCHES_INPUT_DIR"/*; do cat "$d/$OPERATOR_IN_DIR/a.txt" | tr a-z A-Z > "$d/$OPERATOR_OUT_DIR/b.txt"; done' },
      { id: 'c', upstream: ['b'], level: 'batch', sh: 'ls "$BATCHES_INPUT_DIR" | wc -l > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/count.txt"' },
    ]);
    const { run, tasks, state } = await runToEnd(spec, { workflow_form: { message: 'hello' }, data_form: { identifiers: ['1.2.3', '1.2.4'] } });
    expect(run.state).toBe('success');
    expect(state).toEqual({ a: 'success', b: 'success', c: 'success' });
    expect(await readFile(join(run.workflow_dir, 'batch/1.2.4/b/b.txt'), 'utf8')).toBe('HELLO\n');
    expect((await readFile(join(run.workflow_dir, 'c/count.txt'), 'utf8')).trim()).toBe('2');
    const conf = JSON.parse(await readFile(join(run.workflow_dir, 'conf/conf.json'), 'utf8'));
    expect(conf).toMatchObject({ workflow_form: { message: 'hello' }, data_form: { identifiers: ['1.2.3', '1.2.4'] }, project_form: { name: 'admin' } });
    // a ended before b started, b before c.
    expect(tasks[0]!.ended_at!).toBeLessThanOrEqual(tasks[1]!.started_at!);
    expect(tasks[1]!.ended_at!).toBeLessThanOrEqual(tasks[2]!.started_at!);
    expect(tasks.every((t) => t.try_number === 1 && t.runner === 'process')).toBe(true);
  });

  it('applies trigger rules: upstream_failed, all_done, none_failed_min_one_success, one_success, skip propagation', async () => {
    engine = await createTestEngine();
    const spec = shellDag('rules', [
      { id: 'ok', sh: 'true' },
      { id: 'bad', sh: 'echo broken >&2; exit 2' },
      { id: 'skip', sh: 'exit 126' },
      { id: 'after-bad', upstream: ['bad'], sh: 'true' },
      { id: 'after-skip', upstream: ['skip'], sh: 'true' },
      { id: 'cleanup', upstream: ['ok', 'bad'], trigger_rule: 'all_done', sh: 'true' },
      { id: 'any', upstream: ['ok', 'bad'], trigger_rule: 'one_success', sh: 'true' },
      { id: 'nfmos', upstream: ['ok', 'skip'], trigger_rule: 'none_failed_min_one_success', sh: 'true' },
      { id: 'nf-bad', upstream: ['ok', 'bad'], trigger_rule: 'none_failed', sh: 'true' },
    ]);
    const { run, state, tasks } = await runToEnd(spec);
    expect(state).toEqual({
      ok: 'success',
      bad: 'failed',
      skip: 'skipped',
      'after-bad': 'upstream_failed',
      'after-skip': 'skipped',
      cleanup: 'success',
      any: 'success',
      nfmos: 'success',
      'nf-bad': 'upstream_failed',
    });
    expect(run.state).toBe('failed');
    expect(run.reason).toContain('task "bad" failed: exited with code 2');
    expect(tasks.find((t) => t.task_id === 'after-bad')!.reason).toContain('"bad"');
  });

  it('retries a failing task with exponential backoff, then succeeds', async () => {
    engine = await createTestEngine();
    const counter = join(engine.home, 'counter');
    const spec = shellDag('retry', [
      {
        id: 'flaky',
        retries: 3,
        retry_delay_s: 0.1,
        retry_backoff: 'exponential',
        sh: `n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}; date +%s%N >> ${counter}.times; echo "try $n"; [ $n -ge 3 ]`,
      },
    ]);
    const { run, tasks } = await runToEnd(spec);
    expect(run.state).toBe('success');
    expect(tasks[0]!.try_number).toBe(3);
    const times = (await readFile(`${counter}.times`, 'utf8')).trim().split('\n').map((x) => Number(BigInt(x) / 1_000_000n));
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(100);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(200); // doubled
    // Each try has its own log, and the exit status its launcher recorded beside it.
    const logs = await readdir(join(engine.home, 'logs', run.id));
    expect(logs.sort()).toEqual(['flaky.1.1.exit', 'flaky.1.1.log', 'flaky.1.2.exit', 'flaky.1.2.log', 'flaky.1.3.exit', 'flaky.1.3.log']);
    expect(await readFile(join(engine.home, 'logs', run.id, 'flaky.1.3.exit'), 'utf8')).toBe('{"code":0,"signal":null}\n');
  });

  it('enforces the execution timeout and leaves no process behind', async () => {
    engine = await createTestEngine();
    const spec = shellDag('timeout', [{ id: 'slow', timeout_s: 0.5, sh: 'sleep 30' }]);
    const t0 = Date.now();
    const { run, tasks } = await runToEnd(spec);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(run.state).toBe('failed');
    expect(tasks[0]!.reason).toBe('timed out after 0.5 s (timeout_s of the operator)');
    expect(findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => p.value.startsWith(run.id))).toEqual([]);
  });

  it('cancels a run: running tasks stopped, pending ones canceled (not skipped)', async () => {
    engine = await createTestEngine();
    const spec = shellDag('cancel', [
      { id: 'long', sh: 'sleep 30' },
      { id: 'next', upstream: ['long'], sh: 'true' },
    ]);
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec } });
    const runId = runs[0]!.id;
    await waitFor(async () => (await engine.scheduler.store.getTasks(runId))[0]!.state === 'running');
    await engine.scheduler.cancelRun(runId);
    const run = await engine.scheduler.waitForRun(runId);
    const tasks = await engine.scheduler.store.getTasks(runId);
    expect(run.state).toBe('canceled');
    expect(tasks.map((t) => t.state)).toEqual(['canceled', 'canceled']);
    await waitFor(async () => findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => p.value.startsWith(runId)).length === 0);
  });

  it('cancels a whole job of single_execution runs, one run per series', async () => {
    engine = await createTestEngine();
    const spec = shellDag('fanout', [{ id: 'work', sh: 'sleep 30' }]);
    const { job, runs } = await engine.scheduler.trigger({
      project: PROJECT,
      workflow: { spec },
      conf: { workflow_form: { single_execution: true }, data_form: { identifiers: ['1.1', '1.2', '1.3'] } },
    });
    expect(runs).toHaveLength(3);
    expect(runs.map((r) => JSON.parse(r.conf).data_form.identifiers)).toEqual([['1.1'], ['1.2'], ['1.3']]);
    await engine.scheduler.cancelJob(job.id);
    for (const r of runs) expect((await engine.scheduler.waitForRun(r.id)).state).toBe('canceled');
  });

  it('retries a failed run under the same id: failed tasks rerun, successful ones are kept', async () => {
    engine = await createTestEngine();
    const flag = join(engine.home, 'fixed');
    const spec = shellDag('retry-run', [
      { id: 'first', sh: `echo x >> ${engine.home}/first-runs` },
      { id: 'second', upstream: ['first'], sh: `test -f ${flag}` },
      { id: 'third', upstream: ['second'], sh: 'true' },
    ]);
    const { run, state } = await runToEnd(spec);
    expect(state).toEqual({ first: 'success', second: 'failed', third: 'upstream_failed' });
    await writeFile(flag, '');
    await engine.scheduler.retryRun(run.id);
    const again = await engine.scheduler.waitForRun(run.id);
    expect(again.state).toBe('success');
    expect(again.attempt).toBe(2);
    const tasks = await engine.scheduler.store.getTasks(run.id);
    expect(tasks.map((t) => [t.task_id, t.state, t.attempt])).toEqual([
      ['first', 'success', 1],
      ['second', 'success', 2],
      ['third', 'success', 2],
    ]);
    expect((await readFile(join(engine.home, 'first-runs'), 'utf8')).trim().split('\n')).toHaveLength(1);
    await expect(engine.scheduler.retryRun(run.id)).rejects.toThrow(/is success; only a failed or canceled run can be retried/);
  });

  it('bounds concurrency by the RAM pool and fails a task that can never fit at once', async () => {
    engine = await createTestEngine({ limits: { ramMb: 1000, parallelism: 8 } });
    const log = join(engine.home, 'spans');
    const task = (id: string) => ({ id, resources: { ram_mb: 600 }, sh: `echo "start $(date +%s%N)" >> ${log}; sleep 0.2; echo "end $(date +%s%N)" >> ${log}` });
    const { run } = await runToEnd(shellDag('pool', [task('a'), task('b'), task('c')]));
    expect(run.state).toBe('success');
    const events = (await readFile(log, 'utf8')).trim().split('\n').map((l) => l.split(' ')[0]);
    // With 600 MB each in a 1000 MB pool they never overlap: start,end,start,end,...
    expect(events).toEqual(['start', 'end', 'start', 'end', 'start', 'end']);

    const t0 = Date.now();
    const huge = await runToEnd(shellDag('huge', [{ id: 'big', resources: { ram_mb: 5000 }, sh: 'true' }]));
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(huge.tasks[0]!.state).toBe('failed');
    expect(huge.tasks[0]!.reason).toContain('requests 5000 MB of RAM but the RAM pool has 1000 MB');
    const gpu = await runToEnd(shellDag('gpu', [{ id: 'train', resources: { gpu_mem_mb: 8000 }, sh: 'true' }]));
    expect(gpu.tasks[0]!.reason).toContain('no GPU pool');
  });

  it('runs parallel branches concurrently up to the global parallelism', async () => {
    engine = await createTestEngine({ limits: { parallelism: 2 } });
    const log = join(engine.home, 'par');
    const task = (id: string) => ({ id, sh: `echo "start" >> ${log}; sleep 0.3; echo "end" >> ${log}` });
    const t0 = Date.now();
    const { run } = await runToEnd(shellDag('par', [task('a'), task('b'), task('c'), task('d')]));
    const took = Date.now() - t0;
    expect(run.state).toBe('success');
    expect(took).toBeGreaterThanOrEqual(600); // 4 tasks, 2 at a time, 0.3 s each
    expect(took).toBeLessThan(1100);
    const events = (await readFile(log, 'utf8')).trim().split('\n');
    expect(events.slice(0, 2)).toEqual(['start', 'start']);
  });

  it('fails a task at once when no runner can execute it, saying what it needs', async () => {
    engine = await createTestEngine();
    const spec = shellDag('needs-docker', [{ id: 'seg', container: { image: 'example/seg:1' } }]);
    const { run, tasks } = await runToEnd(spec);
    expect(run.state).toBe('failed');
    expect(tasks[0]!.reason).toContain('needs a container runner for image "example/seg:1", and no Docker engine is reachable');
  });

  it('rejects invalid form values naming the field, and creates nothing', async () => {
    engine = await createTestEngine();
    const spec = shellDag('forms', [{ id: 'a', sh: 'true' }], {
      workflow_form: { type: 'object', properties: { threshold: { type: 'number', maximum: 1 } }, required: ['threshold'], additionalProperties: false },
    });
    const err = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec }, conf: { workflow_form: { threshold: 3 } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe('TESSERA_INVALID_FORM');
    expect((err as TesseraError).details).toEqual([{ where: 'workflow_form.threshold', message: 'must be <= 1' }]);
    const missing = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec }, conf: { workflow_form: {} } }).catch((e: TesseraError) => e);
    expect((missing as TesseraError).details[0]).toEqual({ where: 'workflow_form.threshold', message: 'is required' });
    const traversal = await engine.scheduler
      .trigger({ project: PROJECT, workflow: { spec: shellDag('ids', [{ id: 'a', sh: 'true' }]) }, conf: { data_form: { identifiers: ['1.2.3', '../../etc'] } } })
      .catch((e: TesseraError) => e);
    expect((traversal as TesseraError).details).toEqual([
      { where: 'data_form.identifiers[1]', message: '"../../etc" is not a DICOM UID (digits and dots, no component with a leading zero, at most 64 characters)' },
    ]);
    expect((await engine.scheduler.store.listRuns({})).total).toBe(0);
  });

  it('a process task stopped by a graceful shutdown runs again as a new try with its reason, without using up a retry', async () => {
    engine = await createTestEngine();
    const marks = join(engine.home, 'marks');
    const spec = shellDag('restart', [
      { id: 'slow', sh: `echo start >> ${marks}; sleep 1; echo end >> ${marks}` },
      { id: 'after', upstream: ['slow'], sh: `echo after >> ${marks}` },
    ]);
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec } });
    const runId = runs[0]!.id;
    await waitFor(async () => existsSync(marks));
    const restarted = await engine.restart();
    const run = await restarted.waitForRun(runId);
    expect(run.state).toBe('success');
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual(['start', 'start', 'end', 'after']);
    const tasks = await restarted.store.getTasks(runId);
    expect(tasks.map((t) => [t.try_number, t.restarts])).toEqual([[2, 1], [1, 0]]);
    const why = 'the server was shut down while try 1 ran, which stopped it; try 2 runs the task again and does not use up a retry';
    expect(tasks[0]!.rerun_reason).toBe(why);
    expect(tasks[1]!.rerun_reason).toBeNull();
    expect(await readFile(join(engine.home, 'logs', runId, 'slow.1.1.log'), 'utf8')).toContain(why);
    expect(await readFile(join(engine.home, 'logs', runId, 'slow.1.2.log'), 'utf8')).toMatch(new RegExp(`^tessera: ${why.replace(/[.()]/g, '\\$&')}\n`));
  });

  it('a rerun after a restart does not count as a retry: retries: 1 still allows one retry after it', async () => {
    engine = await createTestEngine();
    const marks = join(engine.home, 'marks');
    const spec = shellDag('restart-retries', [{ id: 'bad', retries: 1, sh: `echo try >> ${marks}; sleep 0.5; exit 4` }]);
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec } });
    const runId = runs[0]!.id;
    await waitFor(async () => existsSync(marks));
    const restarted = await engine.restart();
    const run = await restarted.waitForRun(runId);
    expect(run.state).toBe('failed');
    const [task] = await restarted.store.getTasks(runId);
    // Try 1 stopped by the shutdown, try 2 the rerun (failed), try 3 its one retry (failed).
    expect([task!.state, task!.try_number, task!.restarts, task!.exit_code]).toEqual(['failed', 3, 1, 4]);
    expect(task!.rerun_reason).toBeNull(); // try 3 was a retry, not a rerun
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toHaveLength(3);
  });

  it('removes workflow dirs past their retention, keeping failed runs longer and their logs always', async () => {
    engine = await createTestEngine();
    const ok = await runToEnd(shellDag('ok', [{ id: 'a', sh: 'echo hi' }]));
    const bad = await runToEnd(shellDag('bad', [{ id: 'a', sh: 'exit 1' }]));
    const day = 24 * 3600 * 1000;
    const policy = { days: 7, failedDays: 30 };
    expect(await removeExpiredWorkflowDirs(engine.scheduler.store, policy, Date.now() + 8 * day)).toEqual([ok.run.id]);
    expect(existsSync(ok.run.workflow_dir)).toBe(false);
    expect(existsSync(bad.run.workflow_dir)).toBe(true);
    expect(existsSync(join(engine.home, 'logs', ok.run.id, 'a.1.1.log'))).toBe(true);
    expect(await removeExpiredWorkflowDirs(engine.scheduler.store, policy, Date.now() + 31 * day)).toEqual([bad.run.id]);
    await expect(engine.scheduler.retryRun(bad.run.id)).rejects.toThrow(/removed by the retention policy/);
  });

  it('cleans the workflow dir at the end when the workflow asks for it', async () => {
    engine = await createTestEngine();
    const { run } = await runToEnd(shellDag('clean', [{ id: 'a', sh: 'true' }], { clean_workflow_dir: true }));
    await waitFor(async () => !existsSync(run.workflow_dir));
    await waitFor(async () => (await engine.scheduler.store.getRun(run.id))!.dir_removed_at !== null);
  });

  it('runs built-in operators in-process as join points', async () => {
    engine = await createTestEngine();
    const spec = shellDag('join', [
      { id: 'a', sh: 'true' },
      { id: 'b', sh: 'true' },
      { id: 'join', builtin: 'empty', upstream: ['a', 'b'] },
    ]);
    const { run, tasks } = await runToEnd(spec);
    expect(run.state).toBe('success');
    expect(tasks[2]!.runner).toBe('builtin');
  });

  it('after a restart without the runner a task needs, fails that task with the reason instead of stalling', async () => {
    engine = await createTestEngine();
    const spec = shellDag('lost-runner', [{ id: 'work', sh: 'sleep 30' }, { id: 'after', upstream: ['work'], sh: 'true' }]);
    const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec } });
    const runId = runs[0]!.id;
    await waitFor(async () => (await engine.scheduler.store.getTasks(runId))[0]!.state === 'running');
    // Restart with only built-in operators: the process runner is gone.
    engine.scheduler.removeAllListeners();
    await engine.scheduler.close();
    const { BuiltinRunner: Builtin } = await import('../runners/builtin/builtin-runner.ts');
    const { DagScheduler } = await import('./dag-scheduler.ts');
    const { WorkflowStore } = await import('../store/workflow-store.ts');
    const restarted = new DagScheduler({ store: new WorkflowStore(engine.db), home: engine.home, runners: [new Builtin({})], limits: { parallelism: 4, ramMb: 1000, gpuMemMb: 0 } });
    await restarted.start();
    const run = await restarted.waitForRun(runId);
    const tasks = await restarted.store.getTasks(runId);
    expect(run.state).toBe('failed');
    expect(tasks.map((t) => t.state)).toEqual(['failed', 'upstream_failed']);
    expect(tasks[0]!.reason).toContain('cannot run here');
    await restarted.close();
    // The old try still runs (no runner here could stop it): end it for the next tests.
    for (const p of findProcessesByEnv('TESSERA_TASK_KEY').filter((x) => x.value.startsWith(runId))) process.kill(p.pid, 'SIGKILL');
  });

  it('refuses workflow_form keys that would set reserved environment variables of the tasks', async () => {
    engine = await createTestEngine();
    const spec = shellDag('env', [{ id: 'a', sh: 'true' }], { workflow_form: { type: 'object' } });
    const err = (await engine.scheduler
      .trigger({ project: PROJECT, workflow: { spec }, conf: { workflow_form: { node_options: '--require x', path: '/tmp', ok_name: 1 } } })
      .catch((e: unknown) => e)) as TesseraError;
    expect(err.code).toBe('TESSERA_INVALID_FORM');
    expect(err.details.map((d) => d.where)).toEqual(['workflow_form.node_options', 'workflow_form.path']);
    expect(err.details[0]!.message).toContain('NODE_OPTIONS');
  });

  it('lets only one of two concurrent retries of a run through', async () => {
    engine = await createTestEngine();
    const { run } = await runToEnd(shellDag('twice', [{ id: 'a', sh: `test -f ${engine.home}/ok` }]));
    await writeFile(join(engine.home, 'ok'), '');
    const results = await Promise.allSettled([engine.scheduler.retryRun(run.id), engine.scheduler.retryRun(run.id)]);
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    expect(((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as TesseraError).code).toBe('TESSERA_CONFLICT');
    expect((await engine.scheduler.waitForRun(run.id)).state).toBe('success');
    expect(engine.scheduler.usage().running).toBe(0);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

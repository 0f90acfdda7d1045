import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEngine, PROJECT, shellDag, type TestEngine } from '../__fixtures__/test-engine.ts';
import { findProcessesByEnv, pollUntil } from '../runners/process/proc-table.ts';

// ADR 18: the task a running try's success would queue is armed on the process runner's
// launcher, which starts it the moment that try exits with code 0, before the server has
// even read the exit. These run real processes through a real scheduler on a real SQLite file.

let engine: TestEngine;
afterEach(async () => {
  await engine?.close();
});

/** The pids of the running processes of a run's tries of `taskId`. */
function processesOf(runId: string, taskId: string): number[] {
  return findProcessesByEnv('TESSERA_TASK_KEY')
    .filter((p) => p.value.startsWith(`${runId}/${taskId}/`))
    .map((p) => p.pid);
}

/** Blocks this thread (the scheduler's) for `ms`: nothing the server does can happen meanwhile. */
function blockThread(ms: number): { from: number; to: number } {
  const from = Date.now();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  return { from, to: Date.now() };
}

async function trigger(spec: ReturnType<typeof shellDag>): Promise<string> {
  const { runs } = await engine.scheduler.trigger({ project: PROJECT, workflow: { spec }, conf: {} });
  return runs[0]!.id;
}

async function states(runId: string): Promise<Record<string, string>> {
  return Object.fromEntries((await engine.scheduler.store.getTasks(runId)).map((t) => [t.task_id, t.state]));
}

describe('arming: a chain\'s next task starts without a round trip through the server', () => {
  /**
   * a runs 1 s; once it runs (and b has had time to be armed) the scheduler's thread is
   * blocked for 2.5 s, through a's end. Returns when b started (ms) and the block.
   */
  async function startDuringBlock(b: Record<string, unknown>): Promise<{ bStart: number; block: { from: number; to: number }; runId: string }> {
    const stamp = join(engine.home, 'b.start');
    const runId = await trigger(shellDag('armed', [
      { id: 'a', sh: 'sleep 1', resources: { ram_mb: 10 } },
      { id: 'b', upstream: ['a'], sh: `date +%s%N > ${stamp}`, ...b },
    ]));
    expect(await pollUntil(() => processesOf(runId, 'a').length > 0, 10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    const block = blockThread(2500);
    const run = await engine.scheduler.waitForRun(runId);
    expect(run.state).toBe('success');
    return { bStart: Number(BigInt((await readFile(stamp, 'utf8')).trim()) / 1_000_000n), block, runId };
  }

  it('starts the next task while the scheduler\'s thread is blocked, and records both tries as usual', async () => {
    engine = await createTestEngine();
    const { bStart, block, runId } = await startDuringBlock({ resources: { ram_mb: 10 } });
    expect(bStart).toBeGreaterThan(block.from);
    expect(bStart).toBeLessThan(block.to);
    const tasks = await engine.scheduler.store.getTasks(runId);
    expect(tasks.map((t) => [t.task_id, t.state, t.try_number, t.exit_code])).toEqual([['a', 'success', 1, 0], ['b', 'success', 1, 0]]);
    // b's handle (its pid) was written with the commit that recorded a's end.
    expect(Number(tasks[1]!.handle)).toBeGreaterThan(0);
    expect(tasks[0]!.ended_at!).toBeLessThanOrEqual(tasks[1]!.started_at!);
  });

  it('a task that needs more RAM than the one before frees is not armed: it starts only once the server has seen that end', async () => {
    engine = await createTestEngine();
    const { bStart, block } = await startDuringBlock({ resources: { ram_mb: 20 } });
    expect(bStart).toBeGreaterThanOrEqual(block.to);
  });

  it('an armed task never runs when the task before it fails, or when the run is canceled', async () => {
    engine = await createTestEngine();
    const marks = join(engine.home, 'marks');
    const failing = await trigger(shellDag('fails', [
      { id: 'a', sh: 'sleep 0.5; exit 4' },
      { id: 'b', upstream: ['a'], sh: `echo b >> ${marks}` },
    ]));
    expect((await engine.scheduler.waitForRun(failing)).state).toBe('failed');
    expect(await states(failing)).toEqual({ a: 'failed', b: 'upstream_failed' });

    const canceled = await trigger(shellDag('canceled', [
      { id: 'a', sh: 'sleep 30' },
      { id: 'c', upstream: ['a'], sh: `echo c >> ${marks}` },
    ]));
    expect(await pollUntil(() => processesOf(canceled, 'a').length > 0, 10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    await engine.scheduler.cancelRun(canceled);
    expect((await engine.scheduler.waitForRun(canceled)).state).toBe('canceled');
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(marks)).toBe(false);
  });

  it('a timeout disarms what follows before it stops the task: a task that exits 0 on SIGTERM starts nothing', async () => {
    engine = await createTestEngine();
    const marks = join(engine.home, 'marks');
    const runId = await trigger(shellDag('timed', [
      { id: 'a', sh: 'trap "exit 0" TERM; sleep 30 & wait', timeout_s: 1 },
      { id: 'b', upstream: ['a'], sh: `echo b >> ${marks}; sleep 30` },
    ]));
    expect((await engine.scheduler.waitForRun(runId)).state).toBe('failed');
    expect(await states(runId)).toEqual({ a: 'failed', b: 'upstream_failed' });
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(marks)).toBe(false);
  });

  it('a task the launcher started before the server saw the end before it is stopped when the run is canceled, and its log says why', async () => {
    engine = await createTestEngine();
    const marks = join(engine.home, 'marks');
    const runId = await trigger(shellDag('late-cancel', [
      { id: 'a', sh: 'sleep 1' },
      { id: 'b', upstream: ['a'], sh: `echo b >> ${marks}; sleep 30` },
    ]));
    expect(await pollUntil(() => processesOf(runId, 'a').length > 0, 10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    // a ends, and b starts, while the scheduler's thread is blocked; the cancel comes before the scheduler reads that.
    blockThread(2000);
    const canceled = engine.scheduler.cancelRun(runId);
    expect((await canceled).state).toBe('canceled');
    expect(await readFile(marks, 'utf8')).toBe('b\n');
    expect(await pollUntil(() => processesOf(runId, 'b').length === 0, 10_000)).toBe(true);
    const log = join(engine.home, 'logs', runId, 'b.1.1.log');
    expect(await pollUntil(() => existsSync(log) && readFileSync(log, 'utf8').includes('stopped'), 5000)).toBe(true);
    expect(readFileSync(log, 'utf8')).toContain('tessera: this try was started the moment "a" ended, and stopped: the run was canceled');
    expect(await states(runId)).toEqual({ a: 'canceled', b: 'canceled' });
  });

  it('a one_success task is not armed to follow one upstream while another may queue it first', async () => {
    engine = await createTestEngine();
    const stamps = join(engine.home, 'stamps');
    const runId = await trigger(shellDag('either', [
      { id: 'slow', sh: `sleep 1.5; echo slow >> ${stamps}` },
      { id: 'fast', sh: 'sleep 0.3' },
      { id: 'c', upstream: ['slow', 'fast'], trigger_rule: 'one_success', sh: `echo c >> ${stamps}` },
    ]));
    expect((await engine.scheduler.waitForRun(runId)).state).toBe('success');
    // c ran once fast had succeeded, not after slow.
    expect((await readFile(stamps, 'utf8')).trim().split('\n')).toEqual(['c', 'slow']);
  });

  it('keeps the queue first come, first served: a task queued earlier for a slot starts before an armed one', async () => {
    engine = await createTestEngine({ limits: { parallelism: 1 } });
    const order = join(engine.home, 'order');
    const first = await trigger(shellDag('first', [
      { id: 'a', sh: `echo a >> ${order}; sleep 0.5` },
      { id: 'b', upstream: ['a'], sh: `echo b >> ${order}` },
    ]));
    expect(await pollUntil(() => processesOf(first, 'a').length > 0, 10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    const second = await trigger(shellDag('second', [{ id: 'c', sh: `echo c >> ${order}` }]));
    expect((await engine.scheduler.waitForRun(first)).state).toBe('success');
    expect((await engine.scheduler.waitForRun(second)).state).toBe('success');
    expect((await readFile(order, 'utf8')).trim().split('\n')).toEqual(['a', 'c', 'b']);
  });
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TaskSpec } from '@tessera/model';
import { makeTestLaunch } from '../__fixtures__/task-launch.ts';
import type { Runner, TaskLaunch } from './runner.ts';

export interface RunnerConformanceOptions {
  /** Creates a fresh runner (called again to simulate a server restart). */
  create: () => Promise<Runner>;
  /** How this runner runs a POSIX shell script: the `container` or `process` part of a task spec. */
  shellTask: (script: string) => Pick<TaskSpec, 'container' | 'process'>;
  /** Lists what the runner still runs for a task key (processes, containers), to prove nothing is left behind. */
  leftovers: (key: string) => Promise<number>;
  /** Generous per-test timeout in ms (containers start slower than processes). */
  timeoutMs?: number;
}

/**
 * The behaviour every runner must have. A new runner adds one test file that
 * calls this with its own factory; see process-runner.test.ts and docker-runner.test.ts.
 */
export function runnerConformance(name: string, options: RunnerConformanceOptions): void {
  const timeout = options.timeoutMs ?? 20_000;

  describe(`runner conformance: ${name}`, () => {
    let dir: string;
    let runner: Runner;

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), `tessera-${name}-`));
      runner = await options.create();
    });
    afterEach(async () => {
      await runner.close();
      await rm(dir, { recursive: true, force: true });
    });

    function launch(script: string, extra: Partial<TaskSpec> = {}, form: Record<string, unknown> = {}): Promise<TaskLaunch> {
      return makeTestLaunch({ dir, dagId: 'conformance', task: { ...options.shellTask(script), ...extra }, form });
    }

    it('runs a task to success with the operator contract and per-series outputs', { timeout }, async () => {
      const l = await launch(
        [
          'set -e',
          'test -f "$WORKFLOW_DIR/conf/conf.json"',
          'for d in "$BATCHES_INPUT_DIR"/*; do',
          '  echo "$RUN_ID $DAG_ID $TASK_ID $BATCH_NAME $THRESHOLD $FLAG $ITEMS" > "$d/$OPERATOR_OUT_DIR/result.txt"',
          'done',
          'echo "processed $(ls "$WORKFLOW_DIR/$BATCH_NAME" | wc -l) series"',
        ].join('\n'),
        {},
        { threshold: 0.5, flag: true, items: ['a', 'b'] },
      );
      const exec = await runner.start(l);
      const outcome = await exec.done;
      expect(outcome, await readFile(l.logFile, 'utf8')).toMatchObject({ state: 'success', exitCode: 0 });
      for (const uid of ['1.2.3.4', '1.2.3.5']) {
        const text = await readFile(join(l.workflowDir, 'batch', uid, 'out', 'result.txt'), 'utf8');
        expect(text.trim()).toBe(`${l.runId} conformance op batch 0.5 True ['a', 'b']`);
      }
      expect(await readFile(l.logFile, 'utf8')).toContain('processed 2 series');
    });

    it('reports exit code 126 as skipped and other codes as failed', { timeout }, async () => {
      const skipped = await (await runner.start(await launch('exit 126'))).done;
      expect(skipped.state).toBe('skipped');
      const failed = await (await runner.start(await launch('echo boom >&2; exit 3'))).done;
      expect(failed).toMatchObject({ state: 'failed', exitCode: 3 });
    });

    it('captures stdout and stderr in the log while the task runs', { timeout }, async () => {
      const l = await launch('echo to-stdout; echo to-stderr >&2; sleep 30');
      const exec = await runner.start(l);
      const deadline = Date.now() + 10_000;
      let log = '';
      while (Date.now() < deadline) {
        log = await readFile(l.logFile, 'utf8').catch(() => '');
        if (log.includes('to-stdout') && log.includes('to-stderr')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(log).toContain('to-stdout');
      expect(log).toContain('to-stderr');
      await runner.stop(exec.handle);
      expect((await exec.done).state).toBe('failed');
      expect(await options.leftovers(l.key)).toBe(0);
    });

    it('stops a running task and leaves nothing running', { timeout }, async () => {
      const l = await launch('trap "" TERM; sleep 60 & wait; sleep 60');
      const exec = await runner.start(l);
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      await runner.stop(exec.handle);
      const outcome = await exec.done;
      expect(outcome.state).toBe('failed');
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(await options.leftovers(l.key)).toBe(0);
      await runner.stop(exec.handle); // idempotent
    });

    it('after a restart, recovers a running task or stops it, never leaving it behind', { timeout }, async () => {
      const l = await launch('echo started; sleep 1; echo finished > "$WORKFLOW_DIR/marker"');
      const exec = await runner.start(l);
      await new Promise((r) => setTimeout(r, 200));
      const restarted = await options.create();
      try {
        const recovered = await restarted.recover(l, exec.handle);
        if (recovered) {
          expect((await recovered.done).state).toBe('success');
          expect(await readFile(join(l.workflowDir, 'marker'), 'utf8')).toContain('finished');
        }
        expect(await options.leftovers(l.key)).toBe(0);
      } finally {
        await restarted.close();
      }
      await exec.done;
    });

    it('sweeps what it started but no longer knows about', { timeout }, async () => {
      const keep = await launch('sleep 30');
      const orphan = await launch('sleep 30');
      const a = await runner.start(keep);
      await runner.start(orphan);
      await new Promise((r) => setTimeout(r, 300));
      expect(await runner.sweep(new Set([keep.key]))).toBeGreaterThanOrEqual(1);
      expect(await options.leftovers(orphan.key)).toBe(0);
      expect(await options.leftovers(keep.key)).toBeGreaterThan(0);
      await runner.stop(a.handle);
      expect(await options.leftovers(keep.key)).toBe(0);
    });

    it('writes a clear error to the log when the task cannot start', { timeout }, async () => {
      const l = await launch('true');
      const bad: TaskLaunch = { ...l, task: { ...l.task, ...options.shellTask('true') } };
      if (bad.task.process) bad.task.process = { command: ['/nonexistent/tessera-no-such-binary'] };
      if (bad.task.container) bad.task.container = { ...bad.task.container, command: ['/nonexistent/tessera-no-such-binary'] };
      // A runner may refuse at start (rejects) or report the failure as the try's outcome.
      const outcome = await runner.start(bad).then(
        (exec) => exec.done,
        (err: Error) => ({ state: 'failed', reason: err.message }),
      );
      expect(outcome.state).toBe('failed');
      expect(outcome.reason ?? '').not.toBe('');
      await writeFile(join(dir, 'x'), ''); // dir still writable: the runner did not break the workspace
    });
  });
}

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTestLaunch } from '../../__fixtures__/task-launch.ts';
import { runnerConformance } from '../runner-conformance.ts';
import type { TaskLaunch } from '../runner.ts';
import { ProcessRunner } from './process-runner.ts';
import { findProcessesByEnv, isAlive, parentOf, pollUntil } from './proc-table.ts';
import { readExitStatus, statusFileOf } from './process-recovery.ts';

const homeId = `test-${process.pid}`;

runnerConformance('process', {
  create: async () => new ProcessRunner({ homeId, killGraceSeconds: 1 }),
  shellTask: (script) => ({ process: { command: ['sh', '-c', script] } }),
  leftovers: async (key) => findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => p.value === key).length,
});

// A dead server, as its launchers see it: their stdin closes (close() ends it) and nobody
// reads their events. The tries' ends must still be known to the next server.
describe('process runner: tries that outlive the server', () => {
  let dir: string;
  const runners: ProcessRunner[] = [];
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.close();
    for (const p of findProcessesByEnv('TESSERA_TASK_KEY').filter((x) => x.value.includes(`-${process.pid}-`))) process.kill(p.pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  async function startAndLoseServer(script: string): Promise<{ launch: TaskLaunch; pid: number; marks: string }> {
    dir = await mkdtemp(join(tmpdir(), 'tessera-outlive-'));
    const marks = join(dir, 'marks');
    const launch = await makeTestLaunch({ dir, dagId: 'outlive', task: { process: { command: ['sh', '-c', script.replaceAll('MARKS', marks)] } } });
    const first = new ProcessRunner({ homeId, killGraceSeconds: 1 });
    const exec = await first.start(launch);
    await first.close(); // the launcher's stdin closes, as when the server dies
    return { launch, pid: Number(exec.handle), marks };
  }

  function restarted(): ProcessRunner {
    const r = new ProcessRunner({ homeId, killGraceSeconds: 1 });
    runners.push(r);
    return r;
  }

  it('records the exit status of a try that ended while the server was down, and reports it at the restart without running it again', async () => {
    const { launch, pid, marks } = await startAndLoseServer('echo ran >> MARKS; sleep 0.3; exit 3');
    expect(await pollUntil(() => !isAlive(pid), 5000)).toBe(true);
    expect(await pollUntil(() => readExitStatus(statusFileOf(launch.logFile)) !== undefined, 2000)).toBe(true);
    expect(readExitStatus(statusFileOf(launch.logFile))).toEqual({ code: 3, signal: null });
    const exec = await restarted().recover(launch, String(pid));
    expect(exec).toBeDefined();
    expect(await exec!.done).toEqual({ state: 'failed', exitCode: 3, reason: 'exited with code 3' });
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual(['ran']);
    expect(await readFile(launch.logFile, 'utf8')).toContain('this try ended while the server was down (exit code 3)');
  });

  it('re-attaches a try that still runs under its launcher and reports its end', async () => {
    const { launch, pid, marks } = await startAndLoseServer('echo start >> MARKS; sleep 1; echo end >> MARKS');
    const exec = await restarted().recover(launch, undefined);
    expect(exec?.handle).toBe(String(pid));
    expect(await exec!.done).toEqual({ state: 'success', exitCode: 0 });
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual(['start', 'end']);
    expect(await readFile(launch.logFile, 'utf8')).toContain(`it was re-attached (pid ${pid}) and runs on`);
  });

  it('a re-attached try can be stopped (cancel, timeout)', async () => {
    const { launch, pid } = await startAndLoseServer('sleep 30');
    const runner = restarted();
    const exec = await runner.recover(launch, undefined);
    await runner.stop(exec!.handle);
    expect(isAlive(pid)).toBe(false);
    expect((await exec!.done).state).toBe('failed');
  });

  it('stops a try whose launcher was killed too (its end could not be recorded) so that it runs again', async () => {
    const { launch, pid, marks } = await startAndLoseServer('echo start >> MARKS; sleep 30; echo end >> MARKS');
    const launcher = parentOf(pid)!;
    process.kill(launcher, 'SIGKILL');
    await pollUntil(() => !isAlive(launcher) && parentOf(pid) !== launcher, 5000);
    expect(await restarted().recover(launch, String(pid))).toBeUndefined();
    expect(isAlive(pid)).toBe(false);
    expect(readExitStatus(statusFileOf(launch.logFile))).toBeUndefined();
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual(['start']);
  });
});

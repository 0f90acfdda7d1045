import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { requireSandbox, skipSandbox } from '../../__fixtures__/sandbox-env.ts';
import { makeTestLaunch } from '../../__fixtures__/task-launch.ts';
import { runnerConformance } from '../runner-conformance.ts';
import type { TaskLaunch } from '../runner.ts';
import { ProcessRunner } from './process-runner.ts';
import { probeBwrap } from './sandbox.ts';
import { findProcessesByEnv, isAlive, parentOf, pollUntil } from './proc-table.ts';
import { readExitStatus, statusFileOf } from './process-recovery.ts';

const homeId = `test-${process.pid}`;
const LAUNCHERS = ['native', 'node'] as const;

// Both launchers (ADR 17): the native one must build here (CI has a compiler), the Node one is the fallback.
for (const launcher of LAUNCHERS) {
  runnerConformance(`process (${launcher} launcher)`, {
    create: async () => new ProcessRunner({ homeId, killGraceSeconds: 1, launcher }),
    shellTask: (script) => ({ process: { command: ['sh', '-c', script] } }),
    leftovers: async (key) => findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => p.value === key).length,
  });
}

// The same behaviour in bubblewrap's sandbox: its monitor leads the group and gives the exit code.
describe.skipIf(skipSandbox)('sandboxed', () => {
  runnerConformance('process in a sandbox', {
    create: async () => new ProcessRunner({ homeId, killGraceSeconds: 1, sandbox: requireSandbox() }),
    shellTask: (script) => ({ process: { command: ['sh', '-c', script] } }),
    leftovers: async (key) => findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => p.value === key).length,
  });
});

describe.skipIf(skipSandbox)('process runner: the sandbox of a task', () => {
  let dir: string;
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('sees its workflow dir (read-write) and its extension folder (read-only), not its neighbours, and gets SIGTERM with its grace', { timeout: 20_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-sandbox-'));
    const ext = join(dir, 'ext');
    await mkdir(ext);
    await writeFile(join(ext, 'step.sh'), 'echo from-the-extension\n');
    await writeFile(join(dir, 'neighbour.txt'), 'not yours\n');
    const launch = await makeTestLaunch({
      dir, dagId: 'sandboxed',
      task: {
        process: {
          command: ['sh', '-c', [
            'out="$WORKFLOW_DIR/batch/1.2.3.4/$OPERATOR_OUT_DIR"',
            'sh step.sh > "$out/step.txt"',
            `if cat ${join(dir, 'neighbour.txt')} 2>/dev/null; then echo seen; else echo hidden; fi > "$out/probe.txt"`,
            // The folder above holds only the mount points of the sandbox's own folders.
            `echo $(ls ${dir}) >> "$out/probe.txt"`,
            'if touch "$EXTENSION_DIR/written" 2>/dev/null; then echo writable; else echo read-only; fi >> "$out/probe.txt"',
            'echo "home=$HOME pwd=$(pwd) processes=$(ls /proc | grep -c "^[0-9]")" >> "$out/probe.txt"',
            'trap \'echo cleaned-up > "$out/term.txt"; exit 0\' TERM',
            'echo ready > "$out/ready.txt"',
            'sleep 30 & wait',
          ].join('\n')],
        },
      },
    });
    const sandboxed: typeof launch = { ...launch, extensionDir: ext };
    const runner = new ProcessRunner({ homeId, killGraceSeconds: 5, sandbox: requireSandbox() });
    try {
      const exec = await runner.start(sandboxed);
      const out = join(launch.workflowDir, 'batch', '1.2.3.4', 'out');
      expect(await pollUntil(() => isReady(out), 10_000), await readFile(launch.logFile, 'utf8').catch(() => 'no log')).toBe(true);
      await runner.stop(exec.handle);
      expect(await exec.done, 'the trap ran and decided the exit code').toEqual({ state: 'success', exitCode: 0 });
      expect(await readFile(join(out, 'term.txt'), 'utf8')).toBe('cleaned-up\n');
      expect(await readFile(join(out, 'step.txt'), 'utf8')).toBe('from-the-extension\n');
      const probe = (await readFile(join(out, 'probe.txt'), 'utf8')).trim().split('\n');
      expect(probe.slice(0, 3)).toEqual(['hidden', `ext ${launch.runId}`, 'read-only']);
      // Its own PID namespace: the sandbox's init, the shell, sleep, ls and grep.
      expect(probe[3]).toMatch(new RegExp(`^home=/tmp pwd=${ext} processes=[1-6]$`));
    } finally {
      await runner.close();
    }
  });

  it('hides the server\'s own folders where a system folder would show them (a TESSERA_HOME under /etc or /usr)', { timeout: 20_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-hidden-'));
    // Stands in for a home under a system folder: one that exists and is not empty here.
    const shown = ['/etc/default', '/usr/share/doc', '/etc/ssl/certs'].find((d) => existsSync(d) && readdirSync(d).length > 0)!;
    const probe = probeBwrap({ hidden: [shown] });
    expect(probe.reason).toBeUndefined();
    const launch = await makeTestLaunch({ dir, dagId: 'hidden', task: { process: { command: ['sh', '-c', `ls -A ${shown} | wc -l > "$WORKFLOW_DIR/seen.txt"; ls -A /usr/bin | wc -l >> "$WORKFLOW_DIR/seen.txt"`] } } });
    const runner = new ProcessRunner({ homeId, sandbox: probe.sandbox! });
    try {
      expect(await (await runner.start(launch)).done).toEqual({ state: 'success', exitCode: 0 });
      const [hidden, usrBin] = (await readFile(join(launch.workflowDir, 'seen.txt'), 'utf8')).trim().split('\n').map(Number);
      expect(hidden, `${shown} is empty inside`).toBe(0);
      expect(usrBin, 'the rest of the system is there').toBeGreaterThan(10);
    } finally {
      await runner.close();
    }
  });

  it('fails a try at once with the refusal when local processes may not run here, and says so in its log', async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-refused-'));
    const launch = await makeTestLaunch({ dir, dagId: 'refused', task: { process: { command: ['sh', '-c', 'echo ran > "$WORKFLOW_DIR/ran"'] } } });
    const runner = new ProcessRunner({ homeId, refuse: 'no sandbox here (a test)' });
    const exec = await runner.start(launch);
    expect(await exec.done).toEqual({ state: 'failed', reason: 'no sandbox here (a test)' });
    expect(await readFile(launch.logFile, 'utf8')).toContain('tessera: no sandbox here (a test)');
    await expect(readFile(join(launch.workflowDir, 'ran'))).rejects.toMatchObject({ code: 'ENOENT' });
    await runner.close();
  });
});

function isReady(out: string): boolean {
  try {
    return readFileSync(join(out, 'ready.txt'), 'utf8') === 'ready\n';
  } catch {
    return false;
  }
}

// A dead server, as its launchers see it: their stdin closes (close() ends it) and nobody
// reads their events. The tries' ends must still be known to the next server.
for (const [sandboxed, launcher] of [[false, 'native'], [false, 'node'], [true, 'native']] as const) describe.skipIf(sandboxed && skipSandbox)(`process runner: tries that outlive the server (${launcher} launcher${sandboxed ? ', sandboxed' : ''})`, () => {
  let dir: string;
  const runners: ProcessRunner[] = [];
  afterEach(async () => {
    for (const r of runners.splice(0)) await r.close();
    for (const p of findProcessesByEnv('TESSERA_TASK_KEY').filter((x) => x.value.includes(`-${process.pid}-`))) process.kill(p.pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  // The marks are kept in the workflow dir: the one folder a sandboxed try may write.
  async function startAndLoseServer(script: string): Promise<{ launch: TaskLaunch; pid: number; marks: string }> {
    dir = await mkdtemp(join(tmpdir(), 'tessera-outlive-'));
    const launch = await makeTestLaunch({ dir, dagId: 'outlive', task: { process: { command: ['sh', '-c', script.replaceAll('MARKS', '"$WORKFLOW_DIR/marks"')] } } });
    const first = new ProcessRunner(options());
    const exec = await first.start(launch);
    await first.close(); // the launcher's stdin closes, as when the server dies
    return { launch, pid: Number(exec.handle), marks: join(launch.workflowDir, 'marks') };
  }

  function options(): ConstructorParameters<typeof ProcessRunner>[0] {
    return { homeId, killGraceSeconds: 1, launcher, ...(sandboxed ? { sandbox: requireSandbox() } : {}) };
  }

  function restarted(): ProcessRunner {
    const r = new ProcessRunner(options());
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
    // It has begun (a sandbox takes a few ms more to start) before its launcher goes.
    expect(await pollUntil(() => existsSync(marks), 5000)).toBe(true);
    const launcher = parentOf(pid)!;
    process.kill(launcher, 'SIGKILL');
    await pollUntil(() => !isAlive(launcher) && parentOf(pid) !== launcher, 5000);
    expect(await restarted().recover(launch, String(pid))).toBeUndefined();
    expect(isAlive(pid)).toBe(false);
    expect(readExitStatus(statusFileOf(launch.logFile))).toBeUndefined();
    expect((await readFile(marks, 'utf8')).trim().split('\n')).toEqual(['start']);
  });
});

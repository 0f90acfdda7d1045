import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BASE_IMAGE, containersFor, dockerSocket, skipDocker } from '../../engine/src/__fixtures__/docker-env.ts';
import { launchChromium, skipBrowser } from '../../../tests/fixtures/browser.ts';
import { runCli } from '../../cli/src/__fixtures__/run-cli.ts';
import { findProcessesByEnv, groupOf, isAlive, parentOf } from '../../engine/src/runners/process/proc-table.ts';
import { waitFor, writeShellExtension } from './__fixtures__/test-server.ts';
import { killHard, startServerProcess, type ServerProcess } from './__fixtures__/server-process.ts';

let home: string;
let servers: ServerProcess[] = [];
afterEach(async () => {
  for (const s of servers) await killHard(s);
  servers = [];
  if (home) await rm(home, { recursive: true, force: true });
});

type TaskJson = { id: string; state: string; try_number: number; restarts: number; rerun_reason: string | null; exit_code: number | null };

/**
 * A server on this test's home with the process runner only; its answers are checked against
 * the HTTP contract. Its tasks run unsandboxed: they leave marks and wait for release files in
 * this test's folder, outside their workflow dir. Sandboxed tries that outlive their server are
 * tested in the engine (process-runner.test.ts).
 */
function serverEnv(ext: string): Record<string, string> {
  return { TESSERA_HOME: join(home, 'home'), TESSERA_EXTENSIONS_DIRS: ext, TESSERA_RUNNERS: 'process', TESSERA_CHECK_ANSWERS: '1', TESSERA_SANDBOX: 'off', TESSERA_ALLOW_UNSANDBOXED: '1' };
}

async function lines(file: string): Promise<string[]> {
  return (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

async function runEnd(url: string, runId: string) {
  return waitFor(async () => {
    const r = await json(`${url}/api/runs/${runId}`);
    return ['success', 'failed', 'canceled'].includes(r.state) ? r : undefined;
  }, 40_000, `run ${runId} to end after restart`);
}

async function json(url: string, init?: RequestInit) {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json' } });
  return res.json() as Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describe('crash safety (kill -9 of a real server process)', () => {
  it('kill -9 while process tasks run: at the restart they are re-attached and run once to their end, nothing lost, nothing reported twice', { timeout: 90_000 }, async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-crash-'));
    const ext = join(home, 'ext');
    const marks = join(home, 'marks');
    // The slow tries wait for this file: they are sure to run through the kill and the restart.
    const release = join(home, 'release');
    await writeShellExtension(ext, 'crash', [{
      id: 'crash',
      tasks: [
        { id: 'first', sh: `echo first >> ${marks}` },
        { id: 'slow', upstream: ['first'], sh: `echo slow-start >> ${marks}; while [ ! -f ${release} ]; do sleep 0.1; done; echo slow-end >> ${marks}` },
        { id: 'parallel', upstream: ['first'], sh: `echo parallel >> ${marks}` },
        { id: 'last', upstream: ['slow', 'parallel'], sh: `echo last >> ${marks}` },
      ],
    }]);
    const env = serverEnv(ext);
    const a = await startServerProcess(env);
    servers.push(a);
    // Several runs at once, so that the crash hits runs in different states.
    const jobs = await Promise.all([1, 2, 3].map(() => json(`${a.url}/api/jobs`, { method: 'POST', body: JSON.stringify({ workflow: 'crash' }) })));
    const runIds: string[] = jobs.map((j) => j.runs[0].id);
    const ours = () => findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => runIds.some((id) => p.value.startsWith(id)));
    await waitFor(async () => (await lines(marks)).filter((l) => l === 'slow-start').length === 3, 15_000, 'the slow tasks started');
    // The tries' main processes (each leads its own process group; their `sleep`s come and go).
    const before = ours().filter((p) => groupOf(p.pid) === p.pid);
    expect(before.length).toBe(3);

    await killHard(a);
    const b = await startServerProcess(env);
    servers.push(b);
    // Re-attached, not stopped: the same processes still run.
    expect(before.filter((p) => isAlive(p.pid)).length).toBe(before.length);
    await writeFile(release, '');
    const ended = await Promise.all(runIds.map((id) => runEnd(b.url, id)));
    for (const r of ended) {
      expect(r.state).toBe('success');
      expect(r.tasks.map((t: TaskJson) => [t.state, t.try_number, t.restarts, t.rerun_reason])).toEqual(Array(4).fill(['success', 1, 0, null]));
    }
    const marked = await lines(marks);
    const count = (s: string) => marked.filter((l) => l === s).length;
    expect([count('first'), count('slow-start'), count('slow-end'), count('parallel'), count('last')]).toEqual([3, 3, 3, 3, 3]);
    expect(ours()).toEqual([]);
    const log = await (await fetch(`${b.url}/api/runs/${runIds[0]}/tasks/slow/log`)).text();
    expect(log).toMatch(/the server restarted while this try ran; it was re-attached \(pid \d+\) and runs on/);
  });

  it('kill -9 while a process task runs, which ends while the server is down: its recorded end is taken at the restart, it does not run again', { timeout: 90_000 }, async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-crash-ended-'));
    const ext = join(home, 'ext');
    const marks = join(home, 'marks');
    const release = join(home, 'release');
    await writeShellExtension(ext, 'ends-down', [{
      id: 'ends-down',
      tasks: [
        { id: 'work', sh: `echo work >> ${marks}; while [ ! -f ${release} ]; do sleep 0.1; done; echo "work done"` },
        { id: 'skipper', upstream: ['work'], sh: `echo skipper >> ${marks}; while [ ! -f ${release}2 ]; do sleep 0.1; done; exit 126` },
        { id: 'after', upstream: ['skipper'], trigger_rule: 'all_done', sh: `echo after >> ${marks}` },
      ],
    }]);
    const env = serverEnv(ext);
    const a = await startServerProcess(env);
    servers.push(a);
    const job = await json(`${a.url}/api/jobs`, { method: 'POST', body: JSON.stringify({ workflow: 'ends-down' }) });
    const runId: string = job.runs[0].id;
    await waitFor(async () => (await lines(marks)).includes('work'), 15_000, 'work started');
    await killHard(a);
    // The task ends while no server runs: its launcher records how.
    await writeFile(release, '');
    await waitFor(async () => (await readdir(join(home, 'home', 'logs', runId))).includes('work.1.1.exit'), 10_000, 'the exit status of work');
    expect(await readFile(join(home, 'home', 'logs', runId, 'work.1.1.exit'), 'utf8')).toBe('{"code":0,"signal":null}\n');
    // skipper was armed to start the moment work exited 0 (ADR 18); its launcher dropped that when the server died.
    await new Promise((r) => setTimeout(r, 300));
    expect(await lines(marks)).toEqual(['work']);
    const b = await startServerProcess(env);
    servers.push(b);
    await waitFor(async () => (await lines(marks)).includes('skipper'), 15_000, 'skipper started');
    await killHard(b);
    await writeFile(`${release}2`, '');
    await waitFor(async () => (await readdir(join(home, 'home', 'logs', runId))).includes('skipper.1.1.exit'), 10_000, 'the exit status of skipper');
    const c = await startServerProcess(env);
    servers.push(c);
    const run = await runEnd(c.url, runId);
    expect(run.state).toBe('success');
    expect(run.tasks.map((t: TaskJson) => [t.id, t.state, t.try_number, t.restarts, t.exit_code])).toEqual([
      ['work', 'success', 1, 0, 0],
      ['skipper', 'skipped', 1, 0, 126],
      ['after', 'success', 1, 0, 0],
    ]);
    expect(await lines(marks)).toEqual(['work', 'skipper', 'after']); // each ran exactly once
    const log = await (await fetch(`${c.url}/api/runs/${runId}/tasks/work/log`)).text();
    expect(log).toContain('work done');
    expect(log).toContain('this try ended while the server was down (exit code 0); its end was recorded at the restart');
  });

  it('kill -9 of the server and of the launcher with its task: the task runs again as try 2, with the reason in the API, the CLI and the log', { timeout: 90_000 }, async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-crash-lost-'));
    const ext = join(home, 'ext');
    const marks = join(home, 'marks');
    await writeShellExtension(ext, 'lost', [{
      id: 'lost',
      tasks: [{ id: 'work', sh: `echo "$TESSERA_TASK_KEY" >> ${marks}; [ -s ${marks}.done ] || sleep 60; echo done >> ${marks}.done` }],
    }]);
    const env = serverEnv(ext);
    const a = await startServerProcess(env);
    servers.push(a);
    const job = await json(`${a.url}/api/jobs`, { method: 'POST', body: JSON.stringify({ workflow: 'lost' }) });
    const runId: string = job.runs[0].id;
    await waitFor(async () => (await lines(marks)).length === 1, 15_000, 'work started');
    const main = findProcessesByEnv('TESSERA_TASK_KEY').find((p) => p.value.startsWith(runId) && groupOf(p.pid) === p.pid)!;
    const launcher = parentOf(main.pid)!;
    expect(launcher).toBeGreaterThan(1);
    await killHard(a);
    // What a power loss or the kernel's OOM killer might do: the launcher and the task die too.
    process.kill(launcher, 'SIGKILL');
    process.kill(-main.pid, 'SIGKILL');
    await waitFor(async () => !isAlive(main.pid) && !isAlive(launcher), 5000, 'launcher and task gone');
    await writeFile(`${marks}.done`, 'x\n'); // the next try ends at once
    const b = await startServerProcess(env);
    servers.push(b);
    const run = await runEnd(b.url, runId);
    expect(run.state).toBe('success');
    const why = 'the server stopped while try 1 ran (it was killed or crashed) and the end of that try is not known; try 2 runs the task again and does not use up a retry';
    expect(run.tasks.map((t: TaskJson) => [t.state, t.try_number, t.restarts, t.rerun_reason])).toEqual([['success', 2, 1, why]]);
    // Two tries, each visible: its own key (attempt.try) and its own log.
    expect(await lines(marks)).toEqual([`${runId}/work/1.1`, `${runId}/work/1.2`]);
    expect(await (await fetch(`${b.url}/api/runs/${runId}/tasks/work/log?try=1`)).text()).toContain(why);
    expect(await (await fetch(`${b.url}/api/runs/${runId}/tasks/work/log`)).text()).toMatch(new RegExp(`^tessera: ${escape(why)}`));
    const show = await runCli({ url: b.url, args: ['show', runId] });
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/work\s+success\s+2 \(rerun\)/);
    expect(show.stdout).toContain(`rerun of work: ${why}`);
    if (skipBrowser) return; // outside CI only (browser.ts): in CI a missing Chromium fails
    // The run page says it too.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${b.url}/runs/${runId}`);
      const note = page.getByRole('note', { name: 'Rerun' });
      await note.waitFor({ timeout: 15_000 });
      expect(await note.textContent()).toBe(`Rerun: ${why}`);
      await page.getByText(/^process · try 2 · exit 0/).waitFor();
    } finally {
      await browser.close();
    }
  });

  it('a graceful stop (SIGTERM) stops local processes and the next start runs them again as a new try that says why', async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-stop-'));
    const ext = join(home, 'ext');
    await writeShellExtension(ext, 'stoppable', [{ id: 'stoppable', tasks: [{ id: 'work', sh: 'sleep 1; echo done' }] }]);
    const env = serverEnv(ext);
    const a = await startServerProcess(env);
    servers.push(a);
    const job = await json(`${a.url}/api/jobs`, { method: 'POST', body: JSON.stringify({ workflow: 'stoppable' }) });
    const runId = job.runs[0].id;
    await waitFor(async () => (await json(`${a.url}/api/runs/${runId}`)).tasks[0].state === 'running');
    const exited = new Promise((r) => a.child.once('exit', r));
    a.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => p.value.startsWith(runId))).toEqual([]);
    const b = await startServerProcess(env);
    servers.push(b);
    const run = await waitFor(async () => {
      const r = await json(`${b.url}/api/runs/${runId}`);
      return r.state === 'success' ? r : undefined;
    });
    // The stopped try is not hidden: the task ran again as try 2, which says why.
    expect([run.tasks[0].try_number, run.tasks[0].restarts]).toEqual([2, 1]);
    expect(run.tasks[0].rerun_reason).toMatch(/^the server was shut down while try 1 ran, which stopped it; try 2 runs the task again/);
  });

  it.skipIf(skipDocker)('re-attaches a container task after kill -9 and runs it only once', { timeout: 90_000 }, async () => {
    expect(dockerSocket, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeDefined();
    home = await mkdtemp(join(tmpdir(), 'tessera-crash-docker-'));
    const ext = join(home, 'ext');
    await writeShellExtension(ext, 'crash-docker', [{
      id: 'crash-docker',
      tasks: [
        { id: 'work', container: { image: BASE_IMAGE, command: ['sh', '-c', 'echo started >> "$WORKFLOW_DIR/count"; sleep 4; echo "work done"'] } },
        { id: 'after', upstream: ['work'], container: { image: BASE_IMAGE, command: ['sh', '-c', 'echo after >> "$WORKFLOW_DIR/count"'] } },
      ],
    }]);
    const env = { TESSERA_HOME: join(home, 'home'), TESSERA_EXTENSIONS_DIRS: ext, TESSERA_RUNNERS: 'docker,process', DOCKER_HOST: `unix://${dockerSocket}` };
    const a = await startServerProcess(env);
    servers.push(a);
    const job = await json(`${a.url}/api/jobs`, { method: 'POST', body: JSON.stringify({ workflow: 'crash-docker' }) });
    const runId: string = job.runs[0].id;
    // Running, not only created: its first line is written (a container killed between create and start is run again, as try 2).
    await waitFor(async () => {
      const r = await json(`${a.url}/api/runs/${runId}`);
      return r.tasks[0].state === 'running' && (await containersFor(runId)) > 0 && (await readFile(join(r.workflow_dir, 'count'), 'utf8').catch(() => '')).includes('started');
    }, 20_000, 'container running');
    await killHard(a);
    expect(await containersFor(runId)).toBe(1); // the container outlives the server
    const b = await startServerProcess(env);
    servers.push(b);
    const run = await waitFor(async () => {
      const r = await json(`${b.url}/api/runs/${runId}`);
      return ['success', 'failed', 'canceled'].includes(r.state) ? r : undefined;
    }, 40_000, 'run to end after restart');
    expect(run.state).toBe('success');
    expect(run.tasks.map((t: { try_number: number; runner: string }) => [t.try_number, t.runner])).toEqual([[1, 'docker'], [1, 'docker']]);
    expect((await readFile(join(run.workflow_dir, 'count'), 'utf8')).trim().split('\n')).toEqual(['started', 'after']);
    const log = await (await fetch(`${b.url}/api/runs/${runId}/tasks/work/log`)).text();
    expect(log).toContain('work done');
    expect(await containersFor(runId)).toBe(0);
  });

  it('refuses a second server on the same home instead of stopping the first one\'s tasks', { timeout: 60_000 }, async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-twice-'));
    const ext = join(home, 'ext');
    await writeShellExtension(ext, 'busy', [{ id: 'busy', tasks: [{ id: 'work', sh: 'sleep 2; echo done' }] }]);
    const env = { TESSERA_HOME: join(home, 'home'), TESSERA_EXTENSIONS_DIRS: ext, TESSERA_RUNNERS: 'process' };
    const a = await startServerProcess(env);
    servers.push(a);
    const job = await json(`${a.url}/api/jobs`, { method: 'POST', body: JSON.stringify({ workflow: 'busy' }) });
    const runId = job.runs[0].id;
    await waitFor(async () => (await json(`${a.url}/api/runs/${runId}`)).tasks[0].state === 'running');
    const second = await startServerProcess(env).then(
      () => 'started',
      (err: Error) => err.message,
    );
    expect(second).toContain('another Tessera server');
    const run = await waitFor(async () => {
      const r = await json(`${a.url}/api/runs/${runId}`);
      return r.state === 'success' ? r : undefined;
    });
    expect(run.tasks[0].try_number).toBe(1);
  });
});

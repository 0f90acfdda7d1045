import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BASE_IMAGE, containersFor, dockerSocket, skipDocker } from '../../engine/src/__fixtures__/docker-env.ts';
import { findProcessesByEnv, isAlive } from '../../engine/src/runners/process/proc-table.ts';
import { waitFor, writeShellExtension } from './__fixtures__/test-server.ts';
import { killHard, startServerProcess, type ServerProcess } from './__fixtures__/server-process.ts';

let home: string;
let servers: ServerProcess[] = [];
afterEach(async () => {
  for (const s of servers) await killHard(s);
  servers = [];
  if (home) await rm(home, { recursive: true, force: true });
});

async function json(url: string, init?: RequestInit) {
  const res = await fetch(url, { ...init, headers: { 'content-type': 'application/json' } });
  return res.json() as Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

describe('crash safety (kill -9 of a real server process)', () => {
  it('resumes every run after kill -9: the running process task runs again, nothing lost, nothing reported twice, nothing left running', { timeout: 90_000 }, async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-crash-'));
    const ext = join(home, 'ext');
    const marks = join(home, 'marks');
    // The killed tries sleep long enough that only the restarted server can end them,
    // however slowly it starts; the tries after the restart are quick.
    const delay = join(home, 'delay');
    await writeFile(delay, '60');
    await writeShellExtension(ext, 'crash', [{
      id: 'crash',
      tasks: [
        { id: 'first', sh: `echo first >> ${marks}` },
        { id: 'slow', upstream: ['first'], sh: `echo slow-start >> ${marks}; sleep $(cat ${delay}); echo slow-end >> ${marks}` },
        { id: 'parallel', upstream: ['first'], sh: `echo parallel >> ${marks}` },
        { id: 'last', upstream: ['slow', 'parallel'], sh: `echo last >> ${marks}` },
      ],
    }]);
    const env = { TESSERA_HOME: join(home, 'home'), TESSERA_EXTENSIONS_DIRS: ext, TESSERA_RUNNERS: 'process' };
    const a = await startServerProcess(env);
    servers.push(a);
    // Several runs at once, so that the crash hits runs in different states.
    const jobs = await Promise.all([1, 2, 3].map(() => json(`${a.url}/api/jobs`, { method: 'POST', body: JSON.stringify({ workflow: 'crash' }) })));
    const runIds: string[] = jobs.map((j) => j.runs[0].id);
    await waitFor(async () => {
      const runs = await Promise.all(runIds.map((id) => json(`${a.url}/api/runs/${id}`)));
      return runs.every((r) => r.tasks.find((t: { id: string }) => t.id === 'slow').state === 'running');
    }, 15_000, 'slow tasks running');
    // "running" is committed before the launcher has started the process: wait until the processes are there.
    const ours = () => findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => runIds.some((id) => p.value.startsWith(id)));
    await waitFor(async () => ours().length >= 3, 10_000, 'the slow tasks\' processes').catch(() => undefined);
    const orphansBefore = ours();
    expect(orphansBefore.length).toBeGreaterThanOrEqual(3);

    await killHard(a);
    await writeFile(delay, '1');
    const b = await startServerProcess(env);
    servers.push(b);
    const ended = await Promise.all(runIds.map((id) => waitFor(async () => {
      const r = await json(`${b.url}/api/runs/${id}`);
      return ['success', 'failed', 'canceled'].includes(r.state) ? r : undefined;
    }, 40_000, `run ${id} to end after restart`)));
    for (const r of ended) {
      expect(r.state).toBe('success');
      expect(r.tasks.map((t: { state: string }) => t.state)).toEqual(['success', 'success', 'success', 'success']);
      // A rerun after a crash does not use up a retry.
      expect(r.tasks.map((t: { try_number: number }) => t.try_number)).toEqual([1, 1, 1, 1]);
    }
    const lines = (await readFile(marks, 'utf8')).trim().split('\n');
    const count = (s: string) => lines.filter((l) => l === s).length;
    expect(count('first')).toBe(3);
    expect(count('parallel')).toBe(3);
    expect(count('last')).toBe(3);
    expect(count('slow-start')).toBe(6); // killed once, run again
    expect(count('slow-end')).toBe(3); // the killed tries never finished
    // The old tries' processes were stopped, not left to run beside the new ones.
    // (A killed process whose new parent has not reaped it yet is a zombie: not running.)
    expect(orphansBefore.filter((p) => isAlive(p.pid))).toEqual([]);
    expect(findProcessesByEnv('TESSERA_TASK_KEY').filter((p) => runIds.some((id) => p.value.startsWith(id)))).toEqual([]);
    const log = await (await fetch(`${b.url}/api/runs/${runIds[0]}/tasks/slow/log`)).text();
    expect(log).toContain('the server stopped while this task ran; running it again');
  });

  it('a graceful stop (SIGTERM) stops local processes and the next start runs them again', async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-stop-'));
    const ext = join(home, 'ext');
    await writeShellExtension(ext, 'stoppable', [{ id: 'stoppable', tasks: [{ id: 'work', sh: 'sleep 1; echo done' }] }]);
    const env = { TESSERA_HOME: join(home, 'home'), TESSERA_EXTENSIONS_DIRS: ext, TESSERA_RUNNERS: 'process' };
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
    expect(run.tasks[0].try_number).toBe(1);
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
    await waitFor(async () => (await json(`${a.url}/api/runs/${runId}`)).tasks[0].state === 'running' && (await containersFor(runId)) > 0, 20_000, 'container running');
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

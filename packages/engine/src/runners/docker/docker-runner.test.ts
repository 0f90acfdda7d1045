import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestLaunch } from '../../__fixtures__/task-launch.ts';
import { BASE_IMAGE, OPERATOR_IMAGE, docker, dockerProblem, skipDocker } from '../../__fixtures__/docker-env.ts';
import { runnerConformance } from '../runner-conformance.ts';
import type { TaskLaunch } from '../runner.ts';
import { DOCKER_LABELS, DockerRunner } from './docker-runner.ts';

const skip = skipDocker;
const problem = dockerProblem;
const homeId = `test-${process.pid}`;

describe('docker runner prerequisites', () => {
  it.skipIf(skip)('has a Docker engine with the test images', () => {
    expect(problem, problem).toBeUndefined();
  });
});

async function leftovers(key: string): Promise<number> {
  const list = await docker!.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.key}=${key}`] } });
  return list.length;
}

describe.skipIf(skip)('docker runner', () => {
  runnerConformance('docker', {
    create: async () => new DockerRunner({ homeId, killGraceSeconds: 1 }),
    shellTask: (script) => ({ container: { image: BASE_IMAGE, command: ['sh', '-c', script] } }),
    leftovers,
    timeoutMs: 30_000,
  });

  describe('Docker specifics', () => {
    let dir: string;
    let runner: DockerRunner;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tessera-docker-'));
      runner = new DockerRunner({ homeId, killGraceSeconds: 1 });
    });
    afterAll(async () => {
      await runner?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    function launch(task: Record<string, unknown>, form: Record<string, unknown> = {}): Promise<TaskLaunch> {
      return makeTestLaunch({ dir, dagId: 'docker-specifics', task, form });
    }

    it('runs a Kaapana-style operator image unchanged, with per-series outputs', async () => {
      const l = await launch(
        { container: { image: OPERATOR_IMAGE }, input_dir: 'dicoms', output_dir: 'summary' },
        { message: 'hello from the form', threshold: 0.5 },
      );
      for (const uid of ['1.2.3.4', '1.2.3.5']) {
        await mkdir(join(l.workflowDir, 'batch', uid, 'dicoms'), { recursive: true });
        await writeFile(join(l.workflowDir, 'batch', uid, 'dicoms', `${uid}-1.dcm`), 'x');
      }
      const outcome = await (await runner.start(l)).done;
      const log = await readFile(l.logFile, 'utf8');
      expect(outcome, log).toMatchObject({ state: 'success', exitCode: 0 });
      expect(log).toContain('done: 2 series');
      for (const uid of ['1.2.3.4', '1.2.3.5']) {
        const summary = JSON.parse(await readFile(join(l.workflowDir, 'batch', uid, 'summary', 'summary.json'), 'utf8'));
        expect(summary.env).toMatchObject({
          WORKFLOW_DIR: `/kaapana/mounted/data/${l.runId}`,
          BATCH_NAME: 'batch',
          OPERATOR_IN_DIR: 'dicoms',
          OPERATOR_OUT_DIR: 'summary',
          BATCHES_INPUT_DIR: `/kaapana/mounted/data/${l.runId}/batch`,
          RUN_ID: l.runId,
        });
        expect(summary.input_files).toEqual([`${uid}-1.dcm`]);
        expect(summary.workflow_form_env).toEqual({ message: 'hello from the form', threshold: '0.5' });
        expect(summary.conf.data_form.identifiers).toEqual(['1.2.3.4', '1.2.3.5']);
      }
      expect(await leftovers(l.key)).toBe(0);
    });

    it('maps the exit code of an operator image (126 = skipped)', async () => {
      const l = await launch({ container: { image: OPERATOR_IMAGE }, env: { EXIT_CODE: '126' } });
      expect((await (await runner.start(l)).done).state).toBe('skipped');
    });

    it('turns the RAM request into a memory limit and the CPU request into shares', async () => {
      const l = await launch({
        container: { image: BASE_IMAGE, command: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; echo listed; sleep 30'] },
        resources: { ram_mb: 64, cpu_millicores: 500 },
      });
      const exec = await runner.start(l);
      const info = await docker!.getContainer(exec.handle).inspect();
      expect(info.HostConfig).toMatchObject({ Memory: 64 * 1024 * 1024, MemorySwap: 64 * 1024 * 1024, CpuShares: 512 });
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && !(await readFile(l.logFile, 'utf8')).includes('listed')) await new Promise((r) => setTimeout(r, 50));
      expect(await readFile(l.logFile, 'utf8')).toContain(String(64 * 1024 * 1024));
      await runner.stop(exec.handle);
      expect((await exec.done).reason).toMatch(/stopped/);
    });

    it('reports an over-allocation as oomKilled, with a reason about memory', async () => {
      const l = await launch({ container: { image: OPERATOR_IMAGE }, env: { ALLOCATE_MB: '300' }, resources: { ram_mb: 64 } });
      const outcome = await (await runner.start(l)).done;
      expect(outcome).toMatchObject({ state: 'failed', oomKilled: true, exitCode: 137 });
      expect(outcome.reason).toMatch(/out of memory.*64 MB/);
      expect(await readFile(l.logFile, 'utf8')).toContain('tessera: out of memory');
      expect(await leftovers(l.key)).toBe(0);
    });

    it('fails with a clear reason for an image the engine does not have, leaving no container', async () => {
      const l = await launch({ container: { image: 'tessera-test/no-such-image:0', image_pull_policy: 'Never' } });
      const outcome = await (await runner.start(l)).done;
      expect(outcome.state).toBe('failed');
      expect(outcome.reason).toMatch(/image "tessera-test\/no-such-image:0" is not on the Docker engine at unix:\/\//);
      expect(await readFile(l.logFile, 'utf8')).toContain('is not on the Docker engine');
      expect(await leftovers(l.key)).toBe(0);
    });

    it('recovers a container that ended while the server was down: exit code, full log, removed', async () => {
      const l = await launch({ container: { image: BASE_IMAGE, command: ['sh', '-c', 'echo line-1; echo line-2 >&2; exit 3'] } });
      // Started as a previous server would have, then left alone until it exited.
      const c = await docker!.createContainer({
        Image: BASE_IMAGE,
        Entrypoint: l.task.container!.command,
        Labels: { [DOCKER_LABELS.home]: homeId, [DOCKER_LABELS.key]: l.key },
      });
      await c.start();
      await c.wait();
      await writeFile(l.logFile, 'line-1\n'); // what the previous server had copied
      const restarted = new DockerRunner({ homeId });
      const exec = await restarted.recover(l, undefined);
      expect(exec?.handle).toBe(c.id);
      expect(await exec!.done).toMatchObject({ state: 'failed', exitCode: 3 });
      // Rewritten from the engine's copy, not appended to; stdout and stderr may interleave either way.
      expect((await readFile(l.logFile, 'utf8')).split('\n').sort()).toEqual(['', 'line-1', 'line-2']);
      expect(await leftovers(l.key)).toBe(0);
      expect(await restarted.recover(l, c.id)).toBeUndefined();
    });
  });
});

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forgetImage, freePort, pushImage, registryProblem, startRegistry, type TestRegistry } from '../../../../engine/src/__fixtures__/test-registry.ts';
import { BASE_IMAGE, docker, dockerProblem, dockerSocket, skipDocker } from '../../../../engine/src/__fixtures__/docker-env.ts';
import { appRunnerConformance } from '../app-runner-conformance.ts';
import { DockerAppRunner } from './docker-app-runner.ts';

describe('docker app runner prerequisites', () => {
  it.skipIf(skipDocker)('has a Docker engine with the test images', () => {
    expect(dockerProblem, dockerProblem).toBeUndefined();
  });
});

describe.skipIf(skipDocker)('docker app runner', () => {
  appRunnerConformance('docker', {
    create: async () => new DockerAppRunner({ socketPath: dockerSocket!, stopGraceSeconds: 1 }),
    appSpec: (script) => ({ container: { image: BASE_IMAGE, command: ['sh', '-c', script], port: 8000 } }),
    leftovers: async (appId) => (await docker!.listContainers({ all: true, filters: { label: [`tessera.app=${appId}`] } })).length,
    graceMs: 1000,
    runsInExtensionDir: false,
    timeoutMs: 40_000,
  });
});

describe.skipIf(skipDocker || registryProblem !== undefined)('docker app runner: registry images', () => {
  let registry: TestRegistry | undefined;
  let work = '';
  beforeAll(async () => {
    registry = await startRegistry();
    work = await mkdtemp(join(tmpdir(), 'tessera-app-pull-'));
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const launch = (image: string, appId: string, hostPort: number) => ({
    appId,
    spec: { container: { image, command: ['sh', '-c', 'sleep 30'], port: 8000 } },
    extDir: work,
    hostPort,
    env: {},
    logFile: join(work, appId, 'app.log'),
    instanceDir: join(work, appId),
  });

  it('pulls a missing image at start (IfNotPresent), with the pull in the app log', { timeout: 60_000 }, async () => {
    const image = `${registry!.host}/tessera-test/app-pull:1`;
    await pushImage(docker!, BASE_IMAGE, image);
    const runner = new DockerAppRunner({ socketPath: dockerSocket!, stopGraceSeconds: 1, credentials: () => ({}) });
    const handle = await runner.start(launch(image, 'pull-ok', await freePort()));
    try {
      expect(await readFile(join(work, 'pull-ok', 'app.log'), 'utf8')).toMatch(/^tessera: .*pull/im);
    } finally {
      await runner.stop(handle);
      await forgetImage(docker!, image);
    }
  });

  it('a refused pull rejects the start with the reason (the instance\'s failure reason)', { timeout: 60_000 }, async () => {
    const image = `127.0.0.1:${await freePort()}/tessera-test/nowhere:1`;
    const runner = new DockerAppRunner({ socketPath: dockerSocket!, stopGraceSeconds: 1 });
    await expect(runner.start(launch(image, 'pull-bad', await freePort()))).rejects.toThrow(/127\.0\.0\.1:\d+\/tessera-test\/nowhere:1/);
    expect(await docker!.listContainers({ all: true, filters: { label: ['tessera.app=pull-bad'] } })).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
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

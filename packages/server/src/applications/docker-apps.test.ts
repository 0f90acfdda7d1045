import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE, docker, dockerProblem, dockerSocket, skipDocker } from '../../../engine/src/__fixtures__/docker-env.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

describe.skipIf(skipDocker)('application instances in containers', () => {
  let s: TestServer;
  beforeAll(async () => {
    expect(dockerProblem, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeUndefined();
    s = await startTestServer({ runners: ['docker', 'process'], dockerSocket });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('runs an app image with its port on loopback only, the result bucket mounted, behind the proxy; stop removes the container', { timeout: 60_000 }, async () => {
    const dir = join(s.extRoot, 'box-app');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({
      name: 'box-app', version: '1.0.0', kind: 'application',
      app: {
        // Python's file server in the test base image, serving the mounted result bucket.
        container: { image: BASE_IMAGE, command: ['sh', '-c', 'echo "in a container, results at $RESULTS_DIR" > "$RESULTS_DIR/hello.txt" && cd "$RESULTS_DIR" && exec python3 -m http.server "$PORT"'], port: 8000 },
        ingress: 'strip', health: { timeout_s: 30 }, mounts: { results: true },
        resources: { ram_mb: 256, cpu_millicores: 500 },
      },
    }));
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    expect((await s.call('POST', '/api/applications', { extension: 'box-app' })).status).toBe(202);
    const app = await waitFor(async () => {
      const a = (await s.call('GET', '/api/applications/box-app')).body;
      if (a.state === 'failed') throw new Error(a.reason);
      return a.state === 'running' ? a : undefined;
    }, 30_000, 'box-app to run');
    expect(app.runner).toBe('docker');
    expect(await (await fetch(`${s.url}${app.url}hello.txt`)).text()).toBe('in a container, results at /kaapana/mounted/results\n');
    const containers = await docker!.listContainers({ filters: { label: [`tessera.app=${app.id}`] } });
    expect(containers).toHaveLength(1);
    expect(containers[0]!.Ports.every((p) => p.IP === '127.0.0.1')).toBe(true);
    const limits = (await docker!.getContainer(containers[0]!.Id).inspect()).HostConfig;
    expect({ memory: limits.Memory, nanoCpus: limits.NanoCpus }, 'the resources the manifest asks for').toEqual({ memory: 256 * 1024 * 1024, nanoCpus: 500_000_000 });
    expect((await s.call('GET', '/api/applications/box-app/logs')).body).toContain('GET /hello.txt');
    expect((await s.call('DELETE', '/api/applications/box-app')).body.state).toBe('stopped');
    expect(await docker!.listContainers({ all: true, filters: { label: [`tessera.app=${app.id}`] } })).toHaveLength(0);
  });
});

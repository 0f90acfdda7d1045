import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { dockerBridgeGateway } from '@tessera/engine';
import { dockerProblem, dockerSocket, skipDocker } from '../../../engine/src/__fixtures__/docker-env.ts';
import { startTestServer } from '../__fixtures__/test-server.ts';
import { loadConfig, type ServerConfig } from '../config.ts';
import { containerAccess, planContainerApi } from './container-access.ts';

const config = (c: Partial<ServerConfig>): ServerConfig => ({ ...loadConfig({}), ...c });

describe('how containers reach the API', () => {
  it('opens nothing more for containers when the admin chose the URL, or when there is no Docker engine', async () => {
    expect(await planContainerApi({ config: config({ publicUrl: 'https://tessera.example.org', auth: 'on' }), port: 8080, dockerSocket: '/nowhere' }))
      .toEqual({ url: undefined, bridge: undefined, note: undefined });
    expect(await planContainerApi({ config: config({ auth: 'on' }), port: 8080, dockerSocket: undefined })).toEqual({ url: undefined, bridge: undefined, note: undefined });
  });

  it('gives containers http://tessera.internal:<port> when the server listens on every address', async () => {
    expect(await planContainerApi({ config: config({ host: '0.0.0.0', auth: 'on' }), port: 8080, dockerSocket: '/nowhere' })).toEqual({ url: 'http://tessera.internal:8080', bridge: undefined, note: undefined });
    expect(containerAccess('http://tessera.internal:8080')).toEqual({ env: { TESSERA_API_URL: 'http://tessera.internal:8080' }, extraHosts: ['tessera.internal:host-gateway'] });
  });

  it('never opens the bridge listener with access control off: whoever reached it would act as admin', async () => {
    const plan = await planContainerApi({ config: config({ host: '127.0.0.1', auth: 'off' }), port: 8080, dockerSocket: '/nowhere' });
    expect(plan.bridge).toBeUndefined();
    expect(plan.url).toBeUndefined();
    expect(plan.note).toMatch(/^tasks and applications in containers cannot call the API: with access control off/);
  });

  describe.skipIf(skipDocker)('with a Docker engine', () => {
    it('has a Docker engine with the test images', () => {
      expect(dockerProblem, dockerProblem).toBeUndefined();
    });

    it('listens on the bridge only with access control on; off, the start notes say containers cannot call the API', { timeout: 30_000 }, async () => {
      const gateway = await dockerBridgeGateway(dockerSocket!);
      expect(gateway).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const s = await startTestServer({ runners: ['docker', 'process'], dockerSocket, auth: 'off' });
      try {
        expect(s.tessera.runnerNotes.join('\n')).toContain('tasks and applications in containers cannot call the API: with access control off');
        const port = Number(new URL(s.url).port);
        const refused = await new Promise<string>((resolve) => {
          const socket = connect({ host: gateway!, port }, () => {
            socket.destroy();
            resolve('connected');
          });
          socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        });
        expect(refused, `nothing of this server listens on ${gateway}:${port}`).toBe('ECONNREFUSED');
      } finally {
        await s.close();
      }
    });
  });
});

import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerProblem, dockerSocket, skipDocker } from '../../packages/engine/src/__fixtures__/docker-env.ts';
import { startTestServer, type TestServer } from '../../packages/server/src/__fixtures__/test-server.ts';
import { followGuide } from './guide-runner.ts';

describe.skipIf(skipDocker)('the guide "Developing workflow extensions", followed literally', () => {
  let s: TestServer;
  let work: string | undefined;
  beforeAll(async () => {
    expect(dockerProblem, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeUndefined();
    s = await startTestServer({ runners: ['docker', 'process'], dockerSocket });
  });
  afterAll(async () => {
    await s?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('runs every command of the guide in order, each succeeding with the output the guide shows', { timeout: 300_000 }, async () => {
    const followed = await followGuide('docs/guides/developing-workflow-extensions.md', s.url, { DOCKER_HOST: `unix://${dockerSocket}` }, {
      installed: /installed lung-stats@0\.1\.0/,
      isEdit: (block) => /lung-stats\/(processing|workflows)/.test(block),
      reinstalled: /changed: .*reinstalled lung-stats@0\.1\.0/,
      after: (block, out) => {
        if (block.includes('cat results/')) {
          expect(out).toContain('"slices": 16');
          expect(out).toContain('"enough": true');
        }
        if (block.includes('ext run-operator')) expect(out).toMatch(/summarize: success/);
      },
    });
    work = followed.work;
    expect(followed.commands).toBeGreaterThanOrEqual(10);
    // What the guide built is what the platform ran: the new parameter, then the uninstall, then
    // the delete of its only package version, which takes it out of the catalog.
    expect((await s.call('GET', '/api/extensions/lung-stats')).status).toBe(404);
    const runs = (await s.call('GET', '/api/runs?workflow=lung-stats')).body as { items: { id: string; state: string }[] };
    expect(runs.items.map((r) => r.state)).toEqual(['success']);
    const detail = (await s.call('GET', `/api/runs/${runs.items[0]!.id}`)).body as { conf: { workflow_form: Record<string, unknown> } };
    expect(detail.conf.workflow_form).toEqual({ min_slices: 8, single_execution: false });
  });
});

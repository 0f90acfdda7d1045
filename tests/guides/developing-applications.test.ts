import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../packages/server/src/__fixtures__/test-server.ts';
import { followGuide } from './guide-runner.ts';

describe('the guide "Developing applications", followed literally', () => {
  let s: TestServer;
  let work: string | undefined;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('runs every command of the guide in order, each succeeding with the output the guide shows', { timeout: 120_000 }, async () => {
    const followed = await followGuide('docs/guides/developing-applications.md', s.url, {}, {
      installed: /installed my-viewer@0\.1\.0 .*launch it with: tessera app launch my-viewer/,
      isEdit: (block) => block.includes('my-viewer/app.py'),
      reinstalled: /app\.py changed: reinstalled my-viewer@0\.1\.0 in [\d.]+ s; relaunched my-viewer/,
    });
    work = followed.work;
    expect(followed.commands).toBeGreaterThanOrEqual(7);
    expect(existsSync(join(work, 'my-viewer', 'dist', 'my-viewer-0.1.0.tgz'))).toBe(true);
    const app = (await s.call('GET', '/api/applications/my-viewer')).body;
    expect(app).toMatchObject({ state: 'stopped', params: { heading: 'Results' } });
  });
});

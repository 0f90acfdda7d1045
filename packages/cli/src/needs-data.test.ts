import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './__fixtures__/run-cli.ts';
import { startTestServer, type TestServer } from '../../server/src/__fixtures__/test-server.ts';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

function tessera(args: string[]): Promise<CliResult> {
  return runCli({ url: server.url, args });
}

describe('a workflow that needs data, run without series', () => {
  it('collect-metadata (get-input first) fails with "no series selected": the API says so, the CLI exits 1 and prints it', async () => {
    const wf = await server.call('GET', '/api/workflows/collect-metadata');
    expect(wf.status).toBe(200);
    const r = await tessera(['run', 'collect-metadata']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^FAILED\s+r-/m);
    expect(r.stdout).toContain('no series selected: workflow "collect-metadata" needs data');
    const runId = /(r-[a-z0-9]+-[0-9a-z]+)/.exec(r.stdout)![1]!;
    const run = await server.call('GET', `/api/runs/${runId}`);
    expect(run.body).toMatchObject({ state: 'failed', reason: expect.stringMatching(/^no series selected/) });
    const tasks = (run.body as { tasks: { id?: string; task_id?: string; state: string; try_number?: number }[] }).tasks;
    expect(tasks.every((t) => t.state === 'canceled')).toBe(true);
  });

  it('delete-series (needsData, no get-input) fails the same way, and deletes nothing', async () => {
    const r = await tessera(['run', 'delete-series']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('no series selected');
  });

  it('hello-world needs no data: it runs without series and exits 0', async () => {
    const r = await tessera(['run', 'hello-world']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ok\s+r-/m);
  });
});

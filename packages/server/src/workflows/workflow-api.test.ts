import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

let server: TestServer;
afterEach(async () => {
  await server?.close();
});

async function runUntilEnd(s: TestServer, runId: string) {
  return waitFor(async () => {
    const r = await s.call('GET', `/api/runs/${runId}`);
    return ['success', 'failed', 'canceled'].includes(r.body.state) ? r.body : undefined;
  }, 20_000, `run ${runId} to end`);
}

describe('HTTP API', () => {
  it('answers health with the runners it found, and serves the OpenAPI document', async () => {
    server = await startTestServer();
    const health = await server.call('GET', '/api/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', runners: expect.arrayContaining([expect.objectContaining({ name: 'process' })]) });
    const openapi = await server.call('GET', '/api/openapi.json');
    expect(openapi.status).toBe(200);
    expect(Object.keys(openapi.body.paths)).toEqual(
      expect.arrayContaining(['/api/workflows', '/api/jobs', '/api/runs/{id}', '/api/runs/{id}/cancel', '/api/runs/{id}/retry', '/api/runs/{id}/tasks/{task}/log', '/api/projects']),
    );
    const schema = await server.call('GET', '/api/schemas/dag-spec.json');
    expect(schema.body.properties.tasks).toBeDefined();
  });

  it('creates and lists projects, rejecting bad and duplicate names', async () => {
    server = await startTestServer();
    expect((await server.call('GET', '/api/projects')).body.items.map((p: { name: string }) => p.name)).toEqual(['admin']);
    expect((await server.call('POST', '/api/projects', { name: 'lung-study' })).status).toBe(201);
    const bad = await server.call('POST', '/api/projects', { name: 'Lung Study!' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('TESSERA_INVALID_REQUEST');
    expect(bad.body.error.details[0].where).toBe('body.name');
    const dup = await server.call('POST', '/api/projects', { name: 'lung-study' });
    expect(dup.status).toBe(409);
    expect(dup.body.error.message).toBe('project "lung-study" already exists');
    expect((await server.call('GET', '/api/projects')).body.items).toHaveLength(2);
  });

  it('runs hello-world end to end: trigger, watch, read logs, find outputs', async () => {
    server = await startTestServer();
    const wfs = await server.call('GET', '/api/workflows');
    const hello = wfs.body.items.find((w: { id: string }) => w.id === 'hello-world');
    expect(hello.workflow_form.properties.message.default).toBe('Hello, Tessera!');
    const trigger = await server.call('POST', '/api/jobs', { workflow: 'hello-world', conf: { workflow_form: { message: 'Guten Tag', repeat: 2 } } });
    expect(trigger.status).toBe(201);
    expect(trigger.body.runs).toHaveLength(1);
    const run = await runUntilEnd(server, trigger.body.runs[0].id);
    expect(run.state).toBe('success');
    expect(run.tasks.map((t: { id: string; state: string }) => `${t.id}:${t.state}`)).toEqual([
      'greet:success', 'transform-upper:success', 'transform-reverse:success', 'summarize:success',
    ]);
    const summary = JSON.parse(await readFile(join(run.workflow_dir, 'summarize', 'summary.json'), 'utf8'));
    expect(summary.outputs['transform-upper']).toBe('GUTEN TAG\nGUTEN TAG');
    expect(summary.outputs['transform-reverse']).toBe('gaT netuG\ngaT netuG');
    const log = await server.call('GET', `/api/runs/${run.id}/tasks/transform-upper/log`);
    expect(log.body).toContain('transform (upper): GUTEN TAG');
    const listed = await server.call('GET', '/api/runs?state=success&limit=5');
    expect(listed.body.items[0]).toMatchObject({ id: run.id, progress: { total: 4, done: 4 } });
  });

  it('rejects bad input with errors that name the field, and keeps serving', async () => {
    server = await startTestServer();
    const form = await server.call('POST', '/api/jobs', { workflow: 'hello-world', conf: { workflow_form: { repeat: 'many' } } });
    expect(form.status).toBe(400);
    expect(form.body.error).toMatchObject({ code: 'TESSERA_INVALID_FORM', details: [{ where: 'workflow_form.repeat', message: 'must be integer' }] });
    const unknownParam = await server.call('POST', '/api/jobs', { workflow: 'hello-world', conf: { workflow_form: { mesage: 'typo' } } });
    expect(unknownParam.body.error.details[0]).toEqual({ where: 'workflow_form.mesage', message: 'is not a known property' });
    const wf = await server.call('POST', '/api/jobs', { workflow: 'no-such-flow' });
    expect(wf.status).toBe(404);
    expect(wf.body.error.message).toMatch(/known workflows: .*hello-world/);
    const body = await server.call('POST', '/api/jobs', { workflow: 'hello-world', confg: {} });
    expect(body.status).toBe(400);
    expect(body.body.error.details[0].where).toBe('body.confg');
    const project = await server.call('POST', '/api/jobs', { workflow: 'hello-world', project: 'nope' });
    expect(project.status).toBe(404);
    expect(project.body.error.message).toContain('tessera projects create nope');
    // A body is taken as it is typed, never coerced: a list is not a workflow id.
    const listed = await server.call('POST', '/api/jobs', { workflow: ['hello-world'] });
    expect(listed.status).toBe(400);
    expect(listed.body.error.details).toEqual([{ where: 'body.workflow', message: 'must be string' }]);
    const garbage = await fetch(`${server.url}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"workflow":' });
    expect(garbage.status).toBe(400);
    // Bodies a route without one still refuses, with statuses its contract declares (answers are checked against it here).
    const post = (path: string, headers: Record<string, string>, body: string) => fetch(`${server.url}${path}`, { method: 'POST', headers, body });
    expect((await post('/api/workflows/reload', { 'content-type': 'application/xml' }, '<reload/>')).status).toBe(415);
    expect((await post('/api/runs/r-nope/cancel', { 'content-type': 'application/json' }, '{')).status).toBe(400);
    expect((await post('/api/jobs', { 'content-type': 'application/json' }, JSON.stringify({ workflow: 'x'.repeat(2 * 1024 * 1024) }))).status).toBe(413);
    const state = await server.call('GET', '/api/runs?state=done');
    expect(state.status).toBe(400);
    expect(state.body.error.message).toContain('unknown run state done');
    const missingRun = await server.call('GET', '/api/runs/r-nope');
    expect(missingRun.status).toBe(404);
    expect((await server.call('GET', '/api/health')).status).toBe(200);
    expect((await server.call('GET', '/api/runs')).body.total).toBe(0);
  });

  it('streams a task log live with follow=true until the task ends', async () => {
    server = await startTestServer();
    await writeShellExtension(server.extRoot, 'ticker', [{ id: 'ticker', tasks: [{ id: 'tick', sh: 'for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.2; done' }] }]);
    await server.call('POST', '/api/workflows/reload');
    const trigger = await server.call('POST', '/api/jobs', { workflow: 'ticker' });
    const runId = trigger.body.runs[0].id;
    await waitFor(async () => (await server.call('GET', `/api/runs/${runId}`)).body.tasks[0].try_number > 0);
    const res = await fetch(`${server.url}/api/runs/${runId}/tasks/tick/log?follow=true`);
    const chunks: string[] = [];
    const arrivals: number[] = [];
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      chunks.push(Buffer.from(chunk).toString());
      arrivals.push(Date.now());
    }
    expect(chunks.join('')).toBe('tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n');
    // Output arrived in several pieces while the task ran, not all at the end.
    expect(chunks.length).toBeGreaterThan(2);
    expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThan(300);
    expect((await runUntilEnd(server, runId)).state).toBe('success');
  });

  it('cancels a run and retries it under the same id over HTTP', async () => {
    server = await startTestServer();
    const flag = join(server.home, 'go');
    await writeShellExtension(server.extRoot, 'gate', [{
      id: 'gate',
      tasks: [
        { id: 'wait', sh: `i=0; while [ ! -f ${flag} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; test -f ${flag}` },
        { id: 'after', upstream: ['wait'], sh: 'echo after' },
      ],
    }]);
    await server.call('POST', '/api/workflows/reload');
    const trigger = await server.call('POST', '/api/jobs', { workflow: 'gate' });
    const runId = trigger.body.runs[0].id;
    await waitFor(async () => (await server.call('GET', `/api/runs/${runId}`)).body.tasks[0].state === 'running');
    const canceled = await server.call('POST', `/api/runs/${runId}/cancel`);
    expect(canceled.body.state).toBe('canceled');
    const run = await server.call('GET', `/api/runs/${runId}`);
    expect(run.body.tasks.map((t: { state: string }) => t.state)).toEqual(['canceled', 'canceled']);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(flag, '');
    const retried = await server.call('POST', `/api/runs/${runId}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body.attempt).toBe(2);
    const done = await runUntilEnd(server, runId);
    expect(done.state).toBe('success');
    expect(done.id).toBe(runId);
    const again = await server.call('POST', `/api/runs/${runId}/retry`);
    expect(again.status).toBe(409);
  });

  it('fans out single_execution jobs, one run per series, each with its batch dir', async () => {
    server = await startTestServer();
    await writeShellExtension(server.extRoot, 'per-series', [{
      id: 'per-series',
      tasks: [{ id: 'list', level: 'batch', sh: 'ls "$BATCHES_INPUT_DIR" > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/series.txt"' }],
    }]);
    await server.call('POST', '/api/workflows/reload');
    const trigger = await server.call('POST', '/api/jobs', {
      workflow: 'per-series',
      conf: { workflow_form: { single_execution: true }, data_form: { identifiers: ['1.2.840.1', '1.2.840.2'] } },
    });
    expect(trigger.body.runs).toHaveLength(2);
    for (const [i, r] of trigger.body.runs.entries()) {
      const run = await runUntilEnd(server, r.id);
      expect((await readFile(join(run.workflow_dir, 'list', 'series.txt'), 'utf8')).trim()).toBe(`1.2.840.${i + 1}`);
    }
    const job = await server.call('GET', `/api/jobs/${trigger.body.id}`);
    expect(job.body.state).toBe('success');
  });
});

import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'undici';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

const JUPYTER = '/usr/bin/jupyter-notebook';
/** Skip only outside CI: in CI a missing jupyter-notebook must fail the test. */
const skip = !existsSync(JUPYTER) && process.env.CI !== 'true';
if (skip) console.warn(`jupyter tests skipped: ${JUPYTER} is missing (apt-get install jupyter-notebook)`);

interface JupyterMessage {
  header: { msg_type: string };
  parent_header: { msg_id?: string };
  content: Record<string, unknown>;
}

describe.skipIf(skip)('the jupyter-notebook application', () => {
  let s: TestServer;
  beforeAll(async () => {
    expect(existsSync(JUPYTER), 'jupyter-notebook (apt-get install jupyter-notebook)').toBe(true);
    // 10.0.0.5:8080: the name of a platform reached by address (TESSERA_ALLOWED_HOSTS), below.
    s = await startTestServer({ allowedHosts: ['10.0.0.5:8080'] });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('runs a notebook server per project behind the proxy: a kernel executes code over a WebSocket', { timeout: 90_000 }, async () => {
    expect((await s.call('POST', '/api/extensions/jupyter-notebook/install?wait=true', {})).status).toBe(200);
    const launched = await s.call('POST', '/api/applications', { extension: 'jupyter-notebook' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    const app = await waitFor(async () => {
      const a = (await s.call('GET', '/api/applications/jupyter-notebook')).body;
      if (a.state === 'failed') throw new Error(a.reason);
      return a.state === 'running' ? a : undefined;
    }, 60_000, 'jupyter to run');
    const base = `${s.url}${app.url}`;
    expect(await (await fetch(`${base}api`)).json()).toMatchObject({ version: expect.stringMatching(/^6\./) });
    const tree = await fetch(`${base}tree`);
    expect(tree.status).toBe(200);
    expect(await tree.text()).toContain('Jupyter');

    // As a browser does: the _xsrf cookie from a page, sent back as X-XSRFToken.
    const xsrf = /_xsrf=([^;]+)/.exec(tree.headers.getSetCookie().join('; '))?.[1];
    expect(xsrf, 'an _xsrf cookie').toBeDefined();
    const auth = { cookie: `_xsrf=${xsrf}`, 'x-xsrftoken': xsrf! };
    const forged = await fetch(`${base}api/kernels`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'https://evil.example' }, body: '{}' });
    expect(forged.status, 'a cross-site request must not start a kernel').toBeGreaterThanOrEqual(400);
    // fetch cannot set Host: a plain request as a browser sends it to a platform reached by address.
    const remoteHost = await new Promise<number>((resolve, reject) => {
      get(`${base}api`, { headers: { host: '10.0.0.5:8080' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(remoteHost, 'a platform reached by another host name still reaches Jupyter').toBe(200);
    const kernel = (await (await fetch(`${base}api/kernels`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: '{"name":"python3"}' })).json()) as { id: string };
    const ws = new WebSocket(`${base.replace('http:', 'ws:')}api/kernels/${kernel.id}/channels?session_id=${randomUUID()}`, { headers: auth } as never);
    const msgId = randomUUID();
    const output = new Promise<string>((resolve, reject) => {
      ws.addEventListener('error', () => reject(new Error('the WebSocket failed')));
      ws.addEventListener('message', (e) => {
        const m = JSON.parse(String(e.data)) as JupyterMessage;
        if (m.parent_header.msg_id !== msgId) return;
        if (m.header.msg_type === 'stream') resolve(String(m.content.text));
        if (m.header.msg_type === 'error') reject(new Error(String(m.content.evalue)));
      });
    });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('could not open the kernel channel through the proxy')));
    });
    ws.send(JSON.stringify({
      header: { msg_id: msgId, msg_type: 'execute_request', username: 'test', session: randomUUID(), date: new Date().toISOString(), version: '5.3' },
      parent_header: {}, metadata: {}, channel: 'shell',
      content: { code: 'import os\nprint(6 * 7, os.environ["TESSERA_PROJECT"])', silent: false, store_history: false, user_expressions: {}, allow_stdin: false },
    }));
    expect((await output).trim()).toBe('42 admin');
    ws.close();

    // Straight to its port on 127.0.0.1, as any process of the machine could (a task, another
    // project's kernel): without the proxy's secret, Jupyter answers nothing of its content.
    const target = s.tessera.apps.target('admin', 'jupyter-notebook')!;
    const direct = `http://127.0.0.1:${target.port}${new URL(base).pathname}`;
    expect((await fetch(`${direct}api/contents`)).status).toBe(403);
    expect((await fetch(`${direct}api/kernels`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":"python3"}' })).status).toBe(403);
    const page = await fetch(`${direct}tree`, { redirect: 'manual' });
    expect(page.status).toBe(302);
    expect(page.headers.get('location')).toContain('/login');
    expect((await fetch(`${direct}login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'password=' })).status).toBe(403);
    // A client cannot pass its own secret through the proxy either: the proxy drops it and sends the instance's.
    expect((await fetch(`${base}api/contents`, { headers: { 'x-tessera-proxy-secret': 'guess' } })).status).toBe(200);
    expect((await fetch(`${direct}api/contents`, { headers: { 'x-tessera-proxy-secret': target.secret! } })).status).toBe(200);

    // A notebook saved through the proxy lands in the project's result bucket.
    const put = await fetch(`${base}api/contents/hello.ipynb`, { method: 'PUT', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ type: 'notebook', content: { cells: [], metadata: {}, nbformat: 4, nbformat_minor: 5 } }) });
    expect(put.status).toBe(201);
    expect((await s.call('DELETE', '/api/applications/jupyter-notebook')).body.state).toBe('stopped');
  });
});

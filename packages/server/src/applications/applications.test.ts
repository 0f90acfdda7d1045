import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTessera } from '../create-tessera.ts';
import { loadConfig, type ServerConfig } from '../config.ts';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';
import { readFile } from 'node:fs/promises';

/** An application extension in a linked folder: `server` is the body of a Node script listening on PORT. */
async function appExtension(root: string, name: string, app: Record<string, unknown>, server: string): Promise<void> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'server.mjs'), server);
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'application', app: { process: { command: ['node', 'server.mjs'] }, ...app } }));
}

async function launched(s: TestServer, body: Record<string, unknown>): Promise<{ name: string; state: string; reason: string | null; url: string }> {
  const res = await s.call('POST', '/api/applications', body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return waitFor(async () => {
    const a = (await s.call('GET', `/api/applications/${res.body.name}`)).body;
    return a.state !== 'starting' ? a : undefined;
  }, 20_000, `${res.body.name} to start`);
}

/** A WebSocket client of the bare protocol: sends one masked text frame, resolves with the first text frame back. */
function wsEcho(url: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64');
    const req = request(url, { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' } });
    req.on('upgrade', (res, socket) => {
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      if (res.headers['sec-websocket-accept'] !== accept) reject(new Error('bad accept'));
      const payload = Buffer.from(text);
      const mask = randomBytes(4);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
      socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
      socket.once('data', (d: Buffer) => {
        resolve(d.subarray(2, 2 + (d[1]! & 0x7f)).toString());
        socket.destroy();
      });
    });
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

/** The status of a GET of exactly `path`, not normalized on the way. */
function rawStatus(base: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('application instances behind the subpath proxy', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
    expect((await s.call('POST', '/api/extensions/hello-world-app/install?wait=true', {})).status).toBe(200);
    await appExtension(s.extRoot, 'strip-app', { ingress: 'strip', health: { path: '/' } }, `
import { createServer } from 'node:http';
createServer((req, res) => {
  if (req.url === '/go') { res.writeHead(302, { location: '/landing?x=1' }); return res.end(); }
  if (req.url === '/away') { res.writeHead(302, { location: 'https://example.org/' }); return res.end(); }
  if (req.url === '/cookie') { res.writeHead(200, { 'set-cookie': ['a=1; Path=/', 'b=2; Path=/sub; HttpOnly', 'c=3'] }); return res.end('ok'); }
  res.end('root sees ' + req.url);
}).listen(Number(process.env.PORT), '127.0.0.1');`);
    await appExtension(s.extRoot, 'crash-app', { health: { timeout_s: 10 } }, `console.error('cannot open /data/model.bin: no such file'); process.exit(3);`);
    await appExtension(s.extRoot, 'sick-app', { ingress: 'strip', health: { path: '/ready', timeout_s: 1 } }, `
import { createServer } from 'node:http';
createServer((req, res) => { res.writeHead(500); res.end('not ready'); }).listen(Number(process.env.PORT), '127.0.0.1');
console.log('listening, never ready');`);
    await appExtension(s.extRoot, 'slow-app', { ingress: 'strip', health: { timeout_s: 20 } }, `
import { createServer } from 'node:http';
setTimeout(() => createServer((req, res) => res.end('finally')).listen(Number(process.env.PORT), '127.0.0.1'), 1500);`);
    await s.call('POST', '/api/workflows/reload');
  });
  afterAll(async () => {
    await s?.close();
  });

  it('launches an instance with its parameters and serves it on its subpath: every method, X-Forwarded-*, redirects to the slash', async () => {
    const app = await launched(s, { extension: 'hello-world-app', name: 'ada', params: { display_name: 'Ada' } });
    expect(app).toMatchObject({ state: 'running', url: '/applications/project/admin/release/ada/' });
    const page = await fetch(`${s.url}${app.url}`);
    expect(await page.text()).toContain('<h1>Hello, Ada!</h1>');
    const bare = await fetch(`${s.url}/applications/project/admin/release/ada`, { redirect: 'manual' });
    expect(bare.status).toBe(308);
    expect(bare.headers.get('location')).toBe('/applications/project/admin/release/ada/');
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
      const r = (await (await fetch(`${s.url}${app.url}headers?q=1`, { method, headers: { 'x-forwarded-for': '10.1.2.3', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', forwarded: 'host=evil.example' } })).json()) as { method: string; url: string; headers: Record<string, string> };
      expect(r.headers.forwarded).toBeUndefined();
      expect(r.method).toBe(method);
      expect(r.url).toBe('/applications/project/admin/release/ada/headers?q=1'); // ingress "subpath": the app sees its prefix
      expect(r.headers).toMatchObject({ 'x-forwarded-for': '10.1.2.3, 127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-prefix': '/applications/project/admin/release/ada' });
      expect(r.headers['x-forwarded-host']).toBe(new URL(s.url).host);
    }
  });

  it('streams large bodies both ways without holding them', async () => {
    const app = await launched(s, { extension: 'hello-world-app', name: 'streams' });
    const up = randomBytes(32 * 1024 * 1024);
    const echoed = Buffer.from(await (await fetch(`${s.url}${app.url}echo`, { method: 'POST', body: up, headers: { 'content-type': 'application/octet-stream' } })).arrayBuffer());
    expect(echoed.length).toBe(up.length);
    expect(createHash('sha256').update(echoed).digest('hex')).toBe(createHash('sha256').update(up).digest('hex'));
    const down = await fetch(`${s.url}${app.url}bytes/${64 * 1024 * 1024}`);
    expect(down.headers.get('content-length')).toBe(String(64 * 1024 * 1024));
    let n = 0;
    for await (const chunk of down.body as unknown as AsyncIterable<Uint8Array>) n += chunk.length;
    expect(n).toBe(64 * 1024 * 1024);
  });

  it('tunnels WebSockets', async () => {
    const app = await launched(s, { extension: 'hello-world-app', name: 'sockets' });
    expect(await wsEcho(`${s.url}${app.url}ws`, 'hello over the proxy')).toBe('echo: hello over the proxy');
  });

  it('strips the prefix for apps that serve at /, and puts it back into redirects and cookie paths', async () => {
    const app = await launched(s, { extension: 'strip-app' });
    expect(app.url).toBe('/applications/project/admin/release/strip-app/');
    expect(await (await fetch(`${s.url}${app.url}deep/path?y=2`)).text()).toBe('root sees /deep/path?y=2');
    const go = await fetch(`${s.url}${app.url}go`, { redirect: 'manual' });
    expect(go.headers.get('location')).toBe('/applications/project/admin/release/strip-app/landing?x=1');
    expect((await fetch(`${s.url}${app.url}away`, { redirect: 'manual' })).headers.get('location')).toBe('https://example.org/');
    const cookies = (await fetch(`${s.url}${app.url}cookie`)).headers.getSetCookie();
    expect(cookies).toEqual([
      'a=1; Path=/applications/project/admin/release/strip-app/',
      'b=2; Path=/applications/project/admin/release/strip-app/sub; HttpOnly',
      'c=3; Path=/applications/project/admin/release/strip-app/',
    ]);
  });

  it('answers a starting instance with a page that reloads, not a hang', async () => {
    const res = await s.call('POST', '/api/applications', { extension: 'slow-app' });
    const page = await fetch(`${s.url}${res.body.url}`);
    expect(page.status).toBe(503);
    expect(page.headers.get('retry-after')).toBe('2');
    expect(await page.text()).toContain('slow-app is starting');
    await waitFor(async () => (await fetch(`${s.url}${res.body.url}`)).status === 200, 20_000, 'slow-app to serve');
  });

  it('ends an app that crashes or never becomes healthy in state failed with its last log lines; the platform serves on', async () => {
    const crashed = await launched(s, { extension: 'crash-app' });
    expect(crashed.state).toBe('failed');
    expect(crashed.reason).toMatch(/exited with code 3; its last lines:\ncannot open \/data\/model\.bin: no such file/);
    const sick = await launched(s, { extension: 'sick-app' });
    expect(sick.state).toBe('failed');
    expect(sick.reason).toMatch(/did not become healthy within 1 s \(GET \/ready\); its last lines:\nlistening, never ready/);
    const page = await fetch(`${s.url}${sick.url}`);
    expect(page.status).toBe(503);
    expect(await page.text()).toContain('did not become healthy');
    expect((await s.call('GET', '/api/health')).status).toBe(200);
  });

  it('answers unknown instances with 404 and never lets a path trick reach another instance or the API', async () => {
    await launched(s, { extension: 'hello-world-app', name: 'target' });
    expect((await fetch(`${s.url}/applications/project/admin/release/nobody/`)).status).toBe(404);
    expect((await fetch(`${s.url}/applications/project/other/release/target/`)).status).toBe(404);
    // Sent as they are (fetch would clean them up first): every trick is refused by the proxy itself.
    for (const trick of ['target/..%2f..%2f..%2fapi/health', 'target/%2e%2e/%2e%2e/x', 'target/..\\..\\x', 'target%2f..%2fnobody/', 'target/a/../../nobody/', 'target/./x']) {
      expect(await rawStatus(s.url, `/applications/project/admin/release/${trick}`), trick).toBe(400);
    }
  });

  it('refuses what cannot be launched, saying why', async () => {
    expect((await s.call('POST', '/api/applications', { extension: 'hello-world' })).body.error.message).toContain('is a workflow extension');
    expect((await s.call('POST', '/api/applications', { extension: 'dcm2nifti' })).body.error.message).toContain('application "dcm2nifti" is not installed');
    const dup = await s.call('POST', '/api/applications', { extension: 'strip-app' });
    expect(dup.status).toBe(409);
    expect((await s.call('POST', '/api/applications', { extension: 'strip-app', name: 'x' })).body.error.message).toContain('has one instance per project');
    expect((await s.call('POST', '/api/applications', { extension: 'hello-world-app', params: { colour: 'red' } })).body.error.details[0].where).toBe('params.colour');
  });

  it('survives clients that reset during an upgrade, and passes Expect: 100-continue uploads on', async () => {
    const { connect } = await import('node:net');
    await launched(s, { extension: 'hello-world-app', name: 'resets' });
    const u = new URL(s.url);
    for (const path of ['/applications/project/admin/release/nobody/ws', '/applications/project/admin/release/resets/ws', '/applications/project/admin/release/resets/%2e%2e/ws']) {
      for (let i = 0; i < 3; i++) {
        const socket = connect(Number(u.port), u.hostname);
        await new Promise((r) => socket.once('connect', r));
        socket.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
        socket.resetAndDestroy();
      }
    }
    await new Promise((r) => setTimeout(r, 200));
    expect((await s.call('GET', '/api/health')).status).toBe(200);

    const body = randomBytes(3 * 1024 * 1024);
    const echoed = await new Promise<number>((resolve, reject) => {
      const req = request(`${s.url}/applications/project/admin/release/resets/echo`, { method: 'POST', headers: { expect: '100-continue', 'content-length': String(body.length) } }, (res) => {
        let n = 0;
        res.on('data', (d: Buffer) => (n += d.length));
        res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`status ${res.statusCode}`))));
      });
      req.on('continue', () => req.end(body));
      req.on('error', reject);
    });
    expect(echoed).toBe(body.length);
  });

  it('keeps an instance stopped when the stop comes while it is still starting', async () => {
    await s.call('DELETE', '/api/applications/slow-app'); // launched by an earlier test
    const res = await s.call('POST', '/api/applications', { extension: 'slow-app' });
    expect(res.status).toBe(202);
    expect((await s.call('DELETE', '/api/applications/slow-app')).body.state).toBe('stopped');
    await new Promise((r) => setTimeout(r, 3000)); // past the 1.5 s it takes to listen
    expect((await s.call('GET', '/api/applications/slow-app')).body.state).toBe('stopped');
    expect((await fetch(`${s.url}${res.body.url}`)).status).toBe(503);
  });

  it('stops an instance: its URL then says so, its logs stay readable', async () => {
    const app = await launched(s, { extension: 'hello-world-app', name: 'stopme' });
    const stopped = await s.call('DELETE', '/api/applications/stopme');
    expect(stopped.body.state).toBe('stopped');
    expect((await fetch(`${s.url}${app.url}`)).status).toBe(503);
    expect((await s.call('GET', '/api/applications/stopme/logs')).body).toContain('hello-world-app for Tessera on 127.0.0.1:');
  });
});

describe('applications launched by a workflow (launch-app)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s?.close();
  });

  it('pauses the run until a person marks the task complete, then goes on with what the person saved', async () => {
    await appExtension(s.extRoot, 'review-app', { ingress: 'strip', instances: 'single' }, `
import { createServer } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const wd = process.env.WORKFLOW_DIR;
createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/save') {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      mkdirSync(join(wd, process.env.OPERATOR_OUT_DIR), { recursive: true });
      writeFileSync(join(wd, process.env.OPERATOR_OUT_DIR, 'saved.txt'), body);
      res.end('saved');
    });
    return;
  }
  res.end('input: ' + readFileSync(join(wd, process.env.OPERATOR_IN_DIR, 'input.txt'), 'utf8'));
}).listen(Number(process.env.PORT), '127.0.0.1');`);
    await writeShellExtension(s.extRoot, 'review-flow', [{
      id: 'review-flow',
      tasks: [
        { id: 'prepare', level: 'batch', sh: 'mkdir -p "$WORKFLOW_DIR/prepare" && echo "a segmentation to check" > "$WORKFLOW_DIR/prepare/input.txt"' },
        { id: 'review', level: 'batch', builtin: 'launch-app', builtin_params: { extension: 'review-app' }, upstream: ['prepare'], input_dir: 'prepare' },
        { id: 'after', level: 'batch', upstream: ['review'], sh: 'cp "$WORKFLOW_DIR/review/saved.txt" "$WORKFLOW_DIR/final.txt"' },
      ],
    }]);
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const job = await s.call('POST', '/api/jobs', { workflow: 'review-flow' });
    expect(job.status, JSON.stringify(job.body)).toBe(201);
    const runId = job.body.runs[0].id as string;
    const app = await waitFor(async () => {
      const { items } = (await s.call('GET', '/api/applications')).body as { items: { name: string; state: string; url: string; task: { run: string } | null }[] };
      return items.find((a) => a.task?.run === runId && a.state === 'running');
    }, 20_000, 'the review app to run');
    expect(await (await fetch(`${s.url}${app.url}`)).text()).toBe('input: a segmentation to check\n');
    // The run waits: the person has not said they are done.
    await new Promise((r) => setTimeout(r, 500));
    const waiting = (await s.call('GET', `/api/runs/${runId}`)).body;
    expect(waiting.state).toBe('running');
    expect(waiting.tasks.find((t: { id: string }) => t.id === 'review').state).toBe('running');

    expect(await (await fetch(`${s.url}${app.url}save`, { method: 'POST', body: 'corrected by a person' })).text()).toBe('saved');
    const done = await s.call('POST', `/api/applications/${app.name}/complete`);
    expect(done.body.task).toMatchObject({ run: runId, task: 'review', completed_at: expect.any(String) });
    const run = await waitFor(async () => {
      const r = (await s.call('GET', `/api/runs/${runId}`)).body;
      return ['success', 'failed'].includes(r.state) ? r : undefined;
    }, 20_000, 'the run to end');
    expect(run.state).toBe('success');
    expect(await readFile(join(run.workflow_dir, 'final.txt'), 'utf8')).toBe('corrected by a person');
    expect((await s.call('GET', `/api/applications/${app.name}`)).body.state).toBe('stopped');
    expect((await s.call('POST', '/api/applications/hello-nothing/complete')).status).toBe(404);
  });
});

describe('a run waiting for a person, across a server restart', () => {
  it('finds its instance again after the restart, and goes on once the person is done', { timeout: 60_000 }, async () => {
    const home = await mkdtemp(join(tmpdir(), 'tessera-apps-wait-'));
    const root = join(home, 'linked');
    await appExtension(root, 'review-app', { ingress: 'strip' }, `
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
createServer((req, res) => {
  mkdirSync(join(process.env.WORKFLOW_DIR, process.env.OPERATOR_OUT_DIR), { recursive: true });
  writeFileSync(join(process.env.WORKFLOW_DIR, process.env.OPERATOR_OUT_DIR, 'saved.txt'), 'saved after the restart');
  res.end('saved');
}).listen(Number(process.env.PORT), '127.0.0.1');`);
    await writeShellExtension(root, 'review-flow', [{
      id: 'review-flow',
      tasks: [
        { id: 'review', level: 'batch', builtin: 'launch-app', builtin_params: { extension: 'review-app' } },
        { id: 'after', level: 'batch', upstream: ['review'], sh: 'cp "$WORKFLOW_DIR/review/saved.txt" "$WORKFLOW_DIR/final.txt"' },
      ],
    }]);
    const config: ServerConfig = { ...loadConfig({}), port: 0, home, extensionRoots: [root], runners: ['process'], logLevel: 'silent', dicomPort: 'off', auth: 'off', appsPort: 'same', stateDir: join(home, 'state') };
    let t = await createTessera(config);
    let url = await t.listen();
    const call = async (method: string, path: string, body?: unknown): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
      (await fetch(`${url}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined })).json();
    try {
      const runId = (await call('POST', '/api/jobs', { workflow: 'review-flow' })).runs[0].id as string;
      const waiting = async (): Promise<{ name: string; url: string }> => waitFor(async () =>
        (await call('GET', '/api/applications')).items.find((a: { task: { run: string } | null; state: string }) => a.task?.run === runId && a.state === 'running'), 20_000, 'the review app');
      const before = await waiting();
      await t.close();

      t = await createTessera(config);
      url = await t.listen();
      const after = await waiting();
      expect(after.name).toBe(before.name);
      expect((await call('GET', `/api/runs/${runId}`)).state).toBe('running');
      expect(await (await fetch(`${url}${after.url}`)).text()).toBe('saved');
      await call('POST', `/api/applications/${after.name}/complete`);
      const run = await waitFor(async () => {
        const r = await call('GET', `/api/runs/${runId}`);
        return ['success', 'failed'].includes(r.state) ? r : undefined;
      }, 20_000, 'the run to end');
      expect(run.state, JSON.stringify(run.tasks)).toBe('success');
      expect(await readFile(join(run.workflow_dir, 'final.txt'), 'utf8')).toBe('saved after the restart');
    } finally {
      await t.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe('application instances across a server restart', () => {
  it('starts again what should run and leaves stopped what was stopped', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tessera-apps-restart-'));
    const config: ServerConfig = { ...loadConfig({}), port: 0, home, extensionRoots: [], runners: ['process'], logLevel: 'silent', dicomPort: 'off', auth: 'off', appsPort: 'same', stateDir: join(home, 'state') };
    let t = await createTessera(config);
    let url = await t.listen();
    const call = async (method: string, path: string, body?: unknown): Promise<any> => // eslint-disable-line @typescript-eslint/no-explicit-any
      (await fetch(`${url}${path}`, { method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined })).json();
    try {
      await call('POST', '/api/extensions/hello-world-app/install?wait=true', {});
      await call('POST', '/api/applications', { extension: 'hello-world-app', name: 'keeps' });
      await call('POST', '/api/applications', { extension: 'hello-world-app', name: 'halts' });
      await waitFor(async () => (await call('GET', '/api/applications')).items.every((a: { state: string }) => a.state === 'running'), 20_000, 'both running');
      await call('DELETE', '/api/applications/halts');
      await t.close();

      t = await createTessera(config);
      url = await t.listen();
      const keeps = await waitFor(async () => {
        const a = await call('GET', '/api/applications/keeps');
        return a.state === 'running' ? a : undefined;
      }, 20_000, 'keeps to run again');
      expect(keeps.reason).toBe('started again after a server restart');
      expect(await (await fetch(`${url}${keeps.url}`)).text()).toContain('Hello, Tessera!');
      expect((await call('GET', '/api/applications/halts')).state).toBe('stopped');
    } finally {
      await t.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});

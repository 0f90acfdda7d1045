import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '../../../dicom/src/samples/sample-ct.ts';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

interface Sse {
  event: string;
  id?: string;
  data: Record<string, unknown>;
}

/** A client of GET /api/events: collects events, resolves `ready` once the subscription is active. */
class EventClient {
  readonly events: Sse[] = [];
  readonly comments: string[] = [];
  readonly #abort = new AbortController();
  status = 0;
  contentType = '';
  ended = false;
  ready: Promise<void>;

  constructor(url: string) {
    let onReady!: () => void;
    this.ready = new Promise((r) => (onReady = r));
    void (async () => {
      try {
        const res = await fetch(url, { signal: this.#abort.signal });
        this.status = res.status;
        this.contentType = res.headers.get('content-type') ?? '';
        if (res.status !== 200) {
          this.events.push({ event: 'http-error', data: (await res.json()) as Record<string, unknown> });
          onReady();
          return;
        }
        const decoder = new TextDecoder();
        let buf = '';
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const e: Partial<Sse> = {};
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
              else if (line.startsWith('event: ')) e.event = line.slice(7);
              else if (line.startsWith('id: ')) e.id = line.slice(4);
              else if (line.startsWith('data: ')) e.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
            }
            if (e.event) {
              this.events.push(e as Sse);
              if (e.event === 'ready') onReady();
            }
          }
        }
      } catch {
        // aborted
      }
      this.ended = true;
      onReady();
    })();
  }

  of(type: string): Record<string, unknown>[] {
    return this.events.filter((e) => e.event === type).map((e) => e.data);
  }

  async waitFor(what: string, match: (e: Sse) => boolean, timeoutMs = 15_000): Promise<Sse> {
    return waitFor(async () => this.events.find(match), timeoutMs, what);
  }

  close(): void {
    this.#abort.abort();
  }
}

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ eventsHeartbeatMs: 200, eventsMaxBufferBytes: 256 * 1024, eventsDrainMs: 500 });
  await writeShellExtension(s.extRoot, 'ev', [
    { id: 'ev-two-steps', tasks: [{ id: 'first', sh: 'sleep 0.2' }, { id: 'second', sh: 'exit 0', upstream: ['first'] }] },
  ]);
  await s.call('POST', '/api/workflows/reload');
  expect((await s.call('POST', '/api/projects', { name: 'other' })).status).toBe(201);
}, 30_000);
afterAll(async () => {
  await s?.close();
});

const clients: EventClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});
const open = async (query = ''): Promise<EventClient> => {
  const c = new EventClient(`${s.url}/api/events${query}`);
  clients.push(c);
  await c.ready;
  return c;
};

describe('GET /api/events', () => {
  it('streams text/event-stream, starting with ready, with heartbeats', async () => {
    const c = await open();
    expect(c.status).toBe(200);
    expect(c.contentType).toMatch(/^text\/event-stream/);
    expect(c.events[0]).toMatchObject({ event: 'ready', data: { type: 'ready', project: null } });
    await waitFor(async () => c.comments.includes('heartbeat'), 3000, 'a heartbeat');
    c.close();
  });

  it('sends a run through its states, with its tasks', async () => {
    const all = await open();
    const other = await open('?project=other');
    const job = await s.call('POST', '/api/jobs', { workflow: 'ev-two-steps' });
    expect(job.status).toBe(201);
    const runId = job.body.runs[0].id as string;
    await all.waitFor('run success event', (e) => e.event === 'run' && e.data.id === runId && e.data.state === 'success');
    const runs = all.of('run').filter((r) => r.id === runId);
    expect(runs.map((r) => r.state)).toEqual(['queued', 'running', 'success']);
    expect(runs[0]).toEqual({ type: 'run', project: 'admin', id: runId, job: job.body.id, workflow: 'ev-two-steps', state: 'queued', attempt: 1 });
    const tasks = all.of('task').filter((t) => t.run === runId);
    const states = (id: string) => tasks.filter((t) => t.id === id).map((t) => t.state);
    expect(states('first')).toEqual(expect.arrayContaining(['queued', 'running', 'success']));
    expect(states('second').at(-1)).toBe('success');
    expect(tasks.indexOf(tasks.find((t) => t.id === 'first' && t.state === 'success')!)).toBeLessThan(tasks.indexOf(tasks.find((t) => t.id === 'second' && t.state === 'running')!));
    expect(tasks[0]).toMatchObject({ type: 'task', project: 'admin', run: runId, try_number: expect.any(Number), attempt: 1 });
    // Ids increase in the order sent.
    const ids = all.events.filter((e) => e.id).map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    // The other project's stream saw none of it.
    expect(other.events.filter((e) => e.event === 'run' || e.event === 'task')).toEqual([]);
    all.close();
    other.close();
  });

  it('filters by project and by type', async () => {
    const admin = await open('?project=admin&types=run');
    const other = await open('?project=other');
    const job = await s.call('POST', '/api/jobs', { workflow: 'ev-two-steps', project: 'other' });
    const runId = job.body.runs[0].id as string;
    await other.waitFor('run success in other', (e) => e.event === 'run' && e.data.id === runId && e.data.state === 'success');
    expect(other.of('run').every((r) => r.project === 'other')).toBe(true);
    expect(other.of('task').length).toBeGreaterThan(0);
    const adminJob = await s.call('POST', '/api/jobs', { workflow: 'ev-two-steps' });
    await admin.waitFor('admin run', (e) => e.event === 'run' && e.data.id === adminJob.body.runs[0].id && e.data.state === 'success');
    expect(admin.events.filter((e) => e.event !== 'ready').every((e) => e.event === 'run' && e.data.project === 'admin')).toBe(true);
    expect(admin.of('run').some((r) => r.id === runId)).toBe(false);
    admin.close();
    other.close();
  });

  it('answers HEAD without subscribing', async () => {
    await waitFor(async () => s.tessera.events.subscribers === 0, 3000, 'earlier clients gone');
    const res = await fetch(`${s.url}/api/events`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(s.tessera.events.subscribers).toBe(0);
  });

  it('answers 404 for an unknown project and 400 for an unknown type', async () => {
    const res = await fetch(`${s.url}/api/events?project=nope`);
    expect(res.status).toBe(404);
    const bad = await fetch(`${s.url}/api/events?types=run,bogus`);
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('TESSERA_INVALID_REQUEST');
    expect(body.error.message).toContain('"bogus"');
  });

  it('coalesces an import into a few series events, and tells of the dataset and of deletes', async () => {
    const c = await open('?types=series,dataset,import');
    const dir = join(s.home, 'sample-import');
    const { files, series } = await writeSampleCt(dir, { slices: 40, size: 16 });
    const fd = new FormData();
    for (const f of files) fd.append('file', new Blob([new Uint8Array(await readFile(f))]), `folder/${f.split('/').pop()}`);
    fd.append('file', new Blob(['not DICOM']), 'folder/readme.txt');
    const res = await fetch(`${s.url}/api/dicom/import?dataset=ev-import&upload_id=ev-up-1`, { method: 'POST', body: fd });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { upload_id: string; stored: number; rejected: number; files: { file: string; status: string; error?: { code: string; message: string } }[] };
    expect(answer).toMatchObject({ upload_id: 'ev-up-1', stored: 40, rejected: 1 });
    expect(answer.files).toHaveLength(41);
    expect(answer.files[0]).toMatchObject({ file: expect.stringMatching(/^folder\//), status: 'stored', series_instance_uid: series });
    expect(answer.files[40]).toMatchObject({ file: 'folder/readme.txt', status: 'rejected', error: { code: 'TESSERA_INVALID_DICOM', message: expect.any(String) } });
    await c.waitFor('import done', (e) => e.event === 'import' && e.data.state === 'done');
    const imports = c.of('import');
    expect(imports[0]).toEqual({ type: 'import', project: 'admin', id: 'ev-up-1', dataset: 'ev-import', state: 'running', files: 0, stored: 0, duplicates: 0, rejected: 0 });
    expect(imports.at(-1)).toEqual({ type: 'import', project: 'admin', id: 'ev-up-1', dataset: 'ev-import', state: 'done', files: 41, stored: 40, duplicates: 0, rejected: 1 });
    await c.waitFor('series completed', (e) => e.event === 'series' && (e.data.completed as string[]).includes(series));
    const seriesEvents = c.of('series');
    expect(seriesEvents.reduce((n, e) => n + (e.instances as number), 0)).toBe(40);
    // 40 instances, and at most one event per 250 ms window (plus the completion).
    expect(seriesEvents.length).toBeLessThanOrEqual(4);
    expect(seriesEvents[0]).toMatchObject({ type: 'series', project: 'admin', state: 'changed', stored: [series], deleted: [], truncated: false });
    expect(c.of('dataset')).toContainEqual({ type: 'dataset', project: 'admin', name: 'ev-import', state: 'changed' });

    expect((await s.call('POST', '/api/datasets', { name: 'ev-made' })).status).toBe(201);
    expect((await s.call('DELETE', '/api/datasets/ev-made')).status).toBe(200);
    expect((await s.call('DELETE', `/api/series/${series}`)).status).toBe(200);
    await c.waitFor('series deleted', (e) => e.event === 'series' && (e.data.deleted as string[]).includes(series));
    expect(c.of('dataset').filter((d) => d.name === 'ev-made').map((d) => d.state)).toEqual(['created', 'deleted']);
    c.close();
  });

  it('tells of an extension install and of an application launch', async () => {
    const c = await open('?types=extension,application');
    const install = await s.call('POST', '/api/extensions/hello-world-app/install?wait=true', {});
    expect(install.status, JSON.stringify(install.body)).toBe(200);
    await c.waitFor('installed', (e) => e.event === 'extension' && e.data.state === 'installed');
    const ext = c.of('extension').filter((e) => e.name === 'hello-world-app');
    expect(ext[0]).toMatchObject({ type: 'extension', name: 'hello-world-app', state: 'installing', version: expect.any(String) });
    expect(ext.at(-1)).toMatchObject({ state: 'installed', progress: null, error: null });

    const launch = await s.call('POST', '/api/applications', { extension: 'hello-world-app', project: 'other', name: 'ev-app' });
    expect(launch.status, JSON.stringify(launch.body)).toBe(202);
    await c.waitFor('app running', (e) => e.event === 'application' && e.data.name === 'ev-app' && e.data.state === 'running', 20_000);
    expect((await s.call('DELETE', '/api/applications/ev-app?project=other')).status).toBe(200);
    await c.waitFor('app stopped', (e) => e.event === 'application' && e.data.name === 'ev-app' && e.data.state === 'stopped');
    const states = c.of('application').filter((a) => a.name === 'ev-app').map((a) => a.state);
    expect(states[0]).toBe('starting');
    expect(states.slice(-2)).toEqual(['running', 'stopped']);
    expect(c.of('application')[0]).toMatchObject({ type: 'application', project: 'other', id: launch.body.id, extension: 'hello-world-app', reason: null });

    expect((await s.call('DELETE', '/api/extensions/hello-world-app')).status).toBe(200);
    await c.waitFor('uninstalled', (e) => e.event === 'extension' && e.data.state === 'not_installed');
    expect(c.of('extension').map((e) => e.state)).toContain('uninstalling');
    c.close();
  }, 40_000);

  it('frees everything when clients go away, over many connects and disconnects', async () => {
    const bus = s.tessera.events;
    await waitFor(async () => bus.subscribers === 0, 3000, 'earlier clients gone');
    const runListeners = s.tessera.scheduler.listenerCount('run');
    for (let round = 0; round < 10; round++) {
      const clients = await Promise.all(Array.from({ length: 20 }, () => open(round % 2 ? '?project=other' : '')));
      expect(bus.subscribers).toBe(20);
      for (const c of clients) c.close();
      await waitFor(async () => bus.subscribers === 0, 3000, `round ${round}: subscribers gone`);
    }
    expect(s.tessera.scheduler.listenerCount('run')).toBe(runListeners);
    // The server still answers.
    expect((await s.call('GET', '/api/health')).status).toBe(200);
  }, 30_000);

  it('disconnects a client that does not read, without holding up the others', async () => {
    const bus = s.tessera.events;
    const reader = await open('?types=dataset');
    // A raw connection whose socket is never read from.
    const stalled = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request(`${s.url}/api/events?types=dataset`, (res) => {
        res.pause();
        resolve(res);
      });
      req.on('error', reject);
      req.end();
    });
    stalled.socket.pause();
    await waitFor(async () => bus.subscribers === 2, 3000, 'both subscribed');
    // 40 MB in bursts of 100 events, a reading client keeps up.
    const name = 'x'.repeat(4000);
    let sent = 0;
    for (let round = 0; round < 100 && bus.subscribers === 2; round++) {
      for (let i = 0; i < 100; i++) bus.publish({ type: 'dataset', project: 'admin', name, state: 'changed' });
      sent += 100;
      await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(async () => bus.subscribers === 1, 5000, 'the stalled client dropped');
    expect(sent).toBeLessThan(10_000);
    await waitFor(async () => reader.of('dataset').length === sent, 10_000, 'the reading client got every event');
    reader.close();
    stalled.destroy();
  }, 40_000);
});

describe('the event bus', () => {
  it('gives an in-process subscriber the events with their sequence numbers', async () => {
    const events: unknown[] = [];
    const unsubscribe = s.tessera.events.subscribe((d) => events.push(d));
    expect((await s.call('POST', '/api/datasets', { name: 'ev-quiet' })).status).toBe(201);
    expect(events).toEqual([{ seq: expect.any(Number), event: { type: 'dataset', project: 'admin', name: 'ev-quiet', state: 'created' } }]);
    unsubscribe();
    expect(s.tessera.events.subscribers).toBe(0);
  });
});

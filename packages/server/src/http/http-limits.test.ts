import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '../../../dicom/src/samples/sample-ct.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';
import { loadConfig } from '../config.ts';
import { httpLimitsOf, httpServerOptions } from './http-limits.ts';

/** A raw client connection: what it received, and whether the server closed it. */
interface Raw {
  socket: Socket;
  received: () => string;
  closed: Promise<number>;
  isClosed: () => boolean;
}

async function open(url: string): Promise<Raw> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  let data = '';
  let closedAt = 0;
  socket.on('data', (b: Buffer) => (data += b.toString('latin1')));
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve((closedAt = Date.now()))));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => data, closed, isClosed: () => closedAt > 0 };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const host = (url: string): string => new URL(url).host;

/** A request head of a DICOM upload of `length` bytes. */
const uploadHead = (url: string, length: number, project: string): string =>
  `POST /api/dicom/import?project=${project} HTTP/1.1\r\nHost: ${host(url)}\r\nContent-Type: application/dicom\r\nContent-Length: ${length}\r\n\r\n`;

describe('HTTP limits (idle 1 s, minimum 1 KB/s over 2 s, head 1 s)', () => {
  let s: TestServer;
  let slice: Buffer;
  beforeAll(async () => {
    s = await startTestServer({ httpIdleTimeoutSeconds: 1, httpMinBodyRateKb: 1, httpMinBodyRateWindowSeconds: 2, httpHeadersTimeoutSeconds: 1, eventsHeartbeatMs: 4_000 });
    // One CT slice of 256 x 256 (about 130 KB).
    const { files } = await writeSampleCt(join(s.home, 'sample'), { slices: 1, size: 256 });
    slice = await readFile(files[0]!);
    expect((await s.call('POST', '/api/projects', { name: 'slow' })).status).toBe(201);
    expect((await s.call('POST', '/api/projects', { name: 'quiet' })).status).toBe(201);
  }, 30_000);
  afterAll(async () => {
    await s?.close();
  });

  it('cuts off a body trickling at 1 byte/s with 408 after the rate window, and keeps serving others', async () => {
    const c = await open(s.url);
    const started = Date.now();
    c.socket.write(uploadHead(s.url, slice.length, 'slow'));
    let i = 0;
    const trickle = setInterval(() => {
      if (!c.socket.destroyed) c.socket.write(slice.subarray(i, ++i));
    }, 1000);
    try {
      // Others are served meanwhile.
      const health = await fetch(`${s.url}/api/health`);
      expect(health.status).toBe(200);
      const closedAt = await Promise.race([c.closed, sleep(8_000).then(() => 0)]);
      expect(closedAt, 'the trickling connection was not closed').toBeGreaterThan(0);
      // 1 byte/s is never idle for 1 s: the 2 s minimum-rate window ends it.
      expect(closedAt - started).toBeGreaterThanOrEqual(1_900);
      expect(closedAt - started).toBeLessThan(5_000);
      const answer = c.received();
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toMatch(/connection: close/i);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('TESSERA_REQUEST_TIMEOUT');
      expect(body.error.message).toMatch(/under the minimum of 1 KB\/s.*TESSERA_HTTP_MIN_BODY_RATE_KB/);
    } finally {
      clearInterval(trickle);
      c.socket.destroy();
    }
    expect((await fetch(`${s.url}/api/health`)).status).toBe(200);
    // Nothing was stored from it.
    const series = await s.call('GET', '/api/series?project=slow');
    expect(series.status).toBe(200);
    expect(JSON.stringify(series.body)).not.toContain('"series_uid"');
  }, 15_000);

  it('closes a connection whose body stops for the idle timeout: 408 from the route, which its contract allows', async () => {
    const c = await open(s.url);
    const started = Date.now();
    // A JSON body (read by Fastify's parser), cut off in the middle.
    c.socket.write(`POST /api/projects HTTP/1.1\r\nHost: ${host(s.url)}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name": "stal`);
    const closedAt = await Promise.race([c.closed, sleep(6_000).then(() => 0)]);
    expect(closedAt, 'the stalled connection was not closed').toBeGreaterThan(0);
    expect(closedAt - started).toBeGreaterThanOrEqual(900);
    expect(closedAt - started).toBeLessThan(2_900);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 [^]*"code":"TESSERA_REQUEST_TIMEOUT"[^]*no byte of the request body arrived for 1 s[^]*TESSERA_HTTP_IDLE_TIMEOUT_SECONDS/);
    expect((await s.call('GET', '/api/projects/stal')).status).toBe(404);
  }, 10_000);

  it('closes a connection whose request head does not arrive within the headers timeout', async () => {
    const c = await open(s.url);
    const started = Date.now();
    c.socket.write(`GET /api/health HTTP/1.1\r\nHost: ${host(s.url)}\r\n`);
    const closedAt = await Promise.race([c.closed, sleep(6_000).then(() => 0)]);
    expect(closedAt, 'the connection with a stalled head was not closed').toBeGreaterThan(0);
    expect(closedAt - started).toBeLessThan(3_000);
    expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
  }, 10_000);

  it('takes an honest upload at about 25 KB/s that lasts 5 times the idle timeout', async () => {
    const c = await open(s.url);
    const started = Date.now();
    c.socket.write(uploadHead(s.url, slice.length, 'slow'));
    const chunk = Math.ceil(slice.length / 26);
    for (let at = 0; at < slice.length; at += chunk) {
      c.socket.write(slice.subarray(at, at + chunk));
      await sleep(200);
    }
    await waitForAnswer(c);
    expect(Date.now() - started).toBeGreaterThanOrEqual(5_000);
    const answer = c.received();
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('"stored":1');
    expect(c.isClosed()).toBe(false);
    c.socket.destroy();
  }, 20_000);

  it('closes a download whose client stops reading it for the idle timeout', async () => {
    // A 64 MB result file: more than the kernel's buffers both ways hold.
    const size = 64 * 1024 * 1024;
    const admin = await s.tessera.projects.require('admin');
    const dir = join(s.home, 'buckets', admin.id, 'run-big');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'big.bin'), Buffer.alloc(size, 7));
    const c = await open(s.url);
    c.socket.pause();
    c.socket.write(`GET /api/results/run-big/files/big.bin?project=admin HTTP/1.1\r\nHost: ${host(s.url)}\r\n\r\n`);
    // Read nothing for 3 s (three idle timeouts), then everything that is there.
    await sleep(3_000);
    c.socket.resume();
    const closedAt = await Promise.race([c.closed, sleep(5_000).then(() => 0)]);
    expect(closedAt, 'the stalled download was not closed').toBeGreaterThan(0);
    expect(c.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(c.received().length).toBeLessThan(size);
    // A client that reads gets all of it.
    const res = await fetch(`${s.url}/api/results/run-big/files/big.bin?project=admin`);
    expect((await res.arrayBuffer()).byteLength).toBe(size);
  }, 20_000);

  it('leaves an event stream open while it is quiet for longer than the idle timeout', async () => {
    const c = await open(s.url);
    c.socket.write(`GET /api/events?project=quiet HTTP/1.1\r\nHost: ${host(s.url)}\r\nAccept: text/event-stream\r\n\r\n`);
    await waitFor(() => c.received().includes('event: ready'), 5_000);
    const before = c.received().length;
    // The heartbeat comes every 4 s: 3 s of silence is three idle timeouts.
    await sleep(3_000);
    expect(c.isClosed()).toBe(false);
    expect(c.received().length).toBe(before);
    await waitFor(() => c.received().includes(':heartbeat') || c.received().includes(': heartbeat'), 4_000);
    expect(c.isClosed()).toBe(false);
    c.socket.destroy();
  }, 15_000);
});

describe('HTTP limits settings', () => {
  it('defaults: 512 connections, head 60 s, idle 60 s, 1 KB/s over 60 s, and no absolute request timeout', () => {
    const limits = httpLimitsOf(loadConfig({}));
    expect(limits).toEqual({ maxConnections: 512, headersTimeoutMs: 60_000, idleTimeoutMs: 60_000, minBodyBytesPerSecond: 1024, minBodyRateWindowMs: 60_000 });
    expect(httpServerOptions(limits)).toMatchObject({ headersTimeout: 60_000, requestTimeout: 0, connectionsCheckingInterval: 15_000 });
  });

  it('reads the environment, and refuses bad values naming the variable', () => {
    const env = { TESSERA_HTTP_MAX_CONNECTIONS: '0', TESSERA_HTTP_HEADERS_TIMEOUT_SECONDS: '2.5', TESSERA_HTTP_IDLE_TIMEOUT_SECONDS: '0', TESSERA_HTTP_MIN_BODY_RATE_KB: '16', TESSERA_HTTP_MIN_BODY_RATE_WINDOW_SECONDS: '30' };
    expect(httpLimitsOf(loadConfig(env))).toEqual({ maxConnections: 0, headersTimeoutMs: 2_500, idleTimeoutMs: 0, minBodyBytesPerSecond: 16 * 1024, minBodyRateWindowMs: 30_000 });
    expect(() => loadConfig({ TESSERA_HTTP_MAX_CONNECTIONS: 'many' })).toThrow('TESSERA_HTTP_MAX_CONNECTIONS="many" must be an integer from 0');
    expect(() => loadConfig({ TESSERA_HTTP_HEADERS_TIMEOUT_SECONDS: '0' })).toThrow('TESSERA_HTTP_HEADERS_TIMEOUT_SECONDS="0" must be a number > 0');
    expect(() => loadConfig({ TESSERA_HTTP_MIN_BODY_RATE_KB: '-1' })).toThrow('TESSERA_HTTP_MIN_BODY_RATE_KB="-1" must be a number >= 0');
  });
});

describe('HTTP connection cap (3 connections)', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ httpMaxConnections: 3 });
  }, 30_000);
  afterAll(async () => {
    await s?.close();
  });

  const get = async (c: Raw): Promise<void> => {
    const before = c.received().length;
    c.socket.write(`GET /api/health HTTP/1.1\r\nHost: ${host(s.url)}\r\n\r\n`);
    await waitFor(() => /\r\n\r\n[^]*\}$/.test(c.received().slice(before)), 5_000);
    expect(c.received().slice(before)).toMatch(/^HTTP\/1\.1 200 /);
  };

  it('closes connections over the cap while the open ones keep working', async () => {
    const held = [await open(s.url), await open(s.url), await open(s.url)];
    for (const c of held) await get(c);
    const extra = await open(s.url);
    extra.socket.write(`GET /api/health HTTP/1.1\r\nHost: ${host(s.url)}\r\n\r\n`);
    const closedAt = await Promise.race([extra.closed, sleep(3_000).then(() => 0)]);
    expect(closedAt, 'the connection over the cap was not closed').toBeGreaterThan(0);
    expect(extra.received()).toBe('');
    // The open ones still work, keep-alive.
    for (const c of held) await get(c);
    // One closed: a new connection is taken again.
    held[0]!.socket.destroy();
    await held[0]!.closed;
    await sleep(100);
    const again = await open(s.url);
    await get(again);
    for (const c of [...held, again]) c.socket.destroy();
  }, 20_000);
});

async function waitFor(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not met within ${timeoutMs} ms`);
    await sleep(25);
  }
}

/** Waits until a whole answer with Content-Length is there. */
async function waitForAnswer(c: Raw): Promise<void> {
  await waitFor(() => {
    const text = c.received();
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return false;
    const length = /content-length: (\d+)/i.exec(text.slice(0, end));
    return length ? Buffer.byteLength(text.slice(end + 4), 'latin1') >= Number(length[1]) : c.isClosed();
  }, 10_000);
}

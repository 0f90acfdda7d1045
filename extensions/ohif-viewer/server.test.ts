import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SERVER = join(dirname(fileURLToPath(import.meta.url)), 'server.mjs');
const BASE = '/applications/project/lab/release/ohif-viewer';

interface Answer { status: number; headers: IncomingHttpHeaders; body: string }

function send(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    }).on('error', reject);
  });
}

/**
 * The viewer's server answering <subpath>/dicom-web by asking a stand-in platform, which
 * records what it is asked and answers like the platform's DICOMweb would. Runs without
 * @ohif/app (a two-file stand-in build).
 */
describe('ohif-viewer server: the project\'s DICOMweb under the instance subpath', () => {
  let dir: string;
  let platform: Server;
  let platformPort: number;
  const asked: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
  const viewers: ChildProcess[] = [];

  /** Starts server.mjs with these variables; answers its port once it is healthy. */
  async function viewer(env: Record<string, string>): Promise<number> {
    const port = await freePort();
    const child = spawn(process.execPath, [SERVER], {
      env: { PATH: process.env.PATH, PORT: String(port), INGRESS_PATH: BASE, TESSERA_PROJECT: 'lab', OHIF_DIST: join(dir, 'dist'), ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    viewers.push(child);
    for (let i = 0; i < 200; i++) {
      const ok = await send(port, `${BASE}/healthz`, env.TESSERA_PROXY_SECRET ? { 'x-tessera-proxy-secret': env.TESSERA_PROXY_SECRET } : {}).then((r) => r.status === 200, () => false);
      if (ok) return port;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('the viewer did not start');
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ohif-server-'));
    await mkdir(join(dir, 'dist'));
    await writeFile(join(dir, 'dist', 'index.html'), '<!doctype html><script src="/app.js"></script>');
    await writeFile(join(dir, 'dist', 'app-config.js'), 'window.config = {};');
    platform = createServer((req, res) => {
      asked.push({ method: req.method!, url: req.url!, headers: req.headers });
      if (req.headers['if-none-match'] === '"v1"') {
        res.writeHead(304, { etag: '"v1"' });
        return res.end();
      }
      // No length: the body comes in pieces, as a multipart answer does.
      res.writeHead(200, { 'content-type': 'application/dicom+json', etag: '"v1"', 'set-cookie': 'x=1', 'x-internal': 'no' });
      res.write('[{"0020000D":');
      setTimeout(() => res.end('{"vr":"UI","Value":["1.2.3"]}}]'), 20);
    });
    await new Promise<void>((r) => platform.listen(0, '127.0.0.1', () => r()));
    platformPort = (platform.address() as AddressInfo).port;
  });
  afterAll(async () => {
    for (const v of viewers) v.kill();
    platform?.closeAllConnections();
    platform?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('forwards reads with the instance\'s token, the query, and only accept, range and if-none-match', async () => {
    const port = await viewer({ TESSERA_API_URL: `http://127.0.0.1:${platformPort}`, TESSERA_API_TOKEN: 'tsr_instance' });
    asked.length = 0;
    const res = await send(port, `${BASE}/dicom-web/studies?PatientName=a*b&includefield=all&limit=5`, {
      accept: 'application/dicom+json', range: 'bytes=0-9', 'if-none-match': '"v0"',
      cookie: 'tessera_session=secret; other=1', authorization: 'Bearer from-the-browser', 'x-forwarded-for': '10.0.0.1', 'user-agent': 'test',
    });
    expect(res.status).toBe(200);
    expect(res.body).toBe('[{"0020000D":{"vr":"UI","Value":["1.2.3"]}}]');
    expect(res.headers['content-type']).toBe('application/dicom+json');
    expect(res.headers.etag).toBe('"v1"');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['x-internal']).toBeUndefined();
    expect(asked).toHaveLength(1);
    expect(asked[0]!.method).toBe('GET');
    expect(asked[0]!.url).toBe('/projects/lab/dicom-web/studies?PatientName=a*b&includefield=all&limit=5');
    const { host: _host, connection: _connection, ...headers } = asked[0]!.headers;
    expect(headers).toEqual({ accept: 'application/dicom+json', range: 'bytes=0-9', 'if-none-match': '"v0"', authorization: 'Bearer tsr_instance' });

    // Conditional requests and HEAD pass through.
    const unchanged = await send(port, `${BASE}/dicom-web/studies/1.2.3/metadata`, { 'if-none-match': '"v1"' });
    expect(unchanged.status).toBe(304);
    expect(unchanged.headers.etag).toBe('"v1"');
    const head = await send(port, `${BASE}/dicom-web/studies`, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(asked.at(-1)!.method).toBe('HEAD');
  });

  it("answers only requests with the proxy's secret when it has one: another local process gets nothing through it", async () => {
    const port = await viewer({ TESSERA_API_URL: `http://127.0.0.1:${platformPort}`, TESSERA_API_TOKEN: 'tsr_instance', TESSERA_PROXY_SECRET: 'the-secret-of-this-start' });
    asked.length = 0;
    for (const sent of [undefined, 'wrong', 'the-secret-of-this-star', 'the-secret-of-this-start-']) {
      const refused = await send(port, `${BASE}/dicom-web/studies`, sent === undefined ? {} : { 'x-tessera-proxy-secret': sent });
      expect(refused.status, String(sent)).toBe(403);
      expect((await send(port, `${BASE}/`, sent === undefined ? {} : { 'x-tessera-proxy-secret': sent })).status).toBe(403);
    }
    expect(asked).toEqual([]);
    const ok = await send(port, `${BASE}/dicom-web/studies`, { 'x-tessera-proxy-secret': 'the-secret-of-this-start' });
    expect(ok.status).toBe(200);
    expect(asked).toHaveLength(1);
    expect(asked[0]!.headers['x-tessera-proxy-secret']).toBeUndefined();
  });

  it('sends no credential with access control off, and keeps a path of TESSERA_API_URL', async () => {
    const port = await viewer({ TESSERA_API_URL: `http://127.0.0.1:${platformPort}/tessera/` });
    asked.length = 0;
    expect((await send(port, `${BASE}/dicom-web/studies/1.2.3/series/4.5/instances/6.7/frames/1`, { authorization: 'Basic eDp5' })).status).toBe(200);
    expect(asked[0]!.url).toBe('/tessera/projects/lab/dicom-web/studies/1.2.3/series/4.5/instances/6.7/frames/1');
    expect(asked[0]!.headers.authorization).toBeUndefined();
  });

  it('refuses writes and path tricks without asking the platform, and says when the platform is down', async () => {
    const port = await viewer({ TESSERA_API_URL: `http://127.0.0.1:${platformPort}`, TESSERA_API_TOKEN: 'tsr_instance' });
    asked.length = 0;
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const refused = await send(port, `${BASE}/dicom-web/studies`, { 'content-type': 'application/dicom' }, method);
      expect(refused.status, method).toBe(405);
      expect(refused.headers.allow).toBe('GET, HEAD');
    }
    for (const trick of ['/dicom-web/..', '/dicom-web/../../../../api/series', '/dicom-web/%2e%2e/%2E%2E/api', '/dicom-web/studies/.%2e/x', '/dicom-web/./studies',
      '/dicom-web/studies%2F..%2F..%2Fapi', '/dicom-web/studies%5c..', '/dicom-web/studies\\..\\..', '/dicom-web/%zz']) {
      expect((await send(port, `${BASE}${trick}`)).status, trick).toBe(400);
    }
    expect(asked).toEqual([]);

    const closed = new Promise<void>((r) => platform.close(() => r()));
    platform.closeAllConnections();
    await closed;
    const down = await send(port, `${BASE}/dicom-web/studies`);
    expect(down.status).toBe(502);
    expect(down.body).toContain('could not reach Tessera\'s DICOMweb');
  });
});

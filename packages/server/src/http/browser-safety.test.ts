import { request as httpRequest, createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '../../../dicom/src/samples/sample-ct.ts';
import { startTestServer, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';
import { BrowserSafety } from './browser-safety.ts';

// DNS rebinding (Host) and CSRF (Origin) with real sockets (issue 14): every refusal comes
// before routing, in the error format, and a refused request does nothing.

let s: TestServer;
let port: number;
let app: Server;
const appSaw: string[] = [];
const APP = '/applications/project/admin/release/fake';

interface Answer { status: number; headers: IncomingMessage['headers']; body: string; json: any } // eslint-disable-line @typescript-eslint/no-explicit-any

/** A request with exactly these headers (node:http, so Host can be anything). */
function send(method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, setHost: false, agent: false }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What comes back on a raw socket for `head` (until the server closes, or 2 s). */
function rawExchange(head: string): Promise<string> {
  return new Promise((resolve) => {
    const c = connect({ host: '127.0.0.1', port });
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString('latin1')));
    c.on('error', () => undefined);
    const done = (): void => resolve(got);
    c.on('close', done);
    setTimeout(() => {
      c.destroy();
      done();
    }, 2000);
    c.write(head);
  });
}

beforeAll(async () => {
  s = await startTestServer({ allowedHosts: ['tessera.test', 'pinned.test:9999'], allowedOrigins: ['https://viewer.test'] });
  port = Number(new URL(s.url).port);
  await writeShellExtension(s.extRoot, 'bs', [{ id: 'bs-wf', tasks: [{ id: 't', sh: 'exit 0' }] }]);
  await s.call('POST', '/api/workflows/reload');
  // A running "instance": the proxy's lookup finds it (its fast path forwards to it).
  app = createServer((req, res) => {
    appSaw.push(`${req.method} ${req.url} ${req.headers.host}`);
    res.end('from the app');
  });
  app.on('upgrade', (req, socket) => {
    appSaw.push(`upgrade ${req.url}`);
    socket.end('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  const appPort = (app.address() as AddressInfo).port;
  const apps = s.tessera.apps as unknown as { target: (p: string, i: string) => unknown };
  const real = apps.target.bind(apps);
  apps.target = (p, i) => (p === 'admin' && i === 'fake' ? { state: 'running', port: appPort, ingress: 'subpath', reason: null } : real(p, i));
}, 60_000);

afterAll(async () => {
  await s?.close();
  await new Promise((r) => app?.close(r));
});

const ws = (path: string, host: string, origin?: string): string =>
  `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${origin ? `Origin: ${origin}\r\n` : ''}\r\n`;

describe('Host (DNS rebinding)', () => {
  it.each(['/api/health', '/api/jobs', '/dicom-web/studies', '/', '/some/ui/page', `${APP}/`, `${APP}/x`, '/applications/project/admin/release/none/'])('refuses Host evil.example on %s with 421 naming the Host and the setting', async (path) => {
    appSaw.length = 0;
    const r = await send('GET', path, { host: 'evil.example' });
    expect(r.status).toBe(421);
    expect(r.json.error.code).toBe('TESSERA_HOST_NOT_ALLOWED');
    expect(r.json.error.message).toContain('evil.example');
    expect(r.json.error.message).toContain('TESSERA_ALLOWED_HOSTS');
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    expect(appSaw).toEqual([]);
  });

  it.each([`localhost:${0}`, 'localhost', '127.0.0.1', '127.1.2.3:80', '[::1]:8080', 'LOCALHOST:1', 'tessera.test', 'tessera.test:443', 'pinned.test:9999'])('answers Host %s', async (host) => {
    const r = await send('GET', '/api/health', { host });
    expect(r.status).toBe(200);
  });

  it.each(['pinned.test', 'pinned.test:80', 'evil.tessera.test', 'localhost.evil.example', '127.0.0.1.evil.example', '[::2]', 'a b', 'evil.example@127.0.0.1'])('refuses Host %s', async (host) => {
    expect((await send('GET', '/api/health', { host })).status).toBe(421);
  });

  it('refuses a request without Host (HTTP/1.0), in the error format', async () => {
    const got = await rawExchange('GET /api/health HTTP/1.0\r\n\r\n');
    expect(got).toMatch(/^HTTP\/1\.1 421 /);
    expect(got).toContain('"code":"TESSERA_HOST_NOT_ALLOWED"');
    expect(got).toContain('no Host header');
  });

  it('forwards to a running instance by the fast path only with an allowed Host', async () => {
    appSaw.length = 0;
    const ok = await send('GET', `${APP}/page`, { host: `127.0.0.1:${port}` });
    expect(ok.body).toBe('from the app');
    expect(appSaw).toEqual([`GET ${APP}/page 127.0.0.1:${port}`]);
    // Keep-alive on a raw socket: the fast path reads the second request, and refuses it.
    const got = await rawExchange(`GET ${APP}/a HTTP/1.1\r\nHost: localhost\r\n\r\nGET ${APP}/b HTTP/1.1\r\nHost: evil.example\r\n\r\n`);
    expect(got).toContain('from the app');
    expect(got).toContain('421 Misdirected Request');
    expect(appSaw.slice(1)).toEqual([`GET ${APP}/a localhost`]);
  });

  it('refuses a WebSocket upgrade with Host evil.example, to the API and to an instance', async () => {
    appSaw.length = 0;
    for (const path of ['/api/events', `${APP}/socket`]) {
      const got = await rawExchange(ws(path, 'evil.example'));
      expect(got).toMatch(/^HTTP\/1\.1 421 /);
      expect(got).toContain('TESSERA_HOST_NOT_ALLOWED');
    }
    // From another origin: refused as well (cross-site WebSocket hijacking).
    const cross = await rawExchange(ws(`${APP}/socket`, `127.0.0.1:${port}`, 'http://evil.example'));
    expect(cross).toMatch(/^HTTP\/1\.1 403 /);
    expect(appSaw).toEqual([]);
    const ok = await rawExchange(ws(`${APP}/socket`, `127.0.0.1:${port}`, `http://127.0.0.1:${port}`));
    expect(ok).toMatch(/^HTTP\/1\.1 101 /);
    expect(appSaw).toEqual([`upgrade ${APP}/socket`]);
  });
});

describe('Origin (CSRF)', () => {
  const jobs = async (): Promise<number> => (await s.call('GET', '/api/runs')).body.total as number;
  const series = async (project: string): Promise<number> => ((await s.call('GET', `/api/series?project=${project}`)).body.total as number | undefined) ?? 0;
  const self = (): string => `127.0.0.1:${port}`;
  const job = JSON.stringify({ workflow: 'bs-wf' });

  it('refuses a cross-origin POST /api/jobs with 403, and starts nothing', async () => {
    const before = await jobs();
    for (const headers of [
      { origin: 'http://evil.example' },
      { origin: 'null' },
      { origin: `http://127.0.0.2:${port}` },
      { origin: `https://${self()}` },
      { origin: `http://127.0.0.1:${port + 1}` },
      { 'sec-fetch-site': 'cross-site' },
    ] as Record<string, string>[]) {
      const r = await send('POST', '/api/jobs', { host: self(), 'content-type': 'application/json', ...headers }, job);
      expect(r.status, JSON.stringify(headers)).toBe(403);
      expect(r.json.error.code).toBe('TESSERA_CROSS_ORIGIN');
      expect(r.json.error.message).toContain('TESSERA_ALLOWED_ORIGINS');
    }
    // A form POST (text/plain, as a hostile form can send) too.
    const form = await send('POST', '/api/jobs', { host: self(), origin: 'http://evil.example', 'content-type': 'text/plain' }, job);
    expect(form.status).toBe(403);
    expect(await jobs()).toBe(before);
  });

  it('lets a same-origin POST, a configured origin and one without Origin (the CLI) through', async () => {
    const before = await jobs();
    for (const headers of [{ origin: `http://${self()}`, 'sec-fetch-site': 'same-origin' }, { origin: 'https://viewer.test' }, {}, { 'sec-fetch-site': 'none' }] as Record<string, string>[]) {
      const r = await send('POST', '/api/jobs', { host: self(), 'content-type': 'application/json', ...headers }, job);
      expect(r.status, JSON.stringify(headers)).toBe(201);
    }
    // Behind a reverse proxy: https://tessera.test in Origin, plain HTTP to us, X-Forwarded-Proto https.
    const proxied = await send('POST', '/api/jobs', { host: 'tessera.test', origin: 'https://tessera.test', 'x-forwarded-proto': 'https', 'content-type': 'application/json' }, job);
    expect(proxied.status).toBe(201);
    expect(await jobs()).toBe(before + 5);
  });

  it('refuses a cross-origin multipart upload and a STOW-RS, and stores nothing; the same from the own origin stores', async () => {
    await s.call('POST', '/api/projects', { name: 'csrf' });
    const { files } = await writeSampleCt(join(s.home, 'samples', 'csrf'), { slices: 1, size: 8 });
    const dicom = await readFile(files[0]!);
    const boundary = 'tessera-csrf-boundary';
    const multipart = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.dcm"\r\nContent-Type: application/octet-stream\r\n\r\n`), dicom, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    const related = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), dicom, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    const upload = (origin?: string) => send('POST', '/api/dicom/import?project=csrf', { host: self(), 'content-type': `multipart/form-data; boundary=${boundary}`, ...(origin ? { origin } : {}) }, multipart);
    const stow = (origin?: string) => send('POST', '/projects/csrf/dicom-web/studies', { host: self(), 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, accept: 'application/dicom+json', ...(origin ? { origin } : {}) }, related);
    expect((await upload('http://evil.example')).status).toBe(403);
    expect((await stow('http://evil.example')).status).toBe(403);
    expect(await series('csrf')).toBe(0);
    expect((await upload(`http://${self()}`)).status).toBe(200);
    expect((await stow()).status).toBe(200);
    expect(await series('csrf')).toBe(1);
  });

  it('refuses a cross-origin POST to an application instance; a same-origin one reaches it', async () => {
    appSaw.length = 0;
    const cross = await send('POST', `${APP}/save`, { host: self(), origin: 'http://evil.example', 'content-length': '0' });
    expect(cross.status).toBe(403);
    expect(appSaw).toEqual([]);
    const same = await send('POST', `${APP}/save`, { host: self(), origin: `http://${self()}`, 'content-length': '0' });
    expect(same.body).toBe('from the app');
    expect(appSaw).toEqual([`POST ${APP}/save ${self()}`]);
    // Behind a TLS-terminating reverse proxy.
    const proxied = await send('POST', `${APP}/save`, { host: 'tessera.test', origin: 'https://tessera.test', 'x-forwarded-proto': 'https', 'content-length': '0' });
    expect(proxied.body).toBe('from the app');
    expect((await send('POST', `${APP}/save`, { host: 'tessera.test', origin: 'https://tessera.test', 'content-length': '0' })).status).toBe(403);
  });

  it('keeps CORS closed: a preflight from another origin gets no allow headers, a GET no Access-Control-Allow-Origin', async () => {
    const pre = await send('OPTIONS', '/api/jobs', { host: self(), origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' });
    expect(Object.keys(pre.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    const get = await send('GET', '/api/health', { host: self(), origin: 'http://evil.example' });
    expect(get.status).toBe(200);
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('BrowserSafety', () => {
  it('allows the bound address and the host of TESSERA_PUBLIC_URL, and its origin', () => {
    const b = new BrowserSafety({ host: '10.1.2.3', publicUrl: 'https://tessera.example.org/', allowedHosts: [], allowedOrigins: [] });
    expect(b.hostAllowed('10.1.2.3:8080')).toBe(true);
    expect(b.hostAllowed('tessera.example.org')).toBe(true);
    expect(b.hostAllowed('10.1.2.4')).toBe(false);
    expect(b.originAllowed('POST', { host: '10.1.2.3:8080', origin: 'https://tessera.example.org', 'sec-fetch-site': 'same-origin', 'x-forwarded-proto': undefined }, false)).toBe(true);
    const any = new BrowserSafety({ host: '0.0.0.0', publicUrl: undefined, allowedHosts: [], allowedOrigins: [] });
    // What `npm start` prints and gives tasks as TESSERA_API_URL, and this machine's addresses.
    expect(any.hostAllowed('0.0.0.0:8080')).toBe(true);
    expect(any.hostAllowed('127.0.0.1:8080')).toBe(true);
    expect(any.hostAllowed('evil.example:8080')).toBe(false);
    expect(b.originAllowed('GET', { host: 'x', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'x-forwarded-proto': undefined }, false)).toBe(true);
  });
});

describe('TESSERA_ALLOWED_HOSTS and TESSERA_ALLOWED_ORIGINS', () => {
  it('are read comma-separated; a value that is not a host or an origin stops the start naming it', async () => {
    const { loadConfig } = await import('../config.ts');
    const c = loadConfig({ TESSERA_ALLOWED_HOSTS: 'tessera.lab, [fd00::1]:8080', TESSERA_ALLOWED_ORIGINS: 'https://viewer.lab' });
    expect(c.allowedHosts).toEqual(['tessera.lab', '[fd00::1]:8080']);
    expect(c.allowedOrigins).toEqual(['https://viewer.lab']);
    expect(() => loadConfig({ TESSERA_ALLOWED_HOSTS: 'http://tessera.lab/' })).toThrow(/TESSERA_ALLOWED_HOSTS.*not a host/);
    expect(() => loadConfig({ TESSERA_ALLOWED_ORIGINS: 'https://viewer.lab/app' })).toThrow(/TESSERA_ALLOWED_ORIGINS.*not an origin/);
  });
});

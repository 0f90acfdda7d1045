import { execFileSync, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../__fixtures__/server-process.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';
import { loadConfig } from '../config.ts';
import { createTessera } from '../create-tessera.ts';

// HTTPS from TESSERA_TLS_CERT and TESSERA_TLS_KEY (issue 14), with a self-signed
// certificate made by openssl for this test (openssl is on every machine of the project;
// in CI its absence fails here, as it should).

let dir: string;
let cert: string;
let key: string;
let ca: Buffer;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A request over HTTPS that trusts only the test's certificate. */
function secure(url: string, o: { method?: string; headers?: Record<string, string>; body?: string; trust?: boolean } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: o.method ?? 'GET', headers: o.headers, ...(o.trust === false ? {} : { ca }), agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-tls-'));
  cert = join(dir, 'cert.pem');
  key = join(dir, 'key.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=tessera.test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'other-key.pem')]);
  openssl(['pkey', '-in', key, '-aes256', '-passout', 'pass:secret', '-out', join(dir, 'encrypted-key.pem')]);
  await writeFile(join(dir, 'not-pem.txt'), 'this is not a certificate\n');
  await mkdir(join(dir, 'a-folder'));
  ca = readFileSync(cert);
}, 30_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a server with TESSERA_TLS_CERT and TESSERA_TLS_KEY', () => {
  let s: TestServer;
  let app: Server;
  let port: number;
  const appSaw: string[] = [];

  beforeAll(async () => {
    s = await startTestServer({ tls: { certFile: cert, keyFile: key } });
    port = Number(new URL(s.url).port);
    // A running application instance for the proxy (as in browser-safety.test.ts): its lookup finds it.
    app = createServer((req, res) => {
      appSaw.push(`${req.method} ${req.url} ${req.headers['x-forwarded-proto']}`);
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
    await new Promise((r) => app?.close(r));
    await s?.close();
  });

  it('serves HTTPS with the certificate, and says https in its URL and the URLs it gives out', async () => {
    expect(s.url).toBe(`https://127.0.0.1:${port}`);
    const health = await secure(`${s.url}/api/health`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });
    expect(s.tessera.tls?.subject).toBe('CN=tessera.test');
    // What the server tells others its address is (tasks' TESSERA_API_URL, DICOMweb's RetrieveURLs).
    const system = JSON.parse((await secure(`${s.url}/api/system`)).body) as { components: { dicomweb: { url: string } } };
    expect(system.components.dicomweb.url).toBe(`https://127.0.0.1:${port}/dicom-web`);
    // A client that does not trust the certificate refuses it: it is the one given, not some default.
    await expect(secure(`${s.url}/api/health`, { trust: false })).rejects.toThrow(/self[- ]signed certificate/);
  });

  it('does not answer plain HTTP on its port', async () => {
    const plain = new Promise<number>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/api/health', agent: false }, (res) => resolve(res.statusCode!));
      req.on('error', reject);
      req.end();
    });
    await expect(plain).rejects.toThrow(/socket hang up|ECONNRESET|Parse Error/);
  });

  it('treats its https origin as same-origin, and the http one of the same host and port as another site', async () => {
    const same = await secure(`${s.url}/api/projects`, { method: 'POST', headers: { origin: `https://127.0.0.1:${port}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'over-tls' }) });
    expect(same.status, same.body).toBe(201);
    const other = await secure(`${s.url}/api/projects`, { method: 'POST', headers: { origin: `http://127.0.0.1:${port}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'not-made' }) });
    expect(other.status).toBe(403);
    expect(JSON.parse(other.body).error.code).toBe('TESSERA_CROSS_ORIGIN');
    expect((await secure(`${s.url}/api/projects/not-made`)).status).toBe(404);
  });

  it('proxies application instances over HTTPS: requests, same-origin POSTs and WebSocket upgrades', async () => {
    const path = '/applications/project/admin/release/fake';
    const get = await secure(`${s.url}${path}/index.html`);
    expect(get.status).toBe(200);
    expect(get.body).toBe('from the app');
    const post = await secure(`${s.url}${path}/save`, { method: 'POST', headers: { origin: `https://127.0.0.1:${port}` }, body: 'x' });
    expect(post.body).toBe('from the app');
    expect(appSaw).toContain(`GET ${path}/index.html https`);
    expect(appSaw).toContain(`POST ${path}/save https`);
    // An upgrade through a TLS socket, raw: the 101 comes back from the app.
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
        socket.write(`GET ${path}/ws HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\norigin: https://127.0.0.1:${port}\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
      });
      let got = '';
      socket.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.includes('\r\n\r\n')) {
          socket.destroy();
          resolve(got);
        }
      });
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 101 /);
    expect(appSaw).toContain(`upgrade ${path}/ws`);
  });
});

describe('a server with TLS and access control on', () => {
  let s: TestServer;
  afterAll(async () => s?.close());

  it("serves the applications' own port over HTTPS too, and gives this machine's CLI an https URL", async () => {
    s = await startTestServer({ auth: 'on', tls: { certFile: cert, keyFile: key } });
    // Each instance on a host name of its own under localhost, over https.
    const appsUrl = s.tessera.appsUrl!;
    expect(appsUrl).toMatch(/^https:\/\/<instance>--<project>\.localhost:\d+$/);
    const appsPort = /:(\d+)$/.exec(appsUrl)![1];
    expect(appsPort).not.toBe(new URL(s.url).port);
    const apps = await secure(`https://127.0.0.1:${appsPort}/`);
    expect(apps.status).toBe(404);
    expect(apps.body).toContain('There is no application instance at this address');
    // The runtime file the CLI on this machine reads: the URL it will call must speak the server's scheme.
    const runtime = JSON.parse(readFileSync(s.tessera.runtimeFile!, 'utf8')) as { url: string };
    expect(runtime.url).toBe(s.url);
    expect(runtime.url).toMatch(/^https:/);
  }, 60_000);

  it('signs in with a __Host- session cookie over https, and takes no plain one, which another host of the domain could have set', async () => {
    const store = s.tessera.access.store;
    await s.userToken('tls-user', {});
    const { hashPassword } = await import('../auth/identity.ts');
    await store.updateUser((await store.userByName('tls-user'))!.id, { password_hash: await hashPassword('tls-password-12') });
    const signIn = await secure(`${s.url}/api/auth/sign-in`, { method: 'POST', headers: { 'content-type': 'application/json', origin: s.url }, body: JSON.stringify({ username: 'tls-user', password: 'tls-password-12' }) });
    expect(signIn.status).toBe(200);
    const setCookie = String((signIn.headers['set-cookie'] as string[])[0]);
    expect(setCookie).toMatch(/^__Host-tessera_session=tss_[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+; Secure$/);
    const secret = setCookie.split(';')[0]!.split('=')[1]!;
    expect((await secure(`${s.url}/api/auth/me`, { headers: { cookie: `__Host-tessera_session=${secret}` } })).status).toBe(200);
    expect((await secure(`${s.url}/api/auth/me`, { headers: { cookie: `tessera_session=${secret}` } })).status).toBe(401);
  }, 30_000);
});

describe('TESSERA_TLS_CERT and TESSERA_TLS_KEY that cannot be served', () => {
  const start = (certFile: string, keyFile: string) => createTessera({ ...loadConfig({}), home: join(dir, 'home-never-made'), tls: { certFile, keyFile } });

  it('need each other', () => {
    expect(() => loadConfig({ TESSERA_TLS_CERT: '/etc/tessera/cert.pem' })).toThrow(
      'TESSERA_TLS_CERT="/etc/tessera/cert.pem" is set but TESSERA_TLS_KEY is not: HTTPS needs both, the certificate and its private key (PEM files); set both, or neither for plain HTTP',
    );
    expect(() => loadConfig({ TESSERA_TLS_KEY: 'key.pem' })).toThrow(/TESSERA_TLS_KEY="key\.pem" is set but TESSERA_TLS_CERT is not/);
    expect(loadConfig({ TESSERA_TLS_CERT: 'c.pem', TESSERA_TLS_KEY: 'k.pem' }).tls).toEqual({ certFile: join(process.cwd(), 'c.pem'), keyFile: join(process.cwd(), 'k.pem') });
  });

  it('stop the start, before the home is touched, with what is wrong and what to do', async () => {
    const other = join(dir, 'other-key.pem');
    await expect(start(cert, other)).rejects.toThrow(
      `invalid configuration: TESSERA_TLS_KEY=${other} is not the key of the certificate in TESSERA_TLS_CERT=${cert} (CN=tessera.test): give the key the certificate was made for`,
    );
    await expect(start(join(dir, 'missing.pem'), key)).rejects.toThrow(`TESSERA_TLS_CERT=${join(dir, 'missing.pem')}: there is no such file`);
    await expect(start(cert, join(dir, 'a-folder'))).rejects.toThrow(`TESSERA_TLS_KEY=${join(dir, 'a-folder')}: it is a folder, not a file`);
    await expect(start(join(dir, 'not-pem.txt'), key)).rejects.toThrow(/TESSERA_TLS_CERT=.*not-pem\.txt is not a PEM certificate: a PEM certificate starts with "-----BEGIN CERTIFICATE-----"/);
    await expect(start(key, cert)).rejects.toThrow(/TESSERA_TLS_CERT=.*key\.pem is not a PEM certificate: it holds a private key: TESSERA_TLS_CERT and TESSERA_TLS_KEY may be swapped/);
    await expect(start(cert, join(dir, 'encrypted-key.pem'))).rejects.toThrow(/encrypted-key\.pem is encrypted with a passphrase, which Tessera cannot ask for at start: decrypt it/);
    await expect(start(cert, join(dir, 'not-pem.txt'))).rejects.toThrow(/not-pem\.txt is not a PEM private key/);
    // Checked before the home is made, locked or opened.
    expect(() => readFileSync(join(dir, 'home-never-made', 'tessera.db'))).toThrow(/ENOENT/);
  });

  it('with a key that is not the certificate\'s, npm start exits 1 and says so', async () => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/tessera-server.mjs')], {
      cwd: REPO_ROOT,
      env: { ...process.env, TESSERA_HOME: join(dir, 'home-process'), PORT: '0', DICOM_PORT: '0', TESSERA_TLS_CERT: cert, TESSERA_TLS_KEY: join(dir, 'other-key.pem') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(err).toContain(`tessera: could not start: invalid configuration: TESSERA_TLS_KEY=${join(dir, 'other-key.pem')} is not the key of the certificate in TESSERA_TLS_CERT=${cert}`);
  }, 60_000);
});

import { request } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceLabel } from '@tessera/apps';
import { loadConfig } from '../config.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';
import { AppOrigins } from './app-origins.ts';

// Application instances on host names of their own (ADR 16), with a real server, real
// application processes and raw HTTP: what a browser sends is written out, header by header.

/** An app that answers what it received: its Host, Cookie and Authorization headers. */
const ECHO = `import { createServer } from 'node:http';
createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ url: req.url, host: req.headers.host, cookie: req.headers.cookie ?? null, authorization: req.headers.authorization ?? null }));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request to 127.0.0.1:`port` with these headers (Host included): `*.localhost` names need no resolver. */
function raw(port: number, method: string, path: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('application instances on host names of their own', () => {
  let s: TestServer;
  let platformPort: number;
  let appsPort: number;
  let echoUrl: URL;
  let otherUrl: URL;
  let sci: string;
  let outsider: string;
  const prefix = '/applications/project/lab/release/echo-app';

  beforeAll(async () => {
    s = await startTestServer({ auth: 'on' });
    platformPort = Number(new URL(s.url).port);
    for (const name of ['lab', 'elsewhere']) expect((await s.call('POST', '/api/projects', { name })).status).toBe(201);
    for (const name of ['echo-app', 'other-app']) {
      const dir = join(s.extRoot, name);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'server.mjs'), ECHO);
      await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'application', app: { ingress: 'subpath', process: { command: ['node', 'server.mjs'] } } }));
    }
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const launch = async (extension: string): Promise<URL> => {
      expect((await s.call('POST', '/api/applications', { extension, project: 'lab' })).status).toBe(202);
      const ready = await waitFor(async () => {
        const a = (await s.call('GET', `/api/applications/${extension}?project=lab`)).body;
        return a.state === 'running' ? a : undefined;
      }, 20_000, `${extension} to run`);
      return new URL(ready.url as string);
    };
    echoUrl = await launch('echo-app');
    otherUrl = await launch('other-app');
    appsPort = Number(echoUrl.port);
    sci = await s.userToken('sci', { lab: 'scientist' });
    outsider = await s.userToken('outsider', { elsewhere: 'principal-investigator' });
  }, 60_000);
  afterAll(async () => s?.close());

  const echoHost = (): string => echoUrl.host;
  const platformOrigin = (): string => `http://127.0.0.1:${platformPort}`;

  /** A signed-in member's GET of the instance's path on the platform's port: the page that carries the ticket. */
  const ticketFor = async (token: string, path = `${prefix}/notebooks/a.ipynb?x=1`): Promise<{ action: string; ticket: string; next: string; answer: Answer }> => {
    const answer = await raw(platformPort, 'GET', path, { host: `127.0.0.1:${platformPort}`, authorization: `Bearer ${token}`, accept: 'text/html' });
    const field = (name: string): string => new RegExp(`name="${name}" value="([^"]*)"`).exec(answer.body)?.[1]?.replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c))) ?? '';
    return { action: /action="([^"]*)"/.exec(answer.body)?.[1] ?? '', ticket: field('ticket'), next: field('next'), answer };
  };
  const exchange = (ticket: string, o: { host?: string; origin?: string | null; next?: string } = {}): Promise<Answer> => {
    const body = new URLSearchParams({ ticket, next: o.next ?? `${prefix}/` }).toString();
    return raw(appsPort, 'POST', '/_tessera/sign-in', {
      host: o.host ?? echoHost(),
      ...(o.origin === null ? {} : { origin: o.origin ?? platformOrigin() }),
      'content-type': 'application/x-www-form-urlencoded',
      'content-length': String(Buffer.byteLength(body)),
    }, body);
  };
  const cookieOf = (a: Answer): string => String((a.headers['set-cookie'] as string[] | undefined)?.[0] ?? '').split(';')[0]!;

  it('gives each instance a host of its own under localhost, on the apps port', () => {
    expect(echoUrl.hostname).toBe('echo-app--lab.localhost');
    expect(otherUrl.hostname).toBe('other-app--lab.localhost');
    expect(otherUrl.port).toBe(echoUrl.port);
    expect(echoUrl.pathname).toBe(`${prefix}/`);
    expect(s.tessera.appsUrl).toBe(`http://<instance>--<project>.localhost:${appsPort}`);
  });

  it("serves an instance only on its own host: not on the platform's names, another instance's host or a rebound name", async () => {
    for (const host of [`127.0.0.1:${appsPort}`, `localhost:${appsPort}`, otherUrl.host, `evil.example:${appsPort}`, `echo-app--lab.localhost:${platformPort}`]) {
      const a = await raw(appsPort, 'GET', `${prefix}/`, { host, authorization: `Bearer ${s.token}` });
      expect(a.status, host).toBe(404);
      expect(a.body).toContain('There is no application instance at this address');
    }
    // Nor anything but instances on an instance's host.
    expect((await raw(appsPort, 'GET', '/api/projects', { host: echoHost(), authorization: `Bearer ${s.token}` })).status).toBe(404);
  });

  it('admits a member with a platform token, which the app never sees; others get 404 or 401', async () => {
    const a = await raw(appsPort, 'GET', `${prefix}/x`, { host: echoHost(), authorization: `Bearer ${sci}` });
    expect(a.status).toBe(200);
    const seen = JSON.parse(a.body) as { host: string; authorization: string | null };
    expect(seen.host).toBe(echoHost());
    expect(seen.authorization).toBeNull();
    expect((await raw(appsPort, 'GET', `${prefix}/x`, { host: echoHost(), authorization: `Bearer ${outsider}` })).status).toBe(404);
    expect((await raw(appsPort, 'GET', `${prefix}/x`, { host: echoHost() })).status).toBe(401);
    // A browser without the instance's cookie is sent to the platform, which signs it in to the instance.
    const page = await raw(appsPort, 'GET', `${prefix}/x?y=1`, { host: echoHost(), accept: 'text/html' });
    expect(page.status).toBe(303);
    expect(page.headers.location).toBe(`${s.url}${prefix}/x?y=1`);
  });

  it('signs a member in to the instance with a single-use ticket posted to its host, never in a URL', async () => {
    const { action, ticket, next, answer } = await ticketFor(sci);
    expect(answer.status).toBe(200);
    expect(answer.headers.location).toBeUndefined();
    expect(action).toBe(`http://${echoHost()}/_tessera/sign-in`);
    expect(ticket).toMatch(/^tst_[A-Za-z0-9_-]{43}$/);
    expect(next).toBe(`${prefix}/notebooks/a.ipynb?x=1`);
    // The page runs only its own script, posts only to the instance, cannot be framed, and sends only its origin along.
    expect(answer.headers['content-security-policy']).toMatch(/script-src 'nonce-[A-Za-z0-9+/=]+'; .*form-action http:\/\/echo-app--lab\.localhost:\d+; frame-ancestors 'none'/);
    expect(answer.headers['referrer-policy']).toBe('strict-origin');

    const signedIn = await exchange(ticket, { next });
    expect(signedIn.status).toBe(303);
    expect(signedIn.headers.location).toBe(next);
    const setCookie = String((signedIn.headers['set-cookie'] as string[])[0]);
    // Host-only (no Domain), the whole host, HttpOnly; __Host- and Secure on a loopback name, a secure context.
    expect(setCookie).toMatch(/^__Host-tessera_app=tsp_[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax; Max-Age=43200; Secure$/);
    const cookie = cookieOf(signedIn);

    const inside = await raw(appsPort, 'GET', `${prefix}/y`, { host: echoHost(), cookie: `${cookie}; theirs=1` });
    expect(inside.status).toBe(200);
    // The app gets its own cookies, never the one that admits the browser.
    expect((JSON.parse(inside.body) as { cookie: string }).cookie).toBe('theirs=1');

    // Used once: a replay is refused, as is the ticket for another instance's host.
    expect((await exchange(ticket)).status).toBe(403);
    const second = await ticketFor(sci);
    expect((await exchange(second.ticket, { host: otherUrl.host })).status).toBe(403);
    expect((await exchange(second.ticket)).status).toBe(403);

    // The cookie opens this instance only, and is no token of the platform's API.
    expect((await raw(appsPort, 'GET', '/applications/project/lab/release/other-app/', { host: otherUrl.host, cookie })).status).toBe(401);
    const api = await raw(platformPort, 'GET', '/api/projects', { host: `127.0.0.1:${platformPort}`, authorization: `Bearer ${cookie.split('=')[1]}` });
    expect(api.status).toBe(401);
  });

  it('takes a ticket only from the platform\'s page, and sends the browser only to the instance\'s own paths', async () => {
    for (const origin of ['http://evil.example', `http://${echoHost()}`, 'null', null]) {
      const { ticket } = await ticketFor(sci);
      const a = await exchange(ticket, { origin });
      expect(a.status, String(origin)).toBe(403);
      // Refused before the ticket was looked at: it still works from the platform.
      expect((await exchange(ticket)).status).toBe(303);
    }
    const { ticket } = await ticketFor(sci);
    const away = await exchange(ticket, { next: 'https://evil.example/' });
    expect(away.status).toBe(303);
    expect(away.headers.location).toBe(`${prefix}/`);
    const { ticket: t2 } = await ticketFor(sci);
    expect((await exchange(t2, { next: '/applications/project/lab/release/other-app/' })).headers.location).toBe(`${prefix}/`);
    expect((await raw(appsPort, 'GET', '/_tessera/sign-in', { host: echoHost() })).status).toBe(405);
  });

  it('sends an anonymous browser to sign in, and answers an outsider 404, from the platform\'s port', async () => {
    const anonymous = await raw(platformPort, 'GET', `${prefix}/`, { host: `127.0.0.1:${platformPort}`, accept: 'text/html' });
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.location).toBe(`/sign-in?next=${encodeURIComponent(`${prefix}/`)}`);
    const outside = await ticketFor(outsider);
    expect(outside.answer.status).toBe(404);
    expect(outside.ticket).toBe('');
    // Other methods go straight to the instance's host.
    const post = await raw(platformPort, 'POST', `${prefix}/save`, { host: `127.0.0.1:${platformPort}`, 'content-length': '0' });
    expect(post.status).toBe(307);
    expect(post.headers.location).toBe(`http://${echoHost()}${prefix}/save`);
  });

  it('closes the instance to a member who is removed, and to everyone at sign-out', async () => {
    const temp = await s.userToken('temp', { lab: 'scientist' });
    const { ticket } = await ticketFor(temp);
    const cookie = cookieOf(await exchange(ticket));
    expect((await raw(appsPort, 'GET', `${prefix}/`, { host: echoHost(), cookie })).status).toBe(200);
    const user = (await s.tessera.access.store.userByName('temp'))!;
    const lab = await s.tessera.projects.require('lab');
    await s.tessera.access.store.removeMembership(lab.id, user.id);
    s.tessera.access.control.invalidate();
    // At once: the proxy's fast path forgets what it admitted when access changes.
    expect((await raw(appsPort, 'GET', `${prefix}/`, { host: echoHost(), cookie })).status).toBe(404);

    // Signing out of the platform ends the instances' cookies of that user.
    const store = s.tessera.access.store;
    const { hashPassword } = await import('../auth/identity.ts');
    await store.updateUser((await store.userByName('sci'))!.id, { password_hash: await hashPassword('sci-password-1') });
    const signIn = await fetch(`${s.url}/api/auth/sign-in`, { method: 'POST', headers: { 'content-type': 'application/json', origin: s.url }, body: JSON.stringify({ username: 'sci', password: 'sci-password-1' }) });
    expect(signIn.status).toBe(200);
    const session = signIn.headers.getSetCookie()[0]!.split(';')[0]!;
    const page = await raw(platformPort, 'GET', `${prefix}/`, { host: `127.0.0.1:${platformPort}`, cookie: session, accept: 'text/html' });
    const sessionTicket = /name="ticket" value="([^"]+)"/.exec(page.body)![1]!;
    const appCookie = cookieOf(await exchange(sessionTicket));
    expect((await raw(appsPort, 'GET', `${prefix}/`, { host: echoHost(), cookie: appCookie })).status).toBe(200);
    expect((await fetch(`${s.url}/api/auth/sign-out`, { method: 'POST', headers: { cookie: session, origin: s.url } })).status).toBe(204);
    expect((await raw(appsPort, 'GET', `${prefix}/`, { host: echoHost(), cookie: appCookie })).status).toBe(401);
  }, 30_000);
});

describe('where instances are served (AppOrigins, TESSERA_APPS_PUBLIC_URL)', () => {
  it('gives every instance a DNS label of its own, readable where it can be', () => {
    expect(instanceLabel('lab', 'jupyter')).toBe('jupyter--lab');
    // Ambiguous ("a--b" could split two ways) or too long for a label (63): the name and a hash.
    const a = instanceLabel('b', 'x--a');
    const b = instanceLabel('a--b', 'x');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^x-a--h[0-9a-f]{12}$/);
    const long = instanceLabel('p'.repeat(63), 'i'.repeat(40));
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).not.toBe(instanceLabel('p'.repeat(62), 'i'.repeat(40)));
  });

  it('follows TESSERA_APPS_PUBLIC_URL: a host per instance with {instance}, one origin without', () => {
    const per = AppOrigins.fromConfig({ appsPublicUrl: 'https://{instance}.apps.example.org', publicUrl: 'https://tessera.example.org', scheme: 'http', host: '0.0.0.0', appsPort: 8081 });
    expect(per.mode).toBe('instance');
    expect(per.originOf('lab', 'ohif')).toBe('https://ohif--lab.apps.example.org');
    expect(per.hostFits('OHIF--lab.apps.example.org', 'lab', 'ohif')).toBe(true);
    expect(per.hostFits('ohif--lab.apps.example.org:443', 'lab', 'ohif')).toBe(true);
    expect(per.hostFits('ohif--lab.apps.example.org:8443', 'lab', 'ohif')).toBe(false);
    expect(per.hostFits('ohif--lab.apps.example.org/x', 'lab', 'ohif')).toBe(false);
    expect(per.hostFits('jupyter--lab.apps.example.org', 'lab', 'ohif')).toBe(false);
    expect(per.secureCookies).toBe(true);
    const shared = AppOrigins.fromConfig({ appsPublicUrl: 'https://apps.example.org', publicUrl: undefined, scheme: 'https', host: '0.0.0.0', appsPort: 8081 });
    expect(shared.mode).toBe('shared');
    expect(shared.originOf('lab', 'ohif')).toBe('https://apps.example.org');
    // A server reached by a name only its admin knows, without TESSERA_APPS_PUBLIC_URL: one origin (and a warning at start).
    expect(AppOrigins.fromConfig({ appsPublicUrl: undefined, publicUrl: undefined, scheme: 'http', host: '10.1.2.3', appsPort: 8081 }).mode).toBe('shared');
    // On loopback: a host per instance under localhost, which browsers resolve to this machine.
    const laptop = AppOrigins.fromConfig({ appsPublicUrl: undefined, publicUrl: undefined, scheme: 'http', host: '127.0.0.1', appsPort: 8081 });
    expect(laptop.originOf('admin', 'jupyter-notebook')).toBe('http://jupyter-notebook--admin.localhost:8081');
  });

  it('refuses a TESSERA_APPS_PUBLIC_URL that cannot be one, saying what it must be', () => {
    expect(loadConfig({ TESSERA_APPS_PUBLIC_URL: 'https://{instance}.apps.example.org' }).appsPublicUrl).toBe('https://{instance}.apps.example.org');
    expect(() => loadConfig({ TESSERA_APPS_PUBLIC_URL: 'https://apps.example.org/{instance}' })).toThrow(/must be an origin only/);
    expect(() => loadConfig({ TESSERA_APPS_PUBLIC_URL: 'https://apps.{instance}.example.org' })).toThrow(/\{instance\} must be the first label of the host name/);
    expect(() => loadConfig({ TESSERA_APPS_PUBLIC_URL: 'ftp://{instance}.example.org' })).toThrow(/must be an http or https URL/);
  });
});

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, waitFor, type TestServer } from '../../packages/server/src/__fixtures__/test-server.ts';
import { CHROMIUM, CHROMIUM_ARGS, skipBrowser } from './browser.ts';

// A hostile application extension in real Chromium (issue 14): a member of "lab" opens it,
// signed in; its page's scripts try to act as that user on the platform's API and
// DICOMweb, to open another project's instance, to read or drive another instance of the
// same project, to read the platform's cookie, to toss cookies to the other instances, and
// to register a service worker for everything. Every instance is on a host name of its own
// (<instance>--<project>.localhost on the apps port, ADR 16), so none of it works.

const ATTACK = `<!doctype html><meta charset="utf-8"><title>hostile app</title><script>
window.results = {};
async function attack() {
  const platform = new URLSearchParams(location.search).get('platform');
  const note = (k, v) => { results[k] = v; };
  const tryFetch = async (k, url, init) => {
    try { const r = await fetch(url, init); note(k, r.type + ' ' + r.status + ' ' + (r.type === 'opaque' ? '' : (await r.text()).slice(0, 80))); }
    catch (e) { note(k, 'failed'); }
  };
  await tryFetch('read series on the platform', platform + '/api/series?project=lab', { credentials: 'include' });
  await tryFetch('read dicomweb on the platform', platform + '/projects/lab/dicom-web/studies', { credentials: 'include' });
  await tryFetch('create a project', platform + '/api/projects', { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'pwned' }) });
  await tryFetch('no-cors delete', platform + '/api/series/delete', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ series: ['1.2.3'], project: 'lab' }) });
  await tryFetch('same-origin api', '/api/series?project=lab', {});
  await tryFetch('other project app', '/applications/project/secret/release/vault-app/', { credentials: 'include' });
  const neighbour = new URLSearchParams(location.search).get('neighbour');
  await tryFetch('read the neighbour instance', neighbour, { credentials: 'include' });
  await tryFetch('post to the neighbour instance', neighbour + 'save', { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: 'x' });
  await new Promise((resolve) => {
    const frame = document.createElement('iframe');
    frame.onload = () => {
      try { note('neighbour frame', frame.contentDocument ? 'read ' + frame.contentDocument.body.innerHTML.slice(0, 40) : 'blocked'); }
      catch (e) { note('neighbour frame', 'blocked'); }
      resolve();
    };
    frame.src = neighbour;
    document.body.appendChild(frame);
  });
  document.cookie = 'tossed=1; domain=localhost; path=/';
  document.cookie = 'tossed-parent=1; domain=lab.localhost; path=/';
  note('cookie', document.cookie);
  try { await navigator.serviceWorker.register('sw.js', { scope: '/' }); note('service worker for /', 'registered'); }
  catch (e) { note('service worker for /', 'refused'); }
  window.done = true;
}
// Opened without the attack's parameters (the neighbour, as its user opens it), it just sits there.
if (new URLSearchParams(location.search).get('platform')) attack();
</script>`;

const SERVER = `import { createServer } from 'node:http';
const page = ${JSON.stringify(ATTACK)};
const seen = [];
createServer((req, res) => {
  seen.push(req.method + ' ' + req.url, req.headers.cookie ?? '', req.headers.authorization ?? '');
  if (req.url.startsWith('/sw.js')) { res.writeHead(200, { 'content-type': 'text/javascript', 'service-worker-allowed': '/' }); return res.end('self.addEventListener("fetch", () => {});'); }
  if (req.url.startsWith('/seen')) { res.writeHead(200, { 'content-type': 'application/json' }); return res.end(JSON.stringify(seen)); }
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': 'app=1; Path=/' });
  res.end(page);
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

describe.skipIf(skipBrowser)('a hostile application extension in Chromium, opened by a signed-in member, achieves nothing', () => {
  let s: TestServer;
  let browser: Browser;
  let appUrl: string;
  let neighbourUrl: string;
  let vaultUrl: string;

  beforeAll(async () => {
    s = await startTestServer({ auth: 'on' });
    for (const name of ['lab', 'secret']) expect((await s.call('POST', '/api/projects', { name })).status).toBe(201);
    for (const [name, body] of [['hostile-app', SERVER], ['neighbour-app', SERVER], ['vault-app', SERVER]] as const) {
      const dir = join(s.extRoot, name);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'server.mjs'), body);
      await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'application', app: { ingress: 'strip', process: { command: ['node', 'server.mjs'] } } }));
    }
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const launch = async (extension: string, project: string, name: string): Promise<string> => {
      const res = await s.call('POST', '/api/applications', { extension, project });
      expect(res.body.name).toBe(name);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const ready = await waitFor(async () => {
        const a = (await s.call('GET', `/api/applications/${name}?project=${project}`)).body;
        return a.state === 'running' ? a : undefined;
      }, 20_000, `${name} to run`);
      return ready.url as string;
    };
    appUrl = await launch('hostile-app', 'lab', 'hostile-app');
    neighbourUrl = await launch('neighbour-app', 'lab', 'neighbour-app');
    vaultUrl = await launch('vault-app', 'secret', 'vault-app');
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, '--disable-gpu'] });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('serves each application instance on a host of its own, and sends a browser that is not signed in to sign in', async () => {
    expect(new URL(appUrl).hostname).toBe('hostile-app--lab.localhost');
    expect(new URL(neighbourUrl).hostname).toBe('neighbour-app--lab.localhost');
    expect(new URL(appUrl).origin).not.toBe(new URL(s.url).origin);
    const page = await (await browser.newContext()).newPage();
    // Not signed in: the app's page sends the browser to the platform's sign-in page.
    await page.goto(appUrl);
    expect(page.url()).toContain(`${s.url}/sign-in?next=`);
    await page.context().close();
  });

  it('its scripts cannot read or change the platform as the user, nor reach another project\'s app, nor see the session', { timeout: 60_000 }, async () => {
    const sci = await s.userToken('sci', { lab: 'scientist' });
    expect(sci).toBeTruthy();
    // The scientist signs in as a person does (a password the admin set, changed at first sign-in).
    const store = s.tessera.access.store;
    const user = (await store.userByName('sci'))!;
    const { hashPassword } = await import('../../packages/server/src/auth/identity.ts');
    await store.updateUser(user.id, { password_hash: await hashPassword('scientist-password-1') });
    const context = await browser.newContext();
    const page = await context.newPage();
    const signIn = await page.request.post(`${s.url}/api/auth/sign-in`, { data: { username: 'sci', password: 'scientist-password-1' }, headers: { origin: s.url } });
    expect(signIn.status()).toBe(200);
    const before = (await s.call('GET', '/api/projects')).body.total as number;

    // The user has the neighbour open too (so the browser holds its cookie), opened as the UI
    // opens an instance: its path on the platform, which signs the browser in to the instance's host.
    const neighbour = await context.newPage();
    await neighbour.goto(`${s.url}${new URL(neighbourUrl).pathname}`);
    await neighbour.waitForURL((u) => u.href.startsWith(neighbourUrl), { timeout: 20_000 });
    expect((await context.cookies(neighbourUrl)).map((c) => [c.name, c.httpOnly, c.secure, c.domain]).sort()).toEqual([['__Host-tessera_app', true, true, 'neighbour-app--lab.localhost'], ['app', false, false, 'neighbour-app--lab.localhost']]);
    const path = new URL(appUrl).pathname;
    await page.goto(`${s.url}${path}?platform=${encodeURIComponent(s.url)}&neighbour=${encodeURIComponent(neighbourUrl)}`);
    await page.waitForURL((u) => u.href.startsWith(appUrl), { timeout: 20_000 });
    await page.waitForFunction(() => (window as unknown as { done?: boolean }).done === true, undefined, { timeout: 20_000 });
    const results = await page.evaluate(() => (window as unknown as { results: Record<string, string> }).results);

    // Cross-origin reads are blocked by the browser (no CORS), writes refused by the platform (Origin check).
    expect(results['read series on the platform']).toBe('failed');
    expect(results['read dicomweb on the platform']).toBe('failed');
    expect(results['create a project']).toBe('failed');
    expect(results['no-cors delete']).toBe('opaque 0 ');
    // The applications' origin serves applications only.
    expect(results['same-origin api']).toMatch(/^basic 404/);
    // Another project's instance does not exist for this user.
    expect(results['other project app']).toMatch(/^basic 404/);
    // Another instance of the same project, which this user may open too: another origin, so
    // its pages cannot be read (no CORS, no script access into its frame), nor posted to.
    expect(results['read the neighbour instance']).toBe('failed');
    expect(results['post to the neighbour instance']).toBe('opaque 0 ');
    expect(results['neighbour frame']).toBe('blocked');
    // Neither the platform's session nor the instance's own admission cookie is readable, and
    // the browser refused the cookies meant for every *.localhost host.
    expect(results.cookie).toBe('app=1');
    // Read in the browser: Node's resolver does not know *.localhost names, browsers do.
    const seenBy = async (url: string): Promise<string> => {
      const reader = await context.newPage();
      const r = await reader.goto(new URL('seen', url).href);
      expect(r!.status()).toBe(200);
      const text = await reader.evaluate(() => document.body.innerText);
      await reader.close();
      return (JSON.parse(text) as string[]).join('\n');
    };
    const seen = await seenBy(appUrl);
    expect(seen).not.toMatch(/tessera_session|tessera_app|tossed/);
    expect(seen).not.toMatch(/Bearer ts[a-z]_/i);
    // The neighbour got no request of the hostile page's at all: its cookie (host-only) does not
    // exist yet, the post was refused by the Origin check, and no tossed cookie reached it.
    const neighbourSaw = await seenBy(neighbourUrl);
    expect(neighbourSaw).not.toContain('POST');
    expect(neighbourSaw).not.toMatch(/tossed|tessera_app|tessera_session/);
    // A service worker for the whole origin is refused (Service-Worker-Allowed is not passed on).
    expect(results['service worker for /']).toBe('refused');
    // Nothing changed on the platform.
    expect((await s.call('GET', '/api/projects')).body.total).toBe(before);
    expect((await s.call('GET', '/api/audit?action=createProject')).body.items.filter((e: { outcome: string }) => e.outcome === 'ok')).toEqual([]);
    // And the vault stays closed to this user from the browser too.
    const vault = await page.goto(vaultUrl);
    expect(vault!.status()).toBe(404);
    await context.close();
  });
});

import { readFile } from 'node:fs/promises';
import { request, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { writeSampleCt } from '@tessera/dicom';
import { ensureWebBuilt } from '../../../web/build.ts';
import { launchChromium, skipBrowser } from '../../../../tests/fixtures/browser.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

/**
 * The built-in ohif-viewer: the real @ohif/app (fetched from the npm registry on first
 * launch into ~/.cache/tessera, as a user's server does), served under its instance
 * subpath and reading the project's DICOMweb through that subpath, driven in headless Chromium.
 */
/** Waits until a canvas of the page shows more than one grey level (an image drawn, not a blank); answers how many. */
function drawnGreyLevels(page: Page, what: string): Promise<number> {
  return waitFor(async () => {
    const n = await page.evaluate(() => {
      let best = 0;
      for (const c of document.querySelectorAll('canvas')) {
        const ctx = c.width && c.height ? c.getContext('2d') : null;
        if (!ctx) continue;
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        const levels = new Set<number>();
        for (let i = 0; i < d.length; i += 4) if (d[i] || d[i + 1] || d[i + 2]) levels.add(d[i]!);
        best = Math.max(best, levels.size);
      }
      return best;
    });
    return n > 1 ? n : undefined;
  }, 90_000, what);
}

describe.skipIf(skipBrowser)('the ohif-viewer application', () => {
  let s: TestServer;
  let browser: Browser;
  beforeAll(async () => {
    s = await startTestServer();
    browser = await launchChromium({ webgl: true });
  });
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('opens a stored study under the instance subpath and draws its image', { timeout: 240_000 }, async () => {
    const sample = await writeSampleCt(join(s.home, 'sample'));
    for (const file of sample.files) {
      const stored = await fetch(`${s.url}/api/dicom/import`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: await readFile(file) });
      expect(stored.status).toBe(200);
    }
    expect((await s.call('POST', '/api/extensions/ohif-viewer/install?wait=true', {})).status).toBe(200);
    const launched = await s.call('POST', '/api/applications', { extension: 'ohif-viewer' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    const app = await waitFor(async () => {
      const a = (await s.call('GET', '/api/applications/ohif-viewer')).body;
      if (a.state === 'failed') throw new Error(a.reason);
      return a.state === 'running' ? a : undefined;
    }, 200_000, 'the viewer to run (the first launch fetches @ohif/app from the npm registry)');
    expect(app.url).toBe('/applications/project/admin/release/ohif-viewer/');
    const base = `${s.url}${app.url}`;

    // Its configuration points at the project's DICOMweb under its own subpath, and routes under the subpath.
    const config = await (await fetch(`${base}app-config.js`)).text();
    expect(config).toContain('window.location.origin + "/applications/project/admin/release/ohif-viewer/dicom-web"');
    expect(config).not.toContain('/projects/admin/dicom-web');
    expect(config).toContain('routerBasename: "/applications/project/admin/release/ohif-viewer/"');

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const outside: string[] = [];
    const dicomweb: string[] = [];
    const broken: string[] = [];
    page.on('request', (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith(`${app.url}dicom-web/`)) dicomweb.push(path);
      else if (r.url().startsWith(s.url) && !path.startsWith(app.url)) outside.push(path);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) broken.push(`${r.status()} ${r.url()}`);
    });

    // The study list shows the stored study.
    await page.goto(base);
    await page.getByText('Sample phantom').first().waitFor({ timeout: 60_000 });

    // The viewer opens it and draws pixels of the phantom on its canvas.
    await page.goto(`${base}viewer?StudyInstanceUIDs=${sample.study}`);
    const drawn = await drawnGreyLevels(page, 'an image on the viewer canvas');
    expect(drawn, 'grey levels drawn (the phantom has a body and an insert)').toBeGreaterThan(1);
    expect(dicomweb.some((p) => p.endsWith('/metadata')), 'the viewer read metadata from the project\'s DICOMweb').toBe(true);
    expect(dicomweb.some((p) => p.includes('/frames/')), 'the viewer read pixel data from the project\'s DICOMweb').toBe(true);
    expect(outside, 'everything the viewer loads, DICOMweb included, is under its subpath').toEqual([]);
    expect(broken).toEqual([]);
    await page.close();

    // The web UI's viewer page opens the series' study in OHIF, in a new tab.
    await ensureWebBuilt(() => undefined);
    const ui = await browser.newPage();
    await ui.goto(`${s.url}/viewer/${sample.study}/${sample.series}`);
    const [tab] = await Promise.all([ui.context().waitForEvent('page'), ui.getByRole('link', { name: /Open in OHIF/ }).click()]);
    await tab.waitForLoadState();
    expect(tab.url()).toBe(`${base}viewer?StudyInstanceUIDs=${sample.study}`);
    await tab.locator('canvas').first().waitFor({ timeout: 60_000 });
    await ui.close();
    await tab.close();

    // Stopped, its URL says so.
    expect((await s.call('DELETE', '/api/applications/ohif-viewer')).body.state).toBe('stopped');
    const after = await fetch(base);
    expect(after.status).toBe(503);
    expect(await after.text()).toContain('ohif-viewer is stopped');
  });

  it('fails with a clear reason when the given package does not exist', { timeout: 60_000 }, async () => {
    expect((await s.call('POST', '/api/extensions/ohif-viewer/install?wait=true', {})).status).toBe(200);
    await s.call('POST', '/api/projects', { name: 'offline' });
    const launched = await s.call('POST', '/api/applications', { extension: 'ohif-viewer', project: 'offline', params: { ohif_dist: '/nonexistent/ohif-app.tgz' } });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    const failed = await waitFor(async () => {
      const a = (await s.call('GET', '/api/applications/ohif-viewer?project=offline')).body;
      return a.state === 'failed' ? a : undefined;
    }, 30_000, 'the launch to fail');
    expect(failed.reason).toContain('ohif_dist "/nonexistent/ohif-app.tgz" does not exist on the server');
  });
});

/**
 * A GET (or another method) to an absolute URL, sent to 127.0.0.1 with the URL's Host: the
 * apps origin's name may be one Node does not resolve (a `*.localhost` name). The path goes
 * as written: URL parsing would resolve its dot segments (`..`, `%2e%2e`) away.
 */
function send(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const u = new URL(url);
  const path = url.replace(/^[a-z]+:\/\/[^/]+/i, '');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: u.port, method, path, headers: { host: u.host, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * With access control on, the viewer is on the applications' origin, which serves nothing
 * of the platform: it reads DICOMweb under its own subpath, and its server asks the
 * platform with the instance's scoped credential.
 */
describe.skipIf(skipBrowser)('the ohif-viewer application with access control on', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ auth: 'on' });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('reads the project\'s DICOMweb through its own origin with its scoped credential', { timeout: 240_000 }, async () => {
    const admin = { authorization: `Bearer ${s.token}` };
    const sample = await writeSampleCt(join(s.home, 'sample'));
    for (const file of sample.files) {
      const stored = await fetch(`${s.url}/api/dicom/import`, { method: 'POST', headers: { ...admin, 'content-type': 'application/dicom' }, body: new Uint8Array(await readFile(file)) });
      expect(stored.status).toBe(200);
    }
    expect((await s.call('POST', '/api/extensions/ohif-viewer/install?wait=true', {})).status).toBe(200);
    const launched = await s.call('POST', '/api/applications', { extension: 'ohif-viewer' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    const app = await waitFor(async () => {
      const a = (await s.call('GET', '/api/applications/ohif-viewer')).body;
      if (a.state === 'failed') throw new Error(a.reason);
      return a.state === 'running' ? a : undefined;
    }, 200_000, 'the viewer to run (the first launch fetches @ohif/app from the npm registry)');
    const url = app.url as string;
    expect(url).toMatch(/^https?:\/\/[^/]+\/applications\/project\/admin\/release\/ohif-viewer\/$/);
    expect(new URL(url).origin, 'the apps origin is not the platform\'s').not.toBe(new URL(s.url).origin);

    // The configuration names the instance's own subpath; the apps origin has no /projects/.../dicom-web.
    const config = await send(`${url}app-config.js`, admin);
    expect(config.status).toBe(200);
    expect(config.body).toContain('window.location.origin + "/applications/project/admin/release/ohif-viewer/dicom-web"');
    expect((await send(`${new URL(url).origin}/projects/admin/dicom-web/studies`, admin)).status).toBe(404);

    // QIDO-RS through the viewer: the stored study comes back.
    const studies = await send(`${url}dicom-web/studies?StudyInstanceUID=${sample.study}`, { ...admin, accept: 'application/dicom+json' });
    expect(studies.status, studies.body).toBe(200);
    expect(studies.headers['content-type']).toContain('application/dicom+json');
    const found = (JSON.parse(studies.body) as Record<string, { Value?: unknown[] }>[]).map((d) => d['0020000D']?.Value?.[0]);
    expect(found).toEqual([sample.study]);
    // WADO-RS metadata, and HEAD.
    const metadata = await send(`${url}dicom-web/studies/${sample.study}/metadata`, { ...admin, accept: 'application/dicom+json' });
    expect(metadata.status).toBe(200);
    expect(JSON.parse(metadata.body).length).toBe(sample.files.length);
    const head = await send(`${url}dicom-web/studies`, { ...admin, accept: 'application/dicom+json' }, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');

    // Only the project's members get through the apps origin: a scientist of another project sees nothing, nobody signed in neither.
    await s.call('POST', '/api/projects', { name: 'other' });
    const outsider = await s.userToken('outsider', { other: 'scientist' });
    expect((await send(`${url}dicom-web/studies`, { authorization: `Bearer ${outsider}`, accept: 'application/dicom+json' })).status).toBe(404);
    expect((await send(`${url}dicom-web/studies`, { accept: 'application/dicom+json' })).status).toBe(401);

    // Reads only.
    const post = await send(`${url}dicom-web/studies`, { ...admin, 'content-type': 'application/dicom' }, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');

    // Path tricks are refused, by the proxy and by the viewer's own server (on its port, behind the proxy).
    const tricks = ['dicom-web/%2e%2e/%2e%2e/%2e%2e/api/series', 'dicom-web/../../../api/series', 'dicom-web/studies%2f..%2f..%2fapi', 'dicom-web/..%5c..%5capi', 'dicom-web/./studies'];
    for (const trick of tricks) expect((await send(`${url}${trick}`, admin)).status, trick).toBe(400);
    const target = s.tessera.apps.target('admin', 'ohif-viewer');
    expect(target?.port).toBeGreaterThan(0);
    const direct = `http://127.0.0.1:${target!.port}${new URL(url).pathname}`;
    // Straight to the viewer's port, as any process of this machine could: without the proxy's secret it answers nothing.
    const unproxied = await send(`${direct}dicom-web/studies`, { authorization: `Bearer ${outsider}`, accept: 'application/dicom+json' });
    expect(unproxied.status).toBe(403);
    const proxied = { 'x-tessera-proxy-secret': target!.secret! };
    for (const trick of tricks) {
      const refused = await send(`${direct}${trick}`, proxied);
      expect(refused.status, trick).toBe(400);
      expect(refused.body, trick).toContain('no encoded slash, backslash or dot segment');
    }
    // With it (the proxy's request), a caller's own credential counts for nothing: the instance's is used.
    const viaApp = await send(`${direct}dicom-web/studies`, { ...proxied, authorization: `Bearer ${outsider}`, cookie: 'tessera_session=x', accept: 'application/dicom+json' });
    expect(viaApp.status).toBe(200);

    // In Chromium, as a scientist of the project: signed in on the platform, opened by its path
    // there (as the UI's link does), signed in to the viewer's own host with a ticket, and the
    // image drawn from DICOMweb read with the instance's credential.
    const store = s.tessera.access.store;
    await s.userToken('reader', { admin: 'scientist' });
    const { hashPassword } = await import('../auth/identity.ts');
    await store.updateUser((await store.userByName('reader'))!.id, { password_hash: await hashPassword('reader-password-1') });
    const browser = await launchChromium({ webgl: true });
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const signIn = await context.request.post(`${s.url}/api/auth/sign-in`, { data: { username: 'reader', password: 'reader-password-1' }, headers: { origin: s.url } });
      expect(signIn.status()).toBe(200);
      const page = await context.newPage();
      const broken: string[] = [];
      const dicomweb: string[] = [];
      page.on('response', (r) => {
        if (r.status() >= 400) broken.push(`${r.status()} ${r.url()}`);
        if (r.url().startsWith(`${url}dicom-web/`)) dicomweb.push(new URL(r.url()).pathname);
      });
      await page.goto(`${s.url}${new URL(url).pathname}viewer?StudyInstanceUIDs=${sample.study}`);
      await page.waitForURL((u) => u.href.startsWith(`${url}viewer`), { timeout: 30_000 });
      const drawn = await drawnGreyLevels(page, 'an image on the viewer canvas, with access control on');
      expect(drawn).toBeGreaterThan(1);
      expect(dicomweb.some((p) => p.includes('/frames/'))).toBe(true);
      expect(broken).toEqual([]);
    } finally {
      await browser.close();
    }

    expect((await s.call('DELETE', '/api/applications/ohif-viewer')).body.state).toBe('stopped');
  });
});

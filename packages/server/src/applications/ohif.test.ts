import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { writeSampleCt } from '@tessera/dicom';
import { ensureWebBuilt } from '../../../web/build.ts';
import { launchChromium, skipBrowser } from '../../../../tests/fixtures/browser.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

/**
 * The built-in ohif-viewer: the real @ohif/app (fetched from the npm registry on first
 * launch into ~/.cache/tessera, as a user's server does), served under its instance
 * subpath and reading the project's DICOMweb, driven in headless Chromium.
 */
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

    // Its configuration points at this project's DICOMweb and routes under the subpath.
    const config = await (await fetch(`${base}app-config.js`)).text();
    expect(config).toContain('"/projects/admin/dicom-web"');
    expect(config).toContain('routerBasename: "/applications/project/admin/release/ohif-viewer/"');

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const outside: string[] = [];
    const dicomweb: string[] = [];
    const broken: string[] = [];
    page.on('request', (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith('/projects/admin/dicom-web/')) dicomweb.push(path);
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
    const drawn = await waitFor(async () => {
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
    }, 90_000, 'an image on the viewer canvas');
    expect(drawn, 'grey levels drawn (the phantom has a body and an insert)').toBeGreaterThan(1);
    expect(dicomweb.some((p) => p.endsWith('/metadata')), 'the viewer read metadata from the project\'s DICOMweb').toBe(true);
    expect(dicomweb.some((p) => p.includes('/frames/')), 'the viewer read pixel data from the project\'s DICOMweb').toBe(true);
    expect(outside, 'everything the viewer loads is under its subpath or the DICOMweb').toEqual([]);
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

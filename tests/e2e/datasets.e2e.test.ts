import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '@tessera/dicom';
import { pydicomFile } from '../../packages/dicom/src/__fixtures__/dicom-env.ts';
import { waitFor } from '../../packages/server/src/__fixtures__/test-server.ts';
import { screenshot, skipBrowser, startUi, type UiEnv } from './browser.ts';

describe.skipIf(skipBrowser)('web UI: the shell and the Datasets page', () => {
  let env: UiEnv;
  let tmp: string;

  beforeAll(async () => {
    env = await startUi();
    tmp = await mkdtemp(join(tmpdir(), 'tessera-e2e-'));
    // Three small CT series, imported over the API.
    for (const patientId of ['P-ALPHA', 'P-BETA', 'P-GAMMA']) {
      const ct = await writeSampleCt(join(tmp, patientId), { slices: 5, size: 128, patientId });
      for (const f of ct.files) {
        const res = await fetch(`${env.url}/api/dicom/import?dataset=all-ct`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: await readFile(f) });
        expect(res.status).toBe(200);
      }
    }
    await waitFor(async () => {
      const r = await env.server.call<{ items: { thumbnail: string | null }[] }>('GET', '/api/series');
      return r.body.items.length === 3 && r.body.items.every((s) => s.thumbnail);
    }, 15_000, 'thumbnails');
  });
  afterAll(async () => {
    await env?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('serves the UI at / with caching, client routes, and leaves the API its 404s', async () => {
    const index = await fetch(`${env.url}/runs/some-run`);
    expect(index.status).toBe(200);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)![1]!;
    const js = await fetch(`${env.url}${asset}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(js.headers.get('cache-control')).toContain('immutable');
    expect(js.headers.get('content-type')).toContain('javascript');
    // The production build (not React's development bundle), gzipped, well inside the 400 KB budget.
    expect(js.headers.get('content-encoding')).toBe('gzip');
    expect(Number(js.headers.get('content-length'))).toBeLessThan(150 * 1024);
    for (const path of ['/api/nothing', '/projects/admin/dicom-web/nothing', '/dicom-web/nothing', '/assets/gone.js']) {
      const r = await fetch(`${env.url}${path}`);
      expect(r.status, path).toBe(404);
    }
    expect((await fetch(`${env.url}/api/nothing`).then((r) => r.json())).error.code).toBe('TESSERA_NOT_FOUND');
  });

  it('shows the gallery with thumbnails, searches, selects, makes a dataset and deletes a series after confirming', async () => {
    const { page, url } = env;
    await page.goto(`${url}/`);
    await page.locator('.card img').first().waitFor();
    expect(await page.locator('.card').count()).toBe(3);
    // Access control is off here: no sign-in, no account menu, and the header says so.
    expect(page.url()).toBe(`${url}/`);
    expect(await page.locator('.badge.auth-off').textContent()).toBe('access control off');
    expect(await page.locator('.user-menu').count()).toBe(0);
    await expect.poll(() => page.locator('.card img').evaluateAll((imgs) => imgs.every((i) => (i as HTMLImageElement).naturalWidth > 0))).toBe(true);
    expect(await page.locator('.facet', { hasText: 'CT' }).textContent()).toContain('3');
    await screenshot(page, 'datasets');

    // Free-text search.
    await page.getByLabel('Search series').fill('P-BETA');
    await expect.poll(() => page.locator('.card').count()).toBe(1);
    await page.getByLabel('Search series').fill('');
    await expect.poll(() => page.locator('.card').count()).toBe(3);

    // Click, ctrl-click, then keyboard: Shift+End from the first extends to all three.
    const cards = page.locator('.card');
    await cards.nth(0).click();
    await cards.nth(2).click({ modifiers: ['Control'] });
    await expect.poll(() => page.locator('.card.selected').count()).toBe(2);
    await cards.nth(0).click();
    await page.keyboard.press('Shift+End');
    await expect.poll(() => page.locator('.card.selected').count()).toBe(3);

    await page.getByRole('button', { name: 'New dataset…' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('my-three');
    await page.keyboard.press('Enter');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    const ds = await env.server.call<{ series_count: number }>('GET', '/api/datasets/my-three');
    expect(ds.body.series_count).toBe(3);

    // The same name again: the server's conflict is shown in the dialog, readable.
    await page.getByRole('button', { name: 'New dataset…' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('my-three');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.getByRole('dialog').locator('.error-box').textContent()).toMatch(/my-three.*TESSERA_CONFLICT/);
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });

    // A dataset of everything matching the filters, selected or not.
    await page.keyboard.press('Escape');
    await page.getByLabel('Search series').fill('P-ALPHA');
    await expect.poll(() => page.locator('.card').count()).toBe(1);
    await page.getByRole('button', { name: 'New dataset…' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('alpha-only');
    await page.getByRole('dialog').getByRole('radio', { name: /All 1 series matching/ }).check();
    await page.getByRole('dialog').getByRole('button', { name: 'Create with 1 series' }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });
    expect((await env.server.call<{ series_count: number }>('GET', '/api/datasets/alpha-only')).body.series_count).toBe(1);
    await page.getByLabel('Search series').fill('');
    await expect.poll(() => page.locator('.card').count()).toBe(3);

    // The built-in stack viewer: a rendered frame, moved with the keyboard.
    await cards.nth(1).dblclick();
    await page.waitForURL(/\/viewer\//);
    await expect.poll(() => page.getByTestId('frame').evaluate((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
    await page.getByLabel(/arrow keys or the wheel/).focus();
    const before = await page.getByLabel('Slice', { exact: true }).inputValue();
    await page.keyboard.press('ArrowDown');
    expect(await page.getByLabel('Slice', { exact: true }).inputValue()).not.toBe(before);
    await screenshot(page, 'viewer');
    await page.goBack();
    await page.locator('.card').first().waitFor();

    // Delete one series: only after confirming.
    await cards.nth(1).click();
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    expect((await env.server.call<{ total: number }>('GET', '/api/series')).body.total).toBe(3);
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete', exact: true }).click();
    await expect.poll(async () => (await env.server.call<{ total: number }>('GET', '/api/series')).body.total).toBe(2);
    await expect.poll(() => page.locator('.card').count()).toBe(2);

    // A new project from the selector: the pages then work in it (empty here).
    await page.getByLabel('Project', { exact: true }).selectOption({ label: 'New project…' });
    await page.getByRole('dialog').getByLabel('Name').fill('second-study');
    await page.keyboard.press('Enter');
    await page.getByText('No series in project “second-study” yet').waitFor();
    expect((await env.server.call('GET', '/api/projects/second-study')).status).toBe(200);
    expect(env.pageErrors).toEqual([]);
  });

  it('shows why an image cannot be drawn in place of a broken image (an SR has no pixel data), and goes on drawing the others', async () => {
    const { page, url } = env;
    const res = await fetch(`${url}/api/dicom/import?dataset=sr`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: await readFile(pydicomFile('test-SR.dcm')) });
    expect(res.status).toBe(200);
    const file = ((await res.json()) as { files: { study_instance_uid: string; series_instance_uid: string }[] }).files[0]!;
    // The test before left the UI in another project: back to the one the upload went to.
    await page.goto(`${url}/`);
    await page.getByLabel('Project', { exact: true }).selectOption('admin');
    await page.goto(`${url}/viewer/${file.study_instance_uid}/${file.series_instance_uid}`);
    const error = page.getByTestId('frame-error');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/cannot be drawn: .*pixel data/i);
    // A CT series in the same session still draws.
    const ct = (await env.server.call<{ items: { study_instance_uid: string; series_instance_uid: string; modality: string }[] }>('GET', '/api/series')).body.items.find((s) => s.modality === 'CT')!;
    await page.goto(`${url}/viewer/${ct.study_instance_uid}/${ct.series_instance_uid}`);
    await expect.poll(() => page.getByTestId('frame').evaluate((i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
    expect(env.pageErrors).toEqual([]);
  });
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '@tessera/dicom';
import { screenshot, skipBrowser, startUi, type UiEnv } from './browser.ts';

const PYDICOM = '/usr/lib/python3/dist-packages/pydicom/data/test_files';

describe.skipIf(skipBrowser)('web UI: upload DICOM, make a dataset, run a workflow on it, watch it finish, download its result', () => {
  let env: UiEnv;
  let tmp: string;

  beforeAll(async () => {
    env = await startUi();
    tmp = await mkdtemp(join(tmpdir(), 'tessera-e2e-'));
  });
  afterAll(async () => {
    await env?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('goes through the journey in the browser', async () => {
    const { page, url } = env;
    const ct = await writeSampleCt(join(tmp, 'ct'), { slices: 4, size: 64, patientId: 'E2E-1' });
    const junk = join(tmp, 'notes.txt');
    await writeFile(junk, 'this is not DICOM');
    const files = [...ct.files, junk];
    if (process.env.CI === 'true' || (await readFile(join(PYDICOM, 'MR_small.dcm')).then(() => true, () => false))) files.push(join(PYDICOM, 'MR_small.dcm'));

    // Upload: files chosen, per-file progress and results, the rejected one with its reason.
    await page.goto(`${url}/upload`);
    await page.getByLabel('Dataset').fill('e2e-upload');
    await page.getByLabel('Files to upload').setInputFiles(files);
    await expect.poll(() => page.getByTestId('upload-summary').textContent(), { timeout: 20_000 }).toContain('done');
    const summary = await page.getByTestId('upload-summary').textContent();
    expect(summary).toMatch(new RegExp(`^${files.length - 1}\\s*stored`));
    expect(summary).toMatch(/1\s*rejected/);
    expect(await page.getByTestId('rejected').textContent()).toMatch(/notes\.txt.*TESSERA_INVALID_DICOM/);
    await screenshot(page, 'upload');

    // A drop on the zone goes the same way (here a file that is not DICOM, named in the list of rejected files).
    await page.getByTestId('dropzone').evaluate((zone) => {
      const dt = new DataTransfer();
      dt.items.add(new File(['not dicom either'], 'dropped.txt', { type: 'text/plain' }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await expect.poll(() => page.getByTestId('rejected').textContent()).toContain('dropped.txt');

    // Datasets: the uploaded CT series, selected, becomes a dataset of its own.
    await page.getByRole('link', { name: /See the series of dataset e2e-upload/ }).click();
    await page.locator('.card').first().waitFor();
    await page.getByLabel('Search series').fill('E2E-1');
    await expect.poll(() => page.locator('.card').count()).toBe(1);
    await page.locator('.card').first().click();
    await page.getByRole('button', { name: 'New dataset…' }).click();
    await page.getByRole('dialog').getByLabel('Name').fill('e2e-ct');
    await page.getByRole('dialog').getByRole('button', { name: /Create/ }).click();
    await page.getByRole('dialog').waitFor({ state: 'detached' });

    // Workflows: a value the form refuses is shown at its field.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Workflows' }).click();
    await page.getByRole('button', { name: /Hello world/ }).click();
    await page.getByLabel('Repeat').fill('50');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await expect.poll(() => page.locator('.field-error').first().textContent()).toMatch(/10/);
    expect(await page.getByLabel('Repeat').getAttribute('aria-invalid')).toBe('true');

    // collect-metadata on the dataset.
    await page.getByRole('button', { name: /collect-metadata/ }).click();
    await page.getByRole('radio', { name: 'A dataset' }).check();
    await page.getByLabel('Dataset', { exact: true }).selectOption('e2e-ct');
    await screenshot(page, 'workflows');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.waitForURL(/\/runs\/[^/]+$/);
    const runId = page.url().split('/').pop()!;
    await page.locator('.dag .node').first().waitFor();
    await expect.poll(() => page.locator('.page-head .badge').first().textContent(), { timeout: 30_000 }).toBe('success');
    expect(await page.locator('.dag .node[data-state="success"]').count()).toBe(await page.locator('.dag .node').count());
    // The log of a task.
    await page.locator('.dag .node').first().click();
    await expect.poll(() => page.getByTestId('task-log').textContent()).not.toBe('waiting for output…');
    await screenshot(page, 'run');

    // Download the result.
    const link = page.getByRole('link', { name: 'Download' }).first();
    await link.waitFor({ timeout: 15_000 });
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const saved = join(tmp, 'result');
    await download.saveAs(saved);
    expect((await readFile(saved)).length).toBeGreaterThan(20);

    // The runs list shows it.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Runs' }).click();
    await page.locator(`tr[data-run="${runId}"]`).waitFor();
    expect(await page.locator(`tr[data-run="${runId}"] .badge`).textContent()).toBe('success');
    await screenshot(page, 'runs');
    expect(env.pageErrors).toEqual([]);
  });

  it('runs a workflow once per series and shows each series\' progress', async () => {
    const { page, url, server } = env;
    const series = (await server.call('GET', '/api/series?dataset=e2e-upload')).body.items.map((x: { series_instance_uid: string }) => x.series_instance_uid);
    expect(series.length).toBeGreaterThanOrEqual(2);
    await page.goto(`${url}/workflows`);
    await page.getByRole('button', { name: /collect-metadata/ }).click();
    await page.getByRole('radio', { name: 'A dataset' }).check();
    await page.getByLabel('Dataset', { exact: true }).selectOption('e2e-upload');
    await page.getByLabel(/Run once per series/).check();
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.waitForURL(/\/runs\/[^/]+$/);
    const panel = page.getByRole('region', { name: 'Series of this job' });
    await expect.poll(() => panel.locator('tr').count(), { timeout: 15_000 }).toBe(series.length);
    for (const uid of series) expect(await panel.textContent()).toContain(uid);
    // Live: every series' run ends without a reload.
    await expect.poll(() => panel.locator('.badge', { hasText: 'success' }).count(), { timeout: 60_000 }).toBe(series.length);
    expect(await panel.locator('h2').textContent()).toContain(`${series.length}/${series.length} done`);
    expect(env.pageErrors).toEqual([]);
    // Its waits add up to 75 s on a loaded machine: more than the default test timeout.
  }, 90_000);
});

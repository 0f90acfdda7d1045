import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, writeShellExtension } from '../../packages/server/src/__fixtures__/test-server.ts';
import { screenshot, skipBrowser, startUi, type UiEnv } from './browser.ts';

describe.skipIf(skipBrowser)('web UI: install an extension and run its workflow; launch an application and open it through the proxy', () => {
  let env: UiEnv;
  beforeAll(async () => {
    env = await startUi();
  });
  afterAll(async () => {
    await env?.close();
  });

  const nav = (name: string) => env.page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name });

  it('uninstalls hello-world, installs it again from the catalog and runs it', async () => {
    const { page, url } = env;
    await page.goto(`${url}/extensions`);
    const card = page.locator('[data-extension="hello-world"]');
    await card.waitFor();
    await screenshot(page, 'extensions');
    await card.getByRole('button', { name: 'Uninstall' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Uninstall' }).click();
    await expect.poll(() => card.locator('.badge').textContent()).toBe('not installed');
    expect((await env.server.call('GET', '/api/workflows/hello-world')).status).toBe(404);

    // Filters: applications only, then installed only.
    await page.getByLabel('Kind').selectOption('application');
    await expect.poll(() => page.locator('[data-extension]').evaluateAll((els) => els.map((e) => e.getAttribute('data-extension')))).not.toContain('hello-world');
    await page.getByLabel('Kind').selectOption('');

    await card.getByRole('button', { name: 'Install…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Install' }).click();
    await expect.poll(() => card.locator('.badge').textContent(), { timeout: 20_000 }).toBe('installed');
    await card.getByRole('link', { name: 'hello-world' }).click();
    await page.getByLabel('Message').fill('Hi from the browser');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.waitForURL(/\/runs\/[^/]+$/);
    await expect.poll(() => page.locator('.page-head .badge').first().textContent(), { timeout: 30_000 }).toBe('success');
    await page.locator('.dag .node[data-task="greet"]').click();
    await expect.poll(() => page.getByTestId('task-log').textContent()).toContain('greet: wrote');
    expect(await page.locator('main').textContent()).toContain('"message":"Hi from the browser"');
  });

  it('installs hello-world-app with a parameter, launches it, opens it through the proxy and stops it', async () => {
    const { page, url } = env;
    await nav('Extensions').click();
    const card = page.locator('[data-extension="hello-world-app"]');
    await card.getByRole('button', { name: 'Install…' }).click();
    // A wrong answer from the server is shown in the dialog: here, the install goes through.
    await page.getByRole('dialog').getByRole('button', { name: 'Install' }).click();
    await expect.poll(() => card.locator('.badge').textContent(), { timeout: 20_000 }).toBe('installed');

    await nav('Applications').click();
    await page.locator('[data-app="hello-world-app"]').getByRole('button', { name: 'Launch…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Instance name').fill('Bad Name');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    await expect.poll(() => dialog.locator('.error-box').textContent()).toMatch(/TESSERA_INVALID_REQUEST/);
    await dialog.getByLabel('Instance name').fill('ada');
    await dialog.getByLabel('display_name').fill('Ada Lovelace');
    await dialog.getByRole('button', { name: 'Launch' }).click();
    const row = page.locator('tr[data-instance="ada"]');
    await expect.poll(() => row.locator('.badge').textContent(), { timeout: 30_000 }).toBe('running');
    await screenshot(page, 'applications');

    const [popup] = await Promise.all([page.waitForEvent('popup'), row.getByRole('link', { name: /Open/ }).click()]);
    await popup.waitForLoadState();
    expect(popup.url()).toBe(`${url}/applications/project/admin/release/ada/`);
    expect(await popup.textContent('body')).toContain('Ada Lovelace');
    await popup.close();

    await row.getByRole('button', { name: 'Stop' }).click();
    await expect.poll(() => row.locator('.badge').textContent(), { timeout: 15_000 }).toBe('stopped');
  });

  it('lists a run waiting for a person at its application, and lets the person mark it complete', async () => {
    const { page, server } = env;
    await writeShellExtension(server.extRoot, 'review-flow', [
      {
        id: 'review-flow',
        tasks: [
          { id: 'review', level: 'batch', builtin: 'launch-app', builtin_params: { extension: 'hello-world-app' } },
          { id: 'after', level: 'batch', upstream: ['review'], sh: 'echo reviewed' },
        ],
      },
    ]);
    expect((await server.call('POST', '/api/workflows/reload')).status).toBe(200);
    const job = await server.call<{ runs: { id: string }[] }>('POST', '/api/jobs', { workflow: 'review-flow' });
    expect(job.status, JSON.stringify(job.body)).toBe(201);
    const runId = job.body.runs[0]!.id;
    await nav('Applications').click();
    const waiting = page.getByRole('region', { name: 'Waiting for a person' });
    await waiting.getByRole('link', { name: runId }).waitFor({ timeout: 20_000 });
    await waiting.getByRole('button', { name: 'Mark complete' }).click();
    await waitFor(async () => (await server.call<{ state: string }>('GET', `/api/runs/${runId}`)).body.state === 'success', 20_000, 'the run to go on and end');
    await waiting.waitFor({ state: 'detached', timeout: 10_000 });
  });

  it('shows a text result file of a run in place', async () => {
    const { page, server, url } = env;
    await writeShellExtension(server.extRoot, 'stats-flow', [
      {
        id: 'stats-flow',
        tasks: [
          { id: 'make', level: 'batch', sh: 'mkdir -p "$WORKFLOW_DIR/make" && echo \'{"ok":true,"series":3}\' > "$WORKFLOW_DIR/make/stats.json"' },
          { id: 'store', level: 'batch', builtin: 'put-files', upstream: ['make'], input_dir: 'make' },
        ],
      },
    ]);
    expect((await server.call('POST', '/api/workflows/reload')).status).toBe(200);
    const job = await server.call<{ runs: { id: string }[] }>('POST', '/api/jobs', { workflow: 'stats-flow' });
    expect(job.status, JSON.stringify(job.body)).toBe(201);
    await page.goto(`${url}/runs/${job.body.runs[0]!.id}`);
    await page.getByRole('button', { name: 'View' }).click({ timeout: 20_000 });
    await expect.poll(() => page.getByTestId('result-view').textContent()).toContain('"ok": true');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
  });

  it('shows the system page', async () => {
    const { page } = env;
    await nav('System').click();
    await page.getByRole('heading', { name: 'Runners' }).waitFor();
    expect(await page.locator('main').textContent()).toContain('local processes');
    await screenshot(page, 'system');
    expect(env.pageErrors).toEqual([]);
  });
});

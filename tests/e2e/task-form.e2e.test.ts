import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeShellExtension } from '../../packages/server/src/__fixtures__/test-server.ts';
import { screenshot, skipBrowser, startUi, type UiEnv } from './browser.ts';

/** A workflow with the settings of two Task API tasks, as the SDK writes them for processing-container.json env. */
const TASK_FORM = {
  type: 'object',
  properties: {
    generate: {
      type: 'object',
      title: 'generate',
      properties: {
        COUNT: { title: 'COUNT', type: 'integer', default: 3, description: 'How many items to write.' },
        VERBOSE: { title: 'VERBOSE', type: 'boolean', default: false },
      },
      additionalProperties: false,
    },
    summarize: {
      type: 'object',
      title: 'summarize',
      properties: { STATISTIC: { title: 'STATISTIC', type: 'string', default: 'sum', enum: ['sum', 'mean', 'max'], description: 'What to compute.' } },
      additionalProperties: false,
    },
  },
};

describe.skipIf(skipBrowser)('web UI: the settings of Task API tasks when starting a run (conf.task_form)', () => {
  let env: UiEnv;

  beforeAll(async () => {
    env = await startUi();
    await writeShellExtension(env.server.extRoot, 'task-form-e2e', [
      {
        id: 'task-settings',
        task_form: TASK_FORM,
        tasks: [
          { id: 'generate', title: 'Generate numbers', sh: 'echo "count=$COUNT verbose=$VERBOSE"' },
          { id: 'summarize', upstream: ['generate'], sh: 'echo "statistic=$STATISTIC"' },
        ],
      },
    ]);
    await env.server.call('POST', '/api/workflows/reload');
  });
  afterAll(async () => {
    await env?.close();
  });

  it('shows a section per task with typed fields and defaults, refuses a bad value at its field, and sends the chosen values', async () => {
    const { page, url } = env;
    await page.goto(`${url}/workflows/task-settings`);
    const settings = page.getByRole('group', { name: 'Task settings' });
    await settings.waitFor();
    // one section per task, named by its title
    await expect.poll(() => settings.locator('fieldset legend').allTextContents()).toEqual(['Task Generate numbers', 'Task summarize']);
    const count = page.getByLabel('COUNT');
    expect(await count.getAttribute('type')).toBe('number');
    expect(await count.inputValue()).toBe('3');
    expect(await page.getByLabel('VERBOSE').isChecked()).toBe(false);
    const statistic = page.getByLabel('STATISTIC');
    expect(await statistic.evaluate((el) => el.tagName)).toBe('SELECT');
    expect(await statistic.inputValue()).toBe('sum');
    expect(await statistic.locator('option').allTextContents()).toEqual(['—', 'sum', 'mean', 'max']);
    expect(await settings.textContent()).toContain('What to compute.');

    // The server checks the values against the schema; its refusal shows at the field.
    await count.fill('2.5');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await expect.poll(() => settings.locator('.field-error').first().textContent()).toMatch(/integer/);
    expect(await count.getAttribute('aria-invalid')).toBe('true');

    await count.fill('7');
    await page.getByLabel('VERBOSE').check();
    await statistic.selectOption('max');
    await screenshot(page, 'workflows-task-settings');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.waitForURL(/\/runs\/[^/]+$/);
    const runId = page.url().split('/').pop()!;
    await expect.poll(() => page.locator('.page-head .badge').first().textContent(), { timeout: 30_000 }).toBe('success');

    const run = await env.server.call<{ workflow_dir: string | null }>('GET', `/api/runs/${runId}`);
    expect(run.status).toBe(200);
    const conf = JSON.parse(await readFile(join(run.body.workflow_dir!, 'conf', 'conf.json'), 'utf8'));
    expect(conf.task_form).toEqual({
      generate: { env: [{ name: 'COUNT', value: '7' }, { name: 'VERBOSE', value: 'true' }] },
      summarize: { env: [{ name: 'STATISTIC', value: 'max' }] },
    });
    expect(env.pageErrors).toEqual([]);
  });
});

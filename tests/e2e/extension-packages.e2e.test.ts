import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '../../packages/extension-packages/src/index.ts';
import { writeShellExtension } from '../../packages/server/src/__fixtures__/test-server.ts';
import { skipBrowser, startUi, type UiEnv } from './browser.ts';

describe.skipIf(skipBrowser)('web UI: delete an uploaded package version from the Extensions page', () => {
  let env: UiEnv;
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tessera-e2e-pkg-'));
    env = await startUi();
  });
  afterAll(async () => {
    await env?.close();
    await rm(work, { recursive: true, force: true });
  });

  const uploadVersion = async (version: string): Promise<void> => {
    const root = await mkdtemp(join(work, 'src-'));
    const dir = await writeShellExtension(root, 'ui-pkg', [{ id: 'ui-pkg', tasks: [{ id: 'work', level: 'batch', sh: 'exit 0' }] }]);
    const path = join(dir, 'tessera-extension.json');
    await writeFile(path, JSON.stringify({ ...(JSON.parse(await readFile(path, 'utf8')) as object), version }));
    const built = await buildPackage(dir, { out: join(work, `ui-pkg-${version}.tgz`) });
    const res = await fetch(`${env.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: await readFile(built.file) });
    expect(res.status).toBe(201);
  };

  it('asks with the versions (the installed one cannot be chosen), deletes the chosen one, and the card shows what is left', async () => {
    const { page, url, server } = env;
    await uploadVersion('1.0.0');
    await uploadVersion('2.0.0');
    expect((await server.call('POST', '/api/extensions/ui-pkg/install?wait=true', { version: '2.0.0' })).status).toBe(200);

    await page.goto(`${url}/extensions`);
    const card = page.locator('[data-extension="ui-pkg"]');
    await card.waitFor();
    // Built-in extensions have no package to delete.
    expect(await page.locator('[data-extension="hello-world"]').getByRole('button', { name: 'Delete a package…' }).count()).toBe(0);

    await card.getByRole('button', { name: 'Delete a package…' }).click();
    const dialog = page.getByRole('dialog');
    const version = dialog.getByLabel('Version');
    expect(await version.inputValue()).toBe('1.0.0');
    expect(await dialog.locator('option[value="2.0.0"]').isDisabled()).toBe(true);
    expect(await dialog.locator('option[value="2.0.0"]').textContent()).toContain('installed, uninstall it first');
    // Cancel keeps it.
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect((await server.call('GET', '/api/extensions/ui-pkg')).body.versions.map((v: { version: string }) => v.version)).toEqual(['2.0.0', '1.0.0']);

    await card.getByRole('button', { name: 'Delete a package…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
    await expect.poll(async () => (await server.call('GET', '/api/extensions/ui-pkg')).body.versions.map((v: { version: string }) => v.version)).toEqual(['2.0.0']);
    expect((await readdir(join(server.home, 'extensions', 'store'))).filter((d) => d.startsWith('ui-pkg@1.0.0+'))).toEqual([]);

    // The installed version only: the dialog has nothing to delete, and says why.
    await card.getByRole('button', { name: 'Delete a package…' }).click();
    expect(await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).isDisabled()).toBe(true);
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
    expect(env.pageErrors).toEqual([]);
  }, 90_000);
});

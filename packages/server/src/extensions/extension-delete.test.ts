import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '@tessera/extension-packages';
import { startTestServer, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

let work: string;
let s: TestServer;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tessera-ext-delete-'));
  s = await startTestServer();
}, 30_000);
afterAll(async () => {
  await s?.close();
  await rm(work, { recursive: true, force: true });
});

/** A package of a one-task workflow carrying `zeros` bytes of zeros: small packed, large unpacked. */
async function packageOf(name: string, version: string, zeros = 0): Promise<string> {
  const root = await mkdtemp(join(work, 'src-'));
  const dir = await writeShellExtension(root, name, [{ id: name, tasks: [{ id: 'work', level: 'batch', sh: 'exit 0' }] }]);
  const path = join(dir, 'tessera-extension.json');
  await writeFile(path, JSON.stringify({ ...(JSON.parse(await readFile(path, 'utf8')) as object), version }));
  if (zeros > 0) await writeFile(join(dir, 'weights.bin'), Buffer.alloc(zeros));
  return (await buildPackage(dir, { out: join(work, `${name}-${version}.tgz`) })).file;
}

async function upload(file: string): Promise<void> {
  const res = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: await readFile(file) });
  expect(res.status, await res.clone().text()).toBe(201);
}

/** The folders of the package store, and their bytes. */
async function store(): Promise<{ dirs: string[]; bytes: number }> {
  const root = join(s.home, 'extensions', 'store');
  const dirs = (await readdir(root)).sort();
  let bytes = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(dir, e.name));
      else bytes += (await stat(join(dir, e.name))).size;
    }
  };
  await walk(root);
  return { dirs, bytes };
}

describe('DELETE /api/extensions/{name}/versions/{version}', () => {
  it('deletes an uploaded version that unpacks large: its folder and catalog entry go, the disk is freed', async () => {
    const big = 64 * 1024 * 1024;
    const file = await packageOf('pkg-big', '1.0.0', big);
    expect((await stat(file)).size).toBeLessThan(1024 * 1024);
    await upload(file);
    await upload(await packageOf('pkg-big', '2.0.0'));
    const before = await store();
    expect(before.dirs.filter((d) => d.startsWith('pkg-big@1.0.0+'))).toHaveLength(1);
    expect(before.bytes).toBeGreaterThan(big);

    const del = await s.call('DELETE', '/api/extensions/pkg-big/versions/1.0.0');
    expect(del.status, JSON.stringify(del.body)).toBe(200);
    expect(del.body).toEqual({ name: 'pkg-big', version: '1.0.0', bytes: expect.any(Number), removed: true });
    const after = await store();
    expect(after.dirs.filter((d) => d.startsWith('pkg-big@1.0.0+'))).toEqual([]);
    expect(after.dirs.filter((d) => d.startsWith('pkg-big@2.0.0+'))).toHaveLength(1);
    expect(before.bytes - after.bytes).toBeGreaterThanOrEqual(big);
    const entry = await s.call('GET', '/api/extensions/pkg-big');
    expect(entry.body.versions.map((v: { version: string }) => v.version)).toEqual(['2.0.0']);

    // Again: it is no longer there.
    const again = await s.call('DELETE', '/api/extensions/pkg-big/versions/1.0.0');
    expect(again.status).toBe(404);
    expect(again.body.error).toMatchObject({ code: 'TESSERA_NOT_FOUND' });
    expect(again.body.error.message).toBe('extension "pkg-big" has no uploaded version 1.0.0; its versions: 2.0.0 (package)');
  }, 60_000);

  it('refuses the installed version with 409 saying to uninstall first; after the uninstall it goes, and the extension with it', async () => {
    await upload(await packageOf('pkg-used', '1.0.0'));
    expect((await s.call('POST', '/api/extensions/pkg-used/install?wait=true', {})).status).toBe(200);
    const refused = await s.call('DELETE', '/api/extensions/pkg-used/versions/1.0.0');
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('TESSERA_CONFLICT');
    expect(refused.body.error.message).toMatch(/^pkg-used@1\.0\.0 is installed: uninstall it first \(tessera ext uninstall pkg-used/);
    // Nothing changed: it still runs.
    expect((await s.call('GET', '/api/workflows/pkg-used')).status).toBe(200);
    expect((await store()).dirs.some((d) => d.startsWith('pkg-used@1.0.0+'))).toBe(true);

    expect((await s.call('DELETE', '/api/extensions/pkg-used')).status).toBe(200);
    const del = await s.call('DELETE', '/api/extensions/pkg-used/versions/1.0.0');
    expect(del.status, JSON.stringify(del.body)).toBe(200);
    expect(del.body.removed).toBe(true);
    expect((await store()).dirs.some((d) => d.startsWith('pkg-used@'))).toBe(false);
    // Its only version gone, not installed: the catalog no longer knows it.
    expect((await s.call('GET', '/api/extensions/pkg-used')).status).toBe(404);
    const catalog = await s.call('GET', '/api/extensions');
    expect(catalog.body.items.map((e: { name: string }) => e.name)).not.toContain('pkg-used');
  }, 60_000);

  it('refuses built-in versions with 409, and answers 404 for an unknown extension or version', async () => {
    const hello = await s.call('GET', '/api/extensions/hello-world');
    const builtin = hello.body.versions.find((v: { source: string }) => v.source === 'builtin').version as string;
    const refused = await s.call('DELETE', `/api/extensions/hello-world/versions/${builtin}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/is built in .*not an uploaded package: it cannot be deleted; uninstall it/);
    expect(existsSync(join(s.tessera.config.builtinExtensionsDir, 'hello-world'))).toBe(true);

    const unknown = await s.call('DELETE', '/api/extensions/no-such-ext/versions/1.0.0');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(/extension "no-such-ext" is not in the catalog/);
    const version = await s.call('DELETE', '/api/extensions/hello-world/versions/9.9.9');
    expect(version.status).toBe(404);
    expect(version.body.error.message).toMatch(/has no uploaded version 9\.9\.9; its versions: .* \(builtin\)/);
  });
});

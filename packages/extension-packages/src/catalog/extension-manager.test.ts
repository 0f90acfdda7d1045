import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { domainView, migrate, openDatabase, type Kysely } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { WorkflowRegistry } from '../workflow-registry.ts';
import { ExtensionManager } from './extension-manager.ts';
import { extensionMigrations, type ExtensionTables } from './extension-migrations.ts';

/** A built-in extension folder with one JSON workflow (a shell task), as the collection holds them. */
async function writeExtension(root: string, name: string, manifest: Record<string, unknown> = {}): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const spec = { spec_version: 1, id: name, workflow_form: { type: 'object' }, data_form: { type: 'object' }, tasks: [{ id: 'work', operator: 'work', output_dir: 'work', process: { command: ['true'] } }] };
  await writeFile(join(dir, `${name}.json`), JSON.stringify(spec));
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'workflow', workflows: [`${name}.json`], ...manifest }));
  return dir;
}

describe('ExtensionManager', () => {
  let work: string;
  let db: Kysely<unknown>;
  let manager: ExtensionManager | undefined;
  const warnings: string[] = [];

  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), 'tessera-ext-manager-'));
    db = openDatabase<unknown>({ file: join(work, 'tessera.db') });
    await migrate(db, extensionMigrations);
  });
  afterEach(async () => {
    await manager?.close();
    manager = undefined;
    await db.destroy();
    await rm(work, { recursive: true, force: true });
  });

  const start = async (defaults: string[]): Promise<ExtensionManager> => {
    manager = new ExtensionManager({
      db: domainView<ExtensionTables>(db),
      home: join(work, 'home'),
      builtinDir: join(work, 'builtin'),
      registry: new WorkflowRegistry({ roots: [] }),
      images: undefined,
      maxPackageBytes: 10 * 1024 * 1024,
      defaults,
      activeRunDirs: async () => new Set(),
      log: { info: () => {}, warn: (m) => warnings.push(m) },
    });
    await manager.start();
    return manager;
  };

  it('installs the defaults at the first start, refuses to uninstall what another needs, and answers the entry after an uninstall', async () => {
    await writeExtension(join(work, 'builtin'), 'base');
    await writeExtension(join(work, 'builtin'), 'user', { dependencies: { base: '^1.0.0' } });
    const m = await start(['base', 'user']);
    expect((await m.catalog()).map((e) => [e.name, e.state, e.workflows])).toEqual([['base', 'installed', ['base']], ['user', 'installed', ['user']]]);

    await expect(m.uninstall('base')).rejects.toThrow('extension "base" is needed by user; uninstall it first');
    const user = await m.uninstall('user');
    expect(user).toMatchObject({ name: 'user', state: 'not_installed', installed: null, workflows: [], versions: [{ version: '1.0.0', source: 'builtin' }] });
    expect((await m.uninstall('base')).state).toBe('not_installed');
  });

  it('refuses an uninstall while the manifest of another installed extension cannot be read: it names it, why, and what to do', async () => {
    await writeExtension(join(work, 'builtin'), 'base');
    const userDir = await writeExtension(join(work, 'builtin'), 'user', { dependencies: { base: '^1.0.0' } });
    const m = await start(['base', 'user']);
    await writeFile(join(userDir, 'tessera-extension.json'), '{ "name": "user", ');

    const refused = await m.uninstall('base').then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(TesseraError);
    const err = refused as TesseraError;
    expect(err.code).toBe('TESSERA_EXTENSION_INCOMPATIBLE');
    expect(err.status).toBe(409);
    expect(err.message).toMatch(/^cannot uninstall "base": whether the installed extension "user"@1\.0\.0 needs it is unknown, because its manifest cannot be read \(.*tessera-extension\.json: cannot read the manifest: .*\); uninstall user first \(tessera ext uninstall user\), or restore its files in .*user, then try again$/);
    expect(err.details).toEqual([{ where: join(userDir, 'tessera-extension.json'), message: expect.stringContaining('cannot read the manifest') }]);
    expect((await m.get('base')).state).toBe('installed');

    // Installing base again at the same version changes nothing for user: it is not held up.
    await (await m.install('base', {})).done;
    expect((await m.get('base')).state).toBe('installed');

    // What the message says to do works.
    expect((await m.uninstall('user')).state).toBe('not_installed');
    expect((await m.uninstall('base')).state).toBe('not_installed');
  });
});

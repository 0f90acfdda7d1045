import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, openDatabase, type Kysely } from '@tessera/db';
import { loadExtensionFolder, type LoadedExtension } from '@tessera/extension-packages';
import { AppManager } from './app-manager.ts';
import { appMigrations, type AppTables } from './app-tables.ts';
import { ProcessAppRunner } from './runners/process/process-app-runner.ts';

async function until<T>(what: string, ms: number, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('AppManager', () => {
  let dir: string;
  let db: Kysely<AppTables>;
  let apps: AppManager;
  let extension: LoadedExtension;
  const logged: { level: 'info' | 'warn' | 'error'; message: string }[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-app-manager-'));
    db = openDatabase<AppTables>({ file: join(dir, 'tessera.db') });
    await migrate(db as Kysely<unknown>, appMigrations);
    const extDir = join(dir, 'quits-app');
    await mkdir(extDir);
    await writeFile(join(extDir, 'tessera-extension.json'), JSON.stringify({
      name: 'quits-app', version: '1.0.0', kind: 'application',
      app: { process: { command: ['sh', '-c', 'echo starting up; sleep 1; exit 7'] }, health: { timeout_s: 30 } },
    }));
    extension = await loadExtensionFolder(extDir);
    logged.length = 0;
    apps = new AppManager({
      db,
      home: dir,
      extensions: () => [extension],
      installParams: () => ({}),
      projects: { byName: async (name) => ({ id: 'p-admin', name }), nameOf: async () => 'admin' },
      resultsDir: (projectId) => join(dir, 'buckets', projectId),
      services: () => ({}),
      log: {
        info: (message) => logged.push({ level: 'info', message }),
        warn: (message) => logged.push({ level: 'warn', message }),
        error: (message) => logged.push({ level: 'error', message }),
      },
      runners: [new ProcessAppRunner({ stopGraceMs: 1000 })],
    });
  });
  afterEach(async () => {
    await apps.close();
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('logs a failure it could not record, with the instance and the cause, and still shows the instance failed', { timeout: 20_000 }, async () => {
    const launched = await apps.launch('quits-app', { project: 'admin' });
    // Once the instance runs, its record goes: the failure to come cannot be written.
    await until('the instance to start', 10_000, async () => {
      const row = await db.selectFrom('app_instances').select('handle').where('id', '=', launched.id).executeTakeFirst();
      return row?.handle ? row : undefined;
    });
    await db.schema.dropTable('app_instances').execute();

    const error = await until('the error to be logged', 10_000, () => logged.find((l) => l.level === 'error'));
    expect(error.message).toContain(`could not record that application admin/quits-app (${launched.id}) failed`);
    expect(error.message).toContain('no such table: app_instances');
    expect(error.message).toContain('the application exited with code 7');
    const instance = await apps.get('admin', 'quits-app');
    expect(instance.state).toBe('failed');
    expect(instance.reason).toContain('exited with code 7');
    expect(instance.reason).toContain('starting up');
  });
});

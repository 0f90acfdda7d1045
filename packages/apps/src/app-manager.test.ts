import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, openDatabase, type Kysely } from '@tessera/db';
import { loadExtensionFolder, type LoadedExtension } from '@tessera/extension-packages';
import { AppManager } from './app-manager.ts';
import { appMigrations, type AppTables } from './app-tables.ts';
import type { AppLaunch, AppRunner } from './runners/app-runner.ts';
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
      workflowDir: (runId) => join(dir, 'workflows', runId),
      services: () => ({}),
      log: {
        info: (message) => logged.push({ level: 'info', message }),
        warn: (message) => logged.push({ level: 'warn', message }),
        error: (message) => logged.push({ level: 'error', message }),
      },
      runners: [new ProcessAppRunner({ stopGraceMs: 1000 })],
    });
  });

  /** A second manager over the same database and extensions, with other runners. */
  function managerWith(runners: AppRunner[]): AppManager {
    return new AppManager({
      db, home: dir, extensions: () => [extension], installParams: () => ({}),
      projects: { byName: async (name) => ({ id: 'p-admin', name }), nameOf: async () => 'admin' },
      resultsDir: (projectId) => join(dir, 'buckets', projectId),
      workflowDir: (runId) => join(dir, 'workflows', runId),
      services: () => ({}),
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      runners,
    });
  }
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

  it('answers a launch with the runner\'s refusal (no sandbox for local processes) and records no instance', async () => {
    const refusing = managerWith([new ProcessAppRunner({ refuse: 'no sandbox here (a test)' })]);
    try {
      await expect(refusing.launch('quits-app', { project: 'admin' })).rejects.toMatchObject({
        code: 'TESSERA_SANDBOX',
        status: 503,
        message: 'application "quits-app" was not launched: no sandbox here (a test)',
      });
      expect(await refusing.list()).toEqual([]);
      expect(await db.selectFrom('app_instances').selectAll().execute()).toEqual([]);
    } finally {
      await refusing.close();
    }
  });

  it('mounts only the folders the platform names: a manifest\'s or an operator\'s env cannot name RESULTS_DIR or WORKFLOW_DIR', { timeout: 20_000 }, async () => {
    const launches: AppLaunch[] = [];
    const capture: AppRunner = {
      name: 'process',
      canRun: () => true,
      start: async (l) => {
        launches.push(l);
        throw new Error('captured');
      },
      stop: async () => undefined,
      removeStale: async () => undefined,
      close: async () => undefined,
    };
    await writeFile(join(extension.dir, 'tessera-extension.json'), JSON.stringify({
      name: 'quits-app', version: '1.0.0', kind: 'application',
      app: { process: { command: ['true'] }, env: { RESULTS_DIR: '/', WORKFLOW_DIR: '/etc' } },
    }));
    extension = await loadExtensionFolder(extension.dir);
    const m = managerWith([capture]);
    try {
      await m.launch('quits-app', { project: 'admin' });
      await m.launch('quits-app', { project: 'admin', name: 'for-a-task', task: { runId: 'r-1', taskId: 'review', env: { WORKFLOW_DIR: '/' } } });
      await until('both starts', 10_000, () => (launches.length === 2 ? true : undefined));
      const [plain, forTask] = launches;
      expect(plain!.env.RESULTS_DIR, 'no mounts.results: no bucket').toBeUndefined();
      expect(plain!.env.WORKFLOW_DIR, 'no run: no workflow dir').toBeUndefined();
      expect(forTask!.env.WORKFLOW_DIR).toBe(join(dir, 'workflows', 'r-1'));
      expect(forTask!.instanceDir).toBe(join(dir, 'apps', forTask!.appId));
    } finally {
      await m.close();
    }
  });
});

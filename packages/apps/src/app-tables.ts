import type { Kysely, NamedMigration } from '@tessera/db';

export type AppState = 'starting' | 'running' | 'failed' | 'stopped';

/** One launched instance of an application extension, in a project. */
export interface AppInstancesTable {
  id: string;
  /** Unique within its project; the last part of its URL. */
  name: string;
  project_id: string;
  extension: string;
  version: string;
  /** The extension folder it runs from (the working directory of a process). */
  ext_dir: string;
  /** The app spec of the manifest, as it was when launched. */
  spec_json: string;
  params_json: string;
  /** What the user asked for: it should run, or not. Restarts start again what should run. */
  desired: 'running' | 'stopped';
  state: AppState;
  reason: string | null;
  runner: string;
  port: number | null;
  /** pid of a process app. */
  handle: string | null;
  created_at: number;
  started_at: number | null;
  updated_at: number;
  /** Launched by a workflow task (launch-app), which waits until a person marks it complete. */
  run_id: string | null;
  task_id: string | null;
  completed_at: number | null;
  /**
   * Who launched it (null: no user, e.g. a workflow an arrival trigger started) and their
   * role in the project then: the rights of its API token.
   */
  launched_by: string | null;
  launched_role: string | null;
}

export interface AppTables {
  app_instances: AppInstancesTable;
}

export const appMigrations: NamedMigration[] = [
  {
    name: '2026-12-02-03-apps',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('app_instances')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('extension', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('ext_dir', 'text', (c) => c.notNull())
        .addColumn('spec_json', 'text', (c) => c.notNull())
        .addColumn('params_json', 'text', (c) => c.notNull())
        .addColumn('desired', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('reason', 'text')
        .addColumn('runner', 'text', (c) => c.notNull())
        .addColumn('port', 'integer')
        .addColumn('handle', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('app_instances_project_name', ['project_id', 'name'])
        .execute();
    },
  },
  {
    name: '2026-12-02-04-app-tasks',
    async up(db: Kysely<unknown>) {
      for (const column of ['run_id', 'task_id'] as const) await db.schema.alterTable('app_instances').addColumn(column, 'text').execute();
      await db.schema.alterTable('app_instances').addColumn('completed_at', 'bigint').execute();
    },
  },
  {
    // Issue 14: an instance's API token acts with its launcher's rights.
    name: '2026-12-07-02-app-launchers',
    async up(db: Kysely<unknown>) {
      for (const column of ['launched_by', 'launched_role'] as const) await db.schema.alterTable('app_instances').addColumn(column, 'text').execute();
    },
  },
];

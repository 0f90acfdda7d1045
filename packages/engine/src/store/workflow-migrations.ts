import { type Kysely, type NamedMigration } from '@tessera/db';

/** Migrations of the workflows domain (jobs, runs, tasks). */
export const workflowMigrations: NamedMigration[] = [
  {
    name: '2026-11-24-02-workflows',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('workflow_id', 'text', (c) => c.notNull())
        .addColumn('conf', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id'))
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('workflow_id', 'text', (c) => c.notNull())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('conf', 'text', (c) => c.notNull())
        .addColumn('extension_dir', 'text')
        .addColumn('workflow_dir', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('reason', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('dir_removed_at', 'bigint')
        .execute();
      await db.schema.createIndex('runs_project_created').on('runs').columns(['project_id', 'created_at']).execute();
      await db.schema.createIndex('runs_job').on('runs').column('job_id').execute();
      await db.schema.createIndex('runs_state').on('runs').column('state').execute();
      await db.schema
        .createTable('tasks')
        .addColumn('run_id', 'text', (c) => c.notNull().references('runs.id'))
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('position', 'integer', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('try_number', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('attempt', 'integer', (c) => c.notNull().defaultTo(1))
        .addColumn('runner', 'text')
        .addColumn('handle', 'text')
        .addColumn('exit_code', 'integer')
        .addColumn('reason', 'text')
        .addColumn('oom_killed', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('queued_at', 'bigint')
        .addColumn('started_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('next_try_at', 'bigint')
        .addPrimaryKeyConstraint('tasks_pk', ['run_id', 'task_id'])
        .execute();
    },
  },
  {
    // Issue 13: a try that runs again because the server stopped while the previous one ran is a new, visible try.
    name: '2026-12-06-01-task-restarts',
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('tasks').addColumn('restarts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('tasks').addColumn('rerun_reason', 'text').execute();
    },
  },
  {
    // Issue 14: who started a job or a run's attempt, and with which role in its project: the rights its tasks act with.
    name: '2026-12-07-01-run-starters',
    async up(db: Kysely<unknown>) {
      for (const table of ['jobs', 'runs']) {
        for (const column of ['started_by', 'started_by_name', 'started_role']) await db.schema.alterTable(table).addColumn(column, 'text').execute();
      }
    },
  },
];

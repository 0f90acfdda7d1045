import { CompiledQuery, type Kysely } from '@tessera/db';
import type { RunState } from '@tessera/model';
import type { JobRow, RunRow, TaskRow, WorkflowTables } from './workflow-tables.ts';

export type TaskPatch = Partial<Omit<TaskRow, 'run_id' | 'task_id'>>;
export type RunPatch = Partial<Omit<RunRow, 'id'>>;

/** One batch of state transitions, written in one transaction. */
export interface Transition {
  tasks?: { runId: string; taskId: string; patch: TaskPatch }[];
  runs?: { runId: string; patch: RunPatch }[];
}

export interface RunFilter {
  projectId?: string;
  /** Only runs of these projects (the caller's, for a list of every project they may see). */
  projectIds?: readonly string[];
  jobId?: string;
  workflowId?: string;
  states?: RunState[];
  limit?: number;
  offset?: number;
  /** Default: newest first (`created_at` descending). Ties are ordered by id the same way. */
  sort?: { field: RunSortField; order: 'asc' | 'desc' };
}

export const RUN_SORT_FIELDS = ['created_at', 'started_at', 'ended_at', 'state', 'workflow_id'] as const;
export type RunSortField = (typeof RUN_SORT_FIELDS)[number];

/** Storage of the workflows domain: jobs, runs and tasks. */
export class WorkflowStore {
  readonly db: Kysely<WorkflowTables>;

  constructor(db: Kysely<WorkflowTables>) {
    this.db = db;
  }

  async insertJob(job: JobRow, runs: RunRow[], tasks: TaskRow[]): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.insertInto('jobs').values(job).execute();
      for (let i = 0; i < runs.length; i += 200) await trx.insertInto('runs').values(runs.slice(i, i + 200)).execute();
      // SQLite allows 32,766 bound values per statement; a task row has 18.
      for (let i = 0; i < tasks.length; i += 1000) await trx.insertInto('tasks').values(tasks.slice(i, i + 1000)).execute();
    });
  }

  /** Writes a batch of transitions; a single row update skips the transaction round trips. */
  async write(t: Transition): Promise<void> {
    const count = (t.tasks?.length ?? 0) + (t.runs?.length ?? 0);
    if (count === 0) return;
    if (count === 1) {
      await this.#apply(this.db, t);
      return;
    }
    await this.db.transaction().execute((trx) => this.#apply(trx, t));
  }

  async #apply(db: Kysely<WorkflowTables>, t: Transition): Promise<void> {
    for (const { runId, taskId, patch } of t.tasks ?? []) {
      // Kysely leaves out columns set to undefined; so does the cached SQL.
      const keys = (Object.keys(patch) as (keyof TaskPatch)[]).filter((k) => patch[k] !== undefined);
      const sql = this.#updateSql('tasks', keys, () => db.updateTable('tasks').set(patch).where('run_id', '=', runId).where('task_id', '=', taskId).compile());
      await db.executeQuery(CompiledQuery.raw(sql, [...keys.map((k) => patch[k]), runId, taskId]));
    }
    for (const { runId, patch } of t.runs ?? []) {
      const keys = (Object.keys(patch) as (keyof RunPatch)[]).filter((k) => patch[k] !== undefined);
      const sql = this.#updateSql('runs', keys, () => db.updateTable('runs').set(patch).where('id', '=', runId).compile());
      await db.executeQuery(CompiledQuery.raw(sql, [...keys.map((k) => patch[k]), runId]));
    }
  }

  /**
   * The SQL of an update of these columns, built by Kysely once per table and set of
   * columns (in the dialect of the database): a transition writes the same few shapes
   * thousands of times, and building the query each time cost more than running it.
   */
  readonly #updates = new Map<string, string>();
  #updateSql(table: string, keys: readonly string[], build: () => { sql: string; parameters: readonly unknown[] }): string {
    const cacheKey = `${table}:${keys.join(',')}`;
    let sql = this.#updates.get(cacheKey);
    if (sql === undefined) {
      const compiled = build();
      // One parameter per column, in the patch's order, then the key(s): what the cached SQL is given.
      if (compiled.parameters.length !== keys.length + (table === 'tasks' ? 2 : 1)) throw new Error(`unexpected parameters for an update of ${cacheKey}: ${compiled.sql}`);
      sql = compiled.sql;
      this.#updates.set(cacheKey, sql);
    }
    return sql;
  }

  async getRun(id: string): Promise<RunRow | undefined> {
    return this.db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async getTasks(runId: string): Promise<TaskRow[]> {
    return this.db.selectFrom('tasks').selectAll().where('run_id', '=', runId).orderBy('position').execute();
  }

  async getJob(id: string): Promise<JobRow | undefined> {
    return this.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async listRuns(filter: RunFilter): Promise<{ runs: RunRow[]; total: number }> {
    let q = this.db.selectFrom('runs');
    if (filter.projectId) q = q.where('project_id', '=', filter.projectId);
    if (filter.projectIds) q = filter.projectIds.length > 0 ? q.where('project_id', 'in', filter.projectIds) : q.where('project_id', 'in', ['']) // no project id is empty: none;
    if (filter.jobId) q = q.where('job_id', '=', filter.jobId);
    if (filter.workflowId) q = q.where('workflow_id', '=', filter.workflowId);
    if (filter.states && filter.states.length > 0) q = q.where('state', 'in', filter.states);
    const total = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const sort = filter.sort ?? { field: 'created_at', order: 'desc' };
    if (!(RUN_SORT_FIELDS as readonly string[]).includes(sort.field)) throw new Error(`cannot sort runs by ${sort.field}`);
    const runs = await q
      .selectAll()
      .orderBy(sort.field, sort.order)
      .orderBy('created_at', sort.order)
      .orderBy('id', sort.order)
      .limit(filter.limit ?? 50)
      .offset(filter.offset ?? 0)
      .execute();
    return { runs, total: Number(total.n) };
  }

  async listJobs(filter: { projectId?: string; projectIds?: readonly string[]; limit?: number; offset?: number; order?: 'asc' | 'desc' }): Promise<{ jobs: JobRow[]; total: number }> {
    let q = this.db.selectFrom('jobs');
    if (filter.projectId) q = q.where('project_id', '=', filter.projectId);
    if (filter.projectIds) q = filter.projectIds.length > 0 ? q.where('project_id', 'in', filter.projectIds) : q.where('project_id', 'in', ['']) // no project id is empty: none;
    const total = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    const order = filter.order ?? 'desc';
    const jobs = await q.selectAll().orderBy('created_at', order).orderBy('id', order).limit(filter.limit ?? 50).offset(filter.offset ?? 0).execute();
    return { jobs, total: Number(total.n) };
  }

  /** Counts of task states per run, for listings. */
  async taskCounts(runIds: string[]): Promise<Map<string, Record<string, number>>> {
    const out = new Map<string, Record<string, number>>();
    if (runIds.length === 0) return out;
    const rows = [];
    // SQLite binds at most 32,766 values per statement.
    for (let i = 0; i < runIds.length; i += 10_000) {
      rows.push(
        ...(await this.db
          .selectFrom('tasks')
          .select(['run_id', 'state', (eb) => eb.fn.countAll<number>().as('n')])
          .where('run_id', 'in', runIds.slice(i, i + 10_000))
          .groupBy(['run_id', 'state'])
          .execute()),
      );
    }
    for (const r of rows) {
      const counts = out.get(r.run_id) ?? {};
      counts[r.state] = Number(r.n);
      out.set(r.run_id, counts);
    }
    return out;
  }

  async activeRuns(): Promise<RunRow[]> {
    return this.db.selectFrom('runs').selectAll().where('state', 'in', ['queued', 'running']).orderBy('created_at').execute();
  }

  /** Ended runs whose workflow dir is still there and older than the cutoffs. */
  async expiredWorkflowDirs(cutoff: { success: number; failed: number }): Promise<RunRow[]> {
    return this.db
      .selectFrom('runs')
      .selectAll()
      .where('dir_removed_at', 'is', null)
      .where((eb) =>
        eb.or([
          eb.and([eb('state', 'in', ['success', 'canceled']), eb('ended_at', '<', cutoff.success)]),
          eb.and([eb('state', '=', 'failed'), eb('ended_at', '<', cutoff.failed)]),
        ]),
      )
      .execute();
  }
}

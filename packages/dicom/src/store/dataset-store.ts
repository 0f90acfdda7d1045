import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import type { DatasetsTable, DicomTables } from './dicom-tables.ts';

export const DATASET_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';
const NAME = new RegExp(DATASET_NAME_PATTERN);

export interface DatasetWithCount extends DatasetsTable {
  series_count: number;
}

export type DatasetSort = 'name' | 'created_at' | 'updated_at' | 'series_count';

/** Datasets: named sets of series inside a project. A series may be in several datasets. */
export class DatasetStore {
  readonly #db: Kysely<DicomTables>;
  /** `project|name` -> id, for ingest routing (every instance names its dataset). */
  readonly #ids = new Map<string, string>();

  readonly #onChange: (projectId: string, name: string) => void;

  /** `onChange` hears of every dataset renamed or deleted (the ingest path caches dataset ids). */
  constructor(db: Kysely<DicomTables>, onChange: (projectId: string, name: string) => void = () => undefined) {
    this.#db = db;
    this.#onChange = onChange;
  }

  static checkName(name: string): void {
    if (!NAME.test(name)) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `dataset name "${name}" is invalid: use 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit`, {
        details: [{ where: 'name', message: `must match ${DATASET_NAME_PATTERN}` }],
      });
    }
  }

  async create(projectId: string, input: { name: string; description?: string }): Promise<DatasetsTable> {
    DatasetStore.checkName(input.name);
    if (await this.find(projectId, input.name)) throw new TesseraError('TESSERA_CONFLICT', `dataset "${input.name}" already exists in this project`);
    const now = Date.now();
    const row: DatasetsTable = { id: randomUUID(), project_id: projectId, name: input.name, description: input.description ?? null, created_at: now, updated_at: now };
    await this.#db.insertInto('datasets').values(row).execute();
    return row;
  }

  /** The dataset's id, creating it when new (C-STORE routing, imports). */
  async ensure(projectId: string, name: string): Promise<string> {
    const key = `${projectId}|${name}`;
    const cached = this.#ids.get(key);
    if (cached) return cached;
    DatasetStore.checkName(name);
    const now = Date.now();
    await this.#db
      .insertInto('datasets')
      .values({ id: randomUUID(), project_id: projectId, name, description: null, created_at: now, updated_at: now })
      .onConflict((oc) => oc.columns(['project_id', 'name']).doNothing())
      .execute();
    const row = await this.find(projectId, name);
    if (!row) throw new Error(`dataset "${name}" vanished right after it was created`);
    this.#ids.set(key, row.id);
    return row.id;
  }

  async find(projectId: string, name: string): Promise<DatasetsTable | undefined> {
    return this.#db.selectFrom('datasets').selectAll().where('project_id', '=', projectId).where('name', '=', name).executeTakeFirst();
  }

  async require(projectId: string, name: string): Promise<DatasetsTable> {
    const d = await this.find(projectId, name);
    if (!d) throw new TesseraError('TESSERA_NOT_FOUND', `dataset "${name}" does not exist in this project; create it with POST /api/datasets or \`tessera datasets create ${name}\``);
    return d;
  }

  async list(projectId: string, o: { limit: number; offset: number; sort?: DatasetSort; order?: 'asc' | 'desc'; q?: string }): Promise<{ items: DatasetWithCount[]; total: number }> {
    let base = this.#db.selectFrom('datasets').where('datasets.project_id', '=', projectId);
    if (o.q) base = base.where('datasets.name', 'like', `%${o.q.replace(/[%_\\]/g, '\\$&')}%`);
    const total = await base.select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow();
    const sortCol = o.sort === 'series_count' ? sql`series_count` : sql.ref(`datasets.${o.sort ?? 'name'}`);
    const items = await base
      .selectAll('datasets')
      .select(sql<number>`(select count(*) from dataset_series ds where ds.dataset_id = datasets.id)`.as('series_count'))
      .orderBy(sql`${sortCol} ${sql.raw(o.order === 'desc' ? 'desc' : 'asc')}`)
      .orderBy('datasets.name')
      .limit(o.limit)
      .offset(o.offset)
      .execute();
    return { items: items.map((d) => ({ ...d, series_count: Number(d.series_count) })), total: Number(total.n) };
  }

  async update(projectId: string, name: string, patch: { name?: string; description?: string }): Promise<DatasetsTable> {
    const d = await this.require(projectId, name);
    if (patch.name !== undefined && patch.name !== name) {
      DatasetStore.checkName(patch.name);
      if (await this.find(projectId, patch.name)) throw new TesseraError('TESSERA_CONFLICT', `dataset "${patch.name}" already exists in this project`);
    }
    const next = { name: patch.name ?? d.name, description: patch.description ?? d.description, updated_at: Date.now() };
    await this.#db.updateTable('datasets').set(next).where('id', '=', d.id).execute();
    this.#ids.delete(`${projectId}|${name}`);
    this.#onChange(projectId, name);
    return { ...d, ...next };
  }

  /** Deletes the dataset and its memberships; the series stay in the store. */
  async delete(projectId: string, name: string): Promise<void> {
    const d = await this.require(projectId, name);
    await this.#db.transaction().execute(async (trx) => {
      await trx.deleteFrom('dataset_series').where('dataset_id', '=', d.id).execute();
      await trx.deleteFrom('datasets').where('id', '=', d.id).execute();
    });
    this.#ids.delete(`${projectId}|${name}`);
    this.#onChange(projectId, name);
  }

  /** Adds series (all must exist in the project); returns how many were new to the dataset. */
  async addSeries(projectId: string, datasetId: string, seriesUids: string[]): Promise<number> {
    const uids = [...new Set(seriesUids)];
    if (uids.length === 0) return 0;
    return this.#db.transaction().execute(async (trx) => {
      const found = new Set<string>();
      for (let i = 0; i < uids.length; i += 500) {
        const rows = await trx.selectFrom('dicom_series').select('series_uid').where('project_id', '=', projectId).where('series_uid', 'in', uids.slice(i, i + 500)).execute();
        for (const r of rows) found.add(r.series_uid);
      }
      const missing = uids.filter((u) => !found.has(u));
      if (missing.length > 0) {
        throw new TesseraError('TESSERA_NOT_FOUND', `${missing.length} series do not exist in this project: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`, {
          details: missing.slice(0, 50).map((u) => ({ where: 'series', message: `${u} does not exist` })),
        });
      }
      const now = Date.now();
      let added = 0;
      for (let i = 0; i < uids.length; i += 500) {
        const r = await trx
          .insertInto('dataset_series')
          .values(uids.slice(i, i + 500).map((u) => ({ dataset_id: datasetId, project_id: projectId, series_uid: u, added_at: now })))
          .onConflict((oc) => oc.columns(['dataset_id', 'series_uid']).doNothing())
          .executeTakeFirst();
        added += Number(r.numInsertedOrUpdatedRows ?? 0n);
      }
      await trx.updateTable('datasets').set({ updated_at: now }).where('id', '=', datasetId).execute();
      return added;
    });
  }

  async removeSeries(datasetId: string, seriesUids: string[]): Promise<number> {
    const d = await this.#db.selectFrom('datasets').select(['project_id', 'name']).where('id', '=', datasetId).executeTakeFirst();
    // The ingest path remembers which series are in which dataset: forget it for this one.
    if (d) this.#onChange(d.project_id, d.name);
    let removed = 0;
    for (let i = 0; i < seriesUids.length; i += 500) {
      const r = await this.#db.deleteFrom('dataset_series').where('dataset_id', '=', datasetId).where('series_uid', 'in', seriesUids.slice(i, i + 500)).executeTakeFirst();
      removed += Number(r.numDeletedRows);
    }
    await this.#db.updateTable('datasets').set({ updated_at: Date.now() }).where('id', '=', datasetId).execute();
    return removed;
  }

  /** Series UIDs of a dataset, oldest membership first. */
  async seriesOf(datasetId: string, limit?: number): Promise<string[]> {
    let q = this.#db.selectFrom('dataset_series').select('series_uid').where('dataset_id', '=', datasetId).orderBy('added_at').orderBy('series_uid');
    if (limit !== undefined) q = q.limit(limit);
    return (await q.execute()).map((r) => r.series_uid);
  }

  /** Names of the datasets a series is in. */
  async datasetsOf(projectId: string, seriesUid: string): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('dataset_series')
      .innerJoin('datasets', 'datasets.id', 'dataset_series.dataset_id')
      .select('datasets.name')
      .where('dataset_series.project_id', '=', projectId)
      .where('dataset_series.series_uid', '=', seriesUid)
      .orderBy('datasets.name')
      .execute();
    return rows.map((r) => r.name);
  }
}

import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { SERIES_SORTS, searchSeries, seriesUidsMatching, type DatasetsTable, type DicomService, type SeriesSort } from '@tessera/dicom';
import { TesseraError } from '@tessera/model';
import { errorResponses, iso, OrderParam, PageParams, parseSort, ProjectQuery, SortParam } from '../http/common.schema.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { seriesJson } from './data-routes.ts';
import { filterFromBody, SeriesFilterBody } from './series-query.schema.ts';

export interface DatasetRoutesOptions {
  dicom: DicomService;
  projects: ProjectStore;
  events?: EventBus;
}

const NameParams = Type.Object({ name: Type.String() });
const CreateBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    description: Type.Optional(Type.String()),
    project: Type.Optional(Type.String()),
    series: Type.Optional(Type.Array(Type.String(), { description: 'SeriesInstanceUIDs to put in it.' })),
    query: Type.Optional(SeriesFilterBody),
  },
  { additionalProperties: false },
);
const PatchBody = Type.Object({ name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })), description: Type.Optional(Type.String()), project: Type.Optional(Type.String()) }, { additionalProperties: false });
const MembersBody = Type.Object(
  {
    series: Type.Optional(Type.Array(Type.String(), { description: 'SeriesInstanceUIDs.' })),
    query: Type.Optional(SeriesFilterBody),
    project: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
const DATASET_SORTS = ['name', 'created_at', 'updated_at', 'series_count'] as const;
const ListQuery = Type.Intersect([
  ProjectQuery,
  Type.Object({
    q: Type.Optional(Type.String({ description: 'Part of the name.' })),
    sort: SortParam(DATASET_SORTS, 'name'),
    order: OrderParam,
    ...PageParams(100, 1000),
  }),
]);
const SeriesPage = Type.Intersect([
  ProjectQuery,
  Type.Object({ sort: SortParam(SERIES_SORTS, 'created_at'), order: OrderParam, ...PageParams(100, 10_000) }),
]);

function datasetJson(d: DatasetsTable & { series_count?: number }, projectName: string) {
  return {
    name: d.name,
    project: projectName,
    description: d.description,
    series_count: d.series_count,
    created_at: iso(Number(d.created_at)),
    updated_at: iso(Number(d.updated_at)),
  };
}

/** Datasets: named sets of series in a project. */
export async function datasetRoutes(app: FastifyInstance, opts: DatasetRoutesOptions): Promise<void> {
  const { dicom, projects } = opts;
  const project = (name: string | undefined) => (name ? projects.require(name) : projects.ensureDefault());
  const announce = (projectName: string, name: string, state: 'created' | 'changed' | 'deleted'): void => opts.events?.publish({ type: 'dataset', project: projectName, name, state });
  const count = async (id: string) => (await dicom.datasets.seriesOf(id)).length;

  /** The series UIDs a request names: a list, a query, or both. */
  const membersOf = async (projectId: string, b: { series?: string[]; query?: Static<typeof SeriesFilterBody> }): Promise<string[]> => {
    const uids = [...(b.series ?? [])];
    if (b.query) {
      const dsId = b.query.dataset ? (await dicom.datasets.require(projectId, b.query.dataset)).id : undefined;
      uids.push(...(await seriesUidsMatching(dicom.db, filterFromBody(b.query, projectId, dsId))));
    }
    return uids;
  };

  app.get('/api/datasets', { schema: { tags: ['datasets'], summary: 'List datasets', querystring: ListQuery, response: errorResponses } }, async (req) => {
    const q = req.query as Static<typeof ListQuery>;
    const p = await project(q.project);
    const sort = parseSort<(typeof DATASET_SORTS)[number]>(q.sort, q.order, 'name');
    const r = await dicom.datasets.list(p.id, { limit: q.limit ?? 100, offset: q.offset ?? 0, sort: sort.field, order: sort.order, q: q.q });
    return { items: r.items.map((d) => datasetJson(d, p.name)), total: r.total, limit: q.limit ?? 100, offset: q.offset ?? 0 };
  });

  app.post('/api/datasets', { schema: { tags: ['datasets'], summary: 'Create a dataset, optionally with series (by UID or by query)', querystring: ProjectQuery, body: CreateBody } }, async (req, reply) => {
    const b = req.body as Static<typeof CreateBody>;
    const p = await project(b.project ?? (req.query as { project?: string }).project);
    const uids = await membersOf(p.id, b);
    // Check the members before creating: a bad UID must not leave an empty dataset behind.
    if (uids.length > 0) {
      const found = await dicom.db.selectFrom('dicom_series').select('series_uid').where('project_id', '=', p.id).where('series_uid', 'in', [...new Set(uids)].slice(0, 100000)).execute();
      const have = new Set(found.map((f) => f.series_uid));
      const missing = uids.filter((u) => !have.has(u));
      if (missing.length) throw new TesseraError('TESSERA_NOT_FOUND', `${missing.length} series do not exist in project "${p.name}": ${missing.slice(0, 5).join(', ')}`);
    }
    const d = await dicom.datasets.create(p.id, { name: b.name, description: b.description });
    const added = await dicom.datasets.addSeries(p.id, d.id, uids);
    announce(p.name, d.name, 'created');
    return reply.status(201).send({ ...datasetJson({ ...d, series_count: added }, p.name) });
  });

  app.get('/api/datasets/:name', { schema: { tags: ['datasets'], summary: 'One dataset', params: NameParams, querystring: ProjectQuery, response: errorResponses } }, async (req) => {
    const { name } = req.params as Static<typeof NameParams>;
    const p = await project((req.query as Static<typeof ProjectQuery>).project);
    const d = await dicom.datasets.require(p.id, name);
    return datasetJson({ ...d, series_count: await count(d.id) }, p.name);
  });

  app.patch('/api/datasets/:name', { schema: { tags: ['datasets'], summary: 'Rename a dataset or change its description', params: NameParams, querystring: ProjectQuery, body: PatchBody, response: errorResponses } }, async (req) => {
    const { name } = req.params as Static<typeof NameParams>;
    const b = req.body as Static<typeof PatchBody>;
    const p = await project(b.project ?? (req.query as { project?: string }).project);
    const d = await dicom.datasets.update(p.id, name, { name: b.name, description: b.description });
    if (d.name !== name) {
      announce(p.name, name, 'deleted');
      announce(p.name, d.name, 'created');
    } else announce(p.name, name, 'changed');
    return datasetJson({ ...d, series_count: await count(d.id) }, p.name);
  });

  app.delete('/api/datasets/:name', { schema: { tags: ['datasets'], summary: 'Delete a dataset (its series stay in the store)', params: NameParams, querystring: ProjectQuery, response: errorResponses } }, async (req) => {
    const { name } = req.params as Static<typeof NameParams>;
    const p = await project((req.query as Static<typeof ProjectQuery>).project);
    await dicom.datasets.delete(p.id, name);
    announce(p.name, name, 'deleted');
    return { deleted: name };
  });

  app.get('/api/datasets/:name/series', { schema: { tags: ['datasets'], summary: "A dataset's series", params: NameParams, querystring: SeriesPage, response: errorResponses } }, async (req) => {
    const { name } = req.params as Static<typeof NameParams>;
    const q = req.query as Static<typeof SeriesPage>;
    const p = await project(q.project);
    const d = await dicom.datasets.require(p.id, name);
    const sort = parseSort<SeriesSort>(q.sort, q.order, 'created_at');
    const r = await searchSeries(dicom.db, { projectId: p.id, datasetId: d.id, limit: q.limit ?? 100, offset: q.offset ?? 0, sort: sort.field, order: sort.order });
    return { items: r.items.map((s) => seriesJson(s as unknown as Record<string, unknown>, p.name)), total: r.total, limit: q.limit ?? 100, offset: q.offset ?? 0 };
  });

  app.post('/api/datasets/:name/series', { schema: { tags: ['datasets'], summary: 'Add series to a dataset, by UID or by query', params: NameParams, querystring: ProjectQuery, body: MembersBody, response: errorResponses } }, async (req) => {
    const { name } = req.params as Static<typeof NameParams>;
    const b = req.body as Static<typeof MembersBody>;
    const p = await project(b.project ?? (req.query as { project?: string }).project);
    const d = await dicom.datasets.require(p.id, name);
    const uids = await membersOf(p.id, b);
    if (!b.series && !b.query) throw new TesseraError('TESSERA_INVALID_REQUEST', 'name the series to add: "series": [UIDs] or "query": {filters}', { details: [{ where: 'body', message: 'needs series or query' }] });
    const added = await dicom.datasets.addSeries(p.id, d.id, uids);
    announce(p.name, name, 'changed');
    return { dataset: name, added, series_count: await count(d.id) };
  });

  app.delete('/api/datasets/:name/series', { schema: { tags: ['datasets'], summary: 'Remove series from a dataset (they stay in the store)', params: NameParams, querystring: ProjectQuery, body: MembersBody, response: errorResponses } }, async (req) => {
    const { name } = req.params as Static<typeof NameParams>;
    const b = req.body as Static<typeof MembersBody>;
    const p = await project(b.project ?? (req.query as { project?: string }).project);
    const d = await dicom.datasets.require(p.id, name);
    const removed = await dicom.datasets.removeSeries(d.id, await membersOf(p.id, b));
    announce(p.name, name, 'changed');
    return { dataset: name, removed, series_count: await count(d.id) };
  });
}

import type { FastifyInstance } from 'fastify';
import { datasetRoutes as routes, type Dataset, type DatasetSort, type SeriesFilterBody, type SeriesSort } from '@tessera/api';
import { searchSeries, seriesUidsMatching, type DatasetsTable, type DicomService } from '@tessera/dicom';
import { TesseraError } from '@tessera/model';
import { iso, parseSort } from '../http/lists.ts';
import { serve } from '../http/serve-route.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { seriesJson } from './data-routes.ts';
import { filterFromBody } from './series-filter.ts';

export interface DatasetRoutesOptions {
  dicom: DicomService;
  projects: ProjectStore;
  events?: EventBus;
}

function datasetJson(d: DatasetsTable & { series_count: number }, projectName: string): Dataset {
  return {
    name: d.name,
    project: projectName,
    description: d.description,
    series_count: d.series_count,
    created_at: iso(Number(d.created_at))!,
    updated_at: iso(Number(d.updated_at))!,
  };
}

/** Datasets: named sets of series in a project. */
export async function datasetRoutes(app: FastifyInstance, opts: DatasetRoutesOptions): Promise<void> {
  const { dicom, projects } = opts;
  const project = (name: string | undefined) => (name ? projects.require(name) : projects.ensureDefault());
  const announce = (projectName: string, name: string, state: 'created' | 'changed' | 'deleted'): void => opts.events?.publish({ type: 'dataset', project: projectName, name, state });
  const count = async (id: string) => (await dicom.datasets.seriesOf(id)).length;

  /** The series UIDs a request names: a list, a query, or both. */
  const membersOf = async (projectId: string, b: { series?: string[]; query?: SeriesFilterBody }): Promise<string[]> => {
    const uids = [...(b.series ?? [])];
    if (b.query) {
      const dsId = b.query.dataset ? (await dicom.datasets.require(projectId, b.query.dataset)).id : undefined;
      uids.push(...(await seriesUidsMatching(dicom.db, filterFromBody(b.query, projectId, dsId))));
    }
    return uids;
  };

  serve(app, routes.list, async (req) => {
    const q = req.query;
    const p = await project(q.project);
    const sort = parseSort<DatasetSort>(q.sort, q.order, 'name');
    const r = await dicom.datasets.list(p.id, { limit: q.limit ?? 100, offset: q.offset ?? 0, sort: sort.field, order: sort.order, q: q.q });
    return { items: r.items.map((d) => datasetJson(d, p.name)), total: r.total, limit: q.limit ?? 100, offset: q.offset ?? 0 };
  });

  serve(app, routes.create, async (req, reply) => {
    const b = req.body;
    const p = await project(b.project ?? req.query.project);
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
    return reply.status(201).send(datasetJson({ ...d, series_count: added }, p.name));
  });

  serve(app, routes.get, async (req) => {
    const { name } = req.params;
    const p = await project(req.query.project);
    const d = await dicom.datasets.require(p.id, name);
    return datasetJson({ ...d, series_count: await count(d.id) }, p.name);
  });

  serve(app, routes.update, async (req) => {
    const { name } = req.params;
    const b = req.body;
    const p = await project(b.project ?? req.query.project);
    const d = await dicom.datasets.update(p.id, name, { name: b.name, description: b.description });
    if (d.name !== name) {
      announce(p.name, name, 'deleted');
      announce(p.name, d.name, 'created');
    } else announce(p.name, name, 'changed');
    return datasetJson({ ...d, series_count: await count(d.id) }, p.name);
  });

  serve(app, routes.delete, async (req) => {
    const { name } = req.params;
    const p = await project(req.query.project);
    await dicom.datasets.delete(p.id, name);
    announce(p.name, name, 'deleted');
    return { deleted: name };
  });

  serve(app, routes.listSeries, async (req) => {
    const { name } = req.params;
    const q = req.query;
    const p = await project(q.project);
    const d = await dicom.datasets.require(p.id, name);
    const sort = parseSort<SeriesSort>(q.sort, q.order, 'created_at');
    const r = await searchSeries(dicom.db, { projectId: p.id, datasetId: d.id, limit: q.limit ?? 100, offset: q.offset ?? 0, sort: sort.field, order: sort.order });
    return { items: r.items.map((s) => seriesJson(s, p.name)), total: r.total, limit: q.limit ?? 100, offset: q.offset ?? 0 };
  });

  serve(app, routes.addSeries, async (req) => {
    const { name } = req.params;
    const b = req.body;
    const p = await project(b.project ?? req.query.project);
    const d = await dicom.datasets.require(p.id, name);
    const uids = await membersOf(p.id, b);
    if (!b.series && !b.query) throw new TesseraError('TESSERA_INVALID_REQUEST', 'name the series to add: "series": [UIDs] or "query": {filters}', { details: [{ where: 'body', message: 'needs series or query' }] });
    const added = await dicom.datasets.addSeries(p.id, d.id, uids);
    announce(p.name, name, 'changed');
    return { dataset: name, added, series_count: await count(d.id) };
  });

  serve(app, routes.removeSeries, async (req) => {
    const { name } = req.params;
    const b = req.body;
    const p = await project(b.project ?? req.query.project);
    const d = await dicom.datasets.require(p.id, name);
    const removed = await dicom.datasets.removeSeries(d.id, await membersOf(p.id, b));
    announce(p.name, name, 'changed');
    return { dataset: name, removed, series_count: await count(d.id) };
  });
}

import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses, OrderParam, PageParams, pageOf, parseSort, ProjectQuery, sortBy, SortParam } from '../http/common.schema.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import type { ResultBuckets } from './result-buckets.ts';

const RunParams = Type.Object({ run: Type.String({ pattern: '^[A-Za-z0-9_-]+$' }) });
const RESULT_SORTS = ['run_id', 'path', 'size_bytes', 'modified_at'] as const;
const ListQuery = Type.Intersect([ProjectQuery, Type.Object({ sort: SortParam(RESULT_SORTS, '-run_id'), order: OrderParam, ...PageParams(1000, 10_000) })]);

/** The result buckets over HTTP: what put-files stored, per project and run. */
export async function resultRoutes(app: FastifyInstance, opts: { buckets: ResultBuckets; projects: ProjectStore }): Promise<void> {
  const project = (name: string | undefined) => (name ? opts.projects.require(name) : opts.projects.ensureDefault());

  const page = async (q: Static<typeof ListQuery>, run?: string) => {
    const p = await project(q.project);
    // Listed newest run first, then by path: a sort by another field keeps that order among ties.
    const sort = parseSort<(typeof RESULT_SORTS)[number]>(q.sort, q.order, '-run_id');
    let all = await opts.buckets.list(p.id, run);
    if (sort.field !== 'run_id' || sort.order !== 'desc') all = sortBy(all, (o) => o[sort.field], sort.order);
    const page = pageOf(all, q.limit ?? 1000, q.offset ?? 0);
    return { ...page, items: page.items.map((o) => ({ ...o, url: `/api/results/${o.run_id}/files/${o.path}?project=${p.name}` })) };
  };
  app.get('/api/results', { schema: { tags: ['data'], summary: "Files in the project's result bucket (from put-files), newest run first", querystring: ListQuery, response: errorResponses } }, async (req) =>
    page(req.query as Static<typeof ListQuery>),
  );
  app.get('/api/results/:run', { schema: { tags: ['data'], summary: 'Result files of one run', params: RunParams, querystring: ListQuery, response: errorResponses } }, async (req) =>
    page(req.query as Static<typeof ListQuery>, (req.params as Static<typeof RunParams>).run),
  );

  app.get('/api/results/:run/files/*', { schema: { tags: ['data'], summary: 'Download one result file', querystring: ProjectQuery } }, async (req, reply) => {
    const { run, '*': path } = req.params as { run: string; '*': string };
    const p = await project((req.query as Static<typeof ProjectQuery>).project);
    const { stream, size } = await opts.buckets.open(p.id, run, path);
    reply.header('content-length', size);
    reply.header('content-disposition', `attachment; filename="${path.split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '_')}"`);
    return reply.type('application/octet-stream').send(stream);
  });
}

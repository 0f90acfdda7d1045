import type { FastifyInstance } from 'fastify';
import { RESULT_SORTS, resultRoutes as routes, type ResultFile, type ResultQuery } from '@tessera/api';
import { pageOf, parseSort, sortBy } from '../http/lists.ts';
import { serve } from '../http/serve-route.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import type { ResultBuckets } from './result-buckets.ts';

/** The result buckets over HTTP: what put-files stored, per project and run. */
export async function resultRoutes(app: FastifyInstance, opts: { buckets: ResultBuckets; projects: ProjectStore }): Promise<void> {
  const project = (name: string | undefined) => (name ? opts.projects.require(name) : opts.projects.ensureDefault());

  const page = async (q: ResultQuery, run?: string) => {
    const p = await project(q.project);
    // Listed newest run first, then by path: a sort by another field keeps that order among ties.
    const sort = parseSort<(typeof RESULT_SORTS)[number]>(q.sort, q.order, '-run_id');
    let all = await opts.buckets.list(p.id, run);
    if (sort.field !== 'run_id' || sort.order !== 'desc') all = sortBy(all, (o) => o[sort.field], sort.order);
    const page = pageOf(all, q.limit ?? 1000, q.offset ?? 0);
    const items: ResultFile[] = page.items.map((o) => ({ ...o, url: `/api/results/${o.run_id}/files/${o.path}?project=${p.name}` }));
    return { ...page, items };
  };
  serve(app, routes.list, async (request) => page(request.query));
  serve(app, routes.ofRun, async (request) => page(request.query, request.params.run));

  serve(app, routes.download, async (request, reply) => {
    const { run, '*': path } = request.params;
    const p = await project(request.query.project);
    const { stream, size } = await opts.buckets.open(p.id, run, path);
    reply.header('content-length', size);
    reply.header('content-disposition', `attachment; filename="${path.split('/').pop()!.replace(/[^A-Za-z0-9._-]/g, '_')}"`);
    return reply.type('application/octet-stream').send(stream);
  });
}

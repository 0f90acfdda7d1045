import type { FastifyInstance } from 'fastify';
import { projectRoutes as routes, type Project as ProjectJson } from '@tessera/api';
import { iso, pageOf, parseSort, sortBy } from '../http/lists.ts';
import { visibleProjects } from '../auth/principal.ts';
import { serve } from '../http/serve-route.ts';
import type { Project, ProjectStore } from './project-store.ts';

export function projectJson(p: Project): ProjectJson {
  return { id: p.id, name: p.name, description: p.description, created_at: iso(p.created_at)! };
}

/** The projects domain: every entity that holds data belongs to one. */
export async function projectRoutes(app: FastifyInstance, opts: { projects: ProjectStore }): Promise<void> {
  serve(app, routes.list, async (request) => {
    const q = request.query;
    const sort = parseSort<'name' | 'created_at'>(q.sort, q.order, 'name');
    // Only the caller's projects: the others do not exist for them.
    const visible = request.access.principal ? visibleProjects(request.access.principal) : new Set<string>();
    const mine = (await opts.projects.list()).filter((p) => visible === 'all' || visible.has(p.id));
    const all = sortBy(mine.map(projectJson), (p) => p[sort.field], sort.order);
    return pageOf(all, q.limit ?? 1000, q.offset ?? 0);
  });

  serve(app, routes.create, async (request, reply) => {
    const p = await opts.projects.create(request.body);
    return reply.status(201).send(projectJson(p));
  });

  serve(app, routes.get, async (request) => projectJson(await opts.projects.require(request.params.name)));
}

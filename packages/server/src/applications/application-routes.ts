import type { FastifyInstance } from 'fastify';
import { APP_SORTS, APP_STATES, applicationRoutes as routes } from '@tessera/api';
import type { AppManager } from '@tessera/apps';
import { TesseraError } from '@tessera/model';
import { pageOf, parseSort, sortBy } from '../http/lists.ts';
import { serve } from '../http/serve-route.ts';
import { AccessControl, visibleIds } from '../auth/access-control.ts';
import { roleIn } from '../auth/principal.ts';
import { DEFAULT_PROJECT, type ProjectStore } from '../projects/project-store.ts';

/** The applications domain: launch, list, read logs of, and stop application instances. */
export async function applicationRoutes(app: FastifyInstance, opts: { apps: AppManager; projects: ProjectStore }): Promise<void> {
  const { apps } = opts;
  serve(app, routes.list, async (request) => {
    const q = request.query;
    const states = q.state?.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = states?.filter((s) => !(APP_STATES as readonly string[]).includes(s)) ?? [];
    if (bad.length > 0) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `unknown instance state ${bad.map((b) => `"${b}"`).join(', ')}; use ${APP_STATES.join(', ')}`, {
        details: [{ where: 'querystring.state', message: `must be among ${APP_STATES.join(', ')} (got ${JSON.stringify(q.state)})` }],
      });
    }
    const visible = visibleIds(request);
    const names = visible && new Set((await Promise.all(visible.map((id) => opts.projects.findById(id)))).map((p) => p?.name));
    const all = (await apps.list({ project: q.project })).filter((i) => (!names || names.has(i.project)) && (!states || states.includes(i.state)) && (q.extension === undefined || i.extension === q.extension));
    // apps.list is by project, then name: the default needs no sort.
    const sort = parseSort<(typeof APP_SORTS)[number]>(q.sort, q.order, 'project');
    const sorted = q.sort === undefined && q.order === undefined ? all : sortBy(all, (i) => i[sort.field], sort.order);
    return pageOf(sorted, q.limit ?? 1000, q.offset ?? 0);
  });

  serve(app, routes.launch, async (request, reply) => {
    const { extension, project, name, params } = request.body;
    // The instance's API token acts with the launcher's rights in the project.
    const principal = request.access.principal ?? AccessControl.LOCAL;
    const target = request.access.project;
    const launchedBy = { userId: principal.user.id, role: target ? (roleIn(principal, target.id) ?? null) : null };
    const instance = await apps.launch(extension, { project: project ?? DEFAULT_PROJECT, name, params, launchedBy });
    return reply.code(202).send(instance);
  });

  serve(app, routes.get, async (request) => apps.get(request.query.project ?? DEFAULT_PROJECT, request.params.name));

  serve(app, routes.logs, async (request, reply) => {
    const text = await apps.logs(request.query.project ?? DEFAULT_PROJECT, request.params.name, request.query.lines ?? 200);
    return reply.type('text/plain; charset=utf-8').send(text ? `${text}\n` : '');
  });

  serve(app, routes.complete, async (request) => apps.complete(request.query.project ?? DEFAULT_PROJECT, request.params.name));

  serve(app, routes.stop, async (request) => apps.stop(request.query.project ?? DEFAULT_PROJECT, request.params.name));
}

import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { AppManager } from '@tessera/apps';
import { errorResponses, OrderParam, PageParams, pageOf, parseSort, sortBy, SortParam } from '../http/common.schema.ts';
import { TesseraError } from '@tessera/model';
import { DEFAULT_PROJECT } from '../projects/project-store.ts';

const Open = (description: string) => Type.Object({}, { additionalProperties: true, description });
const LaunchBody = Type.Object(
  {
    extension: Type.String({ minLength: 1, description: 'An installed application extension, e.g. "hello-world-app".' }),
    project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
    name: Type.Optional(Type.String({ description: 'Instance name (multi-instance applications only; default <extension>-<n>).' })),
    params: Type.Optional(Type.Object({}, { additionalProperties: true, description: "Values of the extension's parameters for this instance." })),
  },
  { additionalProperties: false },
);
const InstanceParams = Type.Object({ name: Type.String({ minLength: 1 }) });
const ProjectQuery = Type.Object({ project: Type.Optional(Type.String()) });
/** `sort` fields of GET /api/applications; the default is by project, then name. */
const APP_SORTS = ['name', 'project', 'extension', 'state', 'created_at', 'started_at'] as const;
const ListQuery = Type.Object({
  project: Type.Optional(Type.String({ description: "Only this project's instances (default: every project's)." })),
  state: Type.Optional(Type.String({ description: 'Comma-separated: starting, running, failed, stopped.' })),
  extension: Type.Optional(Type.String()),
  sort: SortParam(APP_SORTS, 'project'),
  order: OrderParam,
  ...PageParams(1000, 1000),
});
const APP_STATES = ['starting', 'running', 'failed', 'stopped'];
const LogQuery = Type.Object({ project: Type.Optional(Type.String()), lines: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 200 })) });

/** The applications domain: launch, list, read logs of, and stop application instances. */
export async function applicationRoutes(app: FastifyInstance, opts: { apps: AppManager }): Promise<void> {
  const { apps } = opts;
  app.get<{ Querystring: Static<typeof ListQuery> }>('/api/applications', {
    schema: {
      tags: ['applications'],
      summary: 'Application instances with their state (starting, running, failed with the reason, stopped) and URL',
      querystring: ListQuery,
      response: { 200: Type.Object({ items: Type.Array(Open('An instance')), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() }), ...errorResponses },
    },
  }, async (request) => {
    const q = request.query;
    const states = q.state?.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = states?.filter((s) => !APP_STATES.includes(s)) ?? [];
    if (bad.length > 0) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `unknown instance state ${bad.map((b) => `"${b}"`).join(', ')}; use ${APP_STATES.join(', ')}`, {
        details: [{ where: 'querystring.state', message: `must be among ${APP_STATES.join(', ')} (got ${JSON.stringify(q.state)})` }],
      });
    }
    const all = (await apps.list({ project: q.project })).filter((i) => (!states || states.includes(i.state)) && (q.extension === undefined || i.extension === q.extension));
    // apps.list is by project, then name: the default needs no sort.
    const sort = parseSort<(typeof APP_SORTS)[number]>(q.sort, q.order, 'project');
    const sorted = q.sort === undefined && q.order === undefined ? all : sortBy(all, (i) => i[sort.field], sort.order);
    return pageOf(sorted, q.limit ?? 1000, q.offset ?? 0);
  });

  app.post<{ Body: Static<typeof LaunchBody> }>('/api/applications', {
    schema: { tags: ['applications'], summary: 'Launch an instance of an installed application (202: starting; it is served at its url once running)', body: LaunchBody, response: { 202: Open('The instance'), ...errorResponses } },
  }, async (request, reply) => {
    const { extension, project, name, params } = request.body;
    const instance = await apps.launch(extension, { project: project ?? DEFAULT_PROJECT, name, params });
    return reply.code(202).send(instance);
  });

  app.get<{ Params: Static<typeof InstanceParams>; Querystring: Static<typeof ProjectQuery> }>('/api/applications/:name', {
    schema: { tags: ['applications'], summary: 'One instance', params: InstanceParams, querystring: ProjectQuery, response: { 200: Open('The instance'), ...errorResponses } },
  }, async (request) => apps.get(request.query.project ?? DEFAULT_PROJECT, request.params.name));

  app.get<{ Params: Static<typeof InstanceParams>; Querystring: Static<typeof LogQuery> }>('/api/applications/:name/logs', {
    schema: { tags: ['applications'], summary: "The last lines of an instance's output", params: InstanceParams, querystring: LogQuery },
  }, async (request, reply) => {
    const text = await apps.logs(request.query.project ?? DEFAULT_PROJECT, request.params.name, request.query.lines ?? 200);
    return reply.type('text/plain; charset=utf-8').send(text ? `${text}\n` : '');
  });

  app.post<{ Params: Static<typeof InstanceParams>; Querystring: Static<typeof ProjectQuery> }>('/api/applications/:name/complete', {
    schema: { tags: ['applications'], summary: 'Mark an instance launched by a workflow task (launch-app) complete: the task ends and the run goes on', params: InstanceParams, querystring: ProjectQuery, response: { 200: Open('The instance'), ...errorResponses } },
  }, async (request) => apps.complete(request.query.project ?? DEFAULT_PROJECT, request.params.name));

  app.delete<{ Params: Static<typeof InstanceParams>; Querystring: Static<typeof ProjectQuery> }>('/api/applications/:name', {
    schema: { tags: ['applications'], summary: 'Stop an instance (it stays listed, stopped, until launched again)', params: InstanceParams, querystring: ProjectQuery, response: { 200: Open('The instance'), ...errorResponses } },
  }, async (request) => apps.stop(request.query.project ?? DEFAULT_PROJECT, request.params.name));
}

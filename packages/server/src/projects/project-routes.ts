import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses, iso, OrderParam, PageParams, pageOf, parseSort, sortBy, SortParam } from '../http/common.schema.ts';
import { PROJECT_NAME_PATTERN, type Project, type ProjectStore } from './project-store.ts';

const ProjectJson = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Project' },
);

const CreateProject = Type.Object(
  {
    name: Type.String({ pattern: PROJECT_NAME_PATTERN, description: '1-63 lower-case letters, digits and "-"' }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);

export function projectJson(p: Project): Static<typeof ProjectJson> {
  return { id: p.id, name: p.name, description: p.description, created_at: iso(p.created_at)! };
}

const PROJECT_SORTS = ['name', 'created_at'] as const;
const ListQuery = Type.Object({ sort: SortParam(PROJECT_SORTS, 'name'), order: OrderParam, ...PageParams(1000, 1000) });

/** The projects domain: every entity that holds data belongs to one. */
export async function projectRoutes(app: FastifyInstance, opts: { projects: ProjectStore }): Promise<void> {
  app.addSchema(ProjectJson);
  app.get<{ Querystring: Static<typeof ListQuery> }>('/api/projects', {
    schema: {
      tags: ['projects'],
      summary: 'List projects',
      querystring: ListQuery,
      response: { 200: Type.Object({ items: Type.Array(Type.Ref(ProjectJson)), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() }), ...errorResponses },
    },
  }, async (request) => {
    const q = request.query;
    const sort = parseSort<(typeof PROJECT_SORTS)[number]>(q.sort, q.order, 'name');
    const all = sortBy((await opts.projects.list()).map(projectJson), (p) => p[sort.field], sort.order);
    return pageOf(all, q.limit ?? 1000, q.offset ?? 0);
  });

  app.post<{ Body: Static<typeof CreateProject> }>('/api/projects', {
    schema: { tags: ['projects'], summary: 'Create a project', body: CreateProject, response: { 201: Type.Ref(ProjectJson), ...errorResponses } },
  }, async (request, reply) => {
    const p = await opts.projects.create(request.body);
    return reply.status(201).send(projectJson(p));
  });

  app.get<{ Params: { name: string } }>('/api/projects/:name', {
    schema: { tags: ['projects'], summary: 'Get a project', params: Type.Object({ name: Type.String() }), response: { 200: Type.Ref(ProjectJson), ...errorResponses } },
  }, async (request) => projectJson(await opts.projects.require(request.params.name)));
}

import { Type, type Static } from '@sinclair/typebox';
import { DateTime, errors, Nullable, Obj, OrderParam, PageOf, PageParams, SortParam } from './common.ts';
import { ADMIN, defineRoute, SCIENTIST, SIGNED_IN } from './route.ts';

/** 1-63 lower-case letters, digits and "-", starting and ending with a letter or digit. */
export const PROJECT_NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';

export const Project = Obj(
  {
    id: Type.String(),
    name: Type.String(),
    description: Nullable(Type.String()),
    created_at: DateTime(),
  },
  { $id: 'Project', description: 'A project: the tenant that owns data, datasets, runs, application instances and result buckets.' },
);
export type Project = Static<typeof Project>;

export const CreateProject = Type.Object(
  {
    name: Type.String({ pattern: PROJECT_NAME_PATTERN, description: '1-63 lower-case letters, digits and "-"' }),
    description: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);
export type CreateProject = Static<typeof CreateProject>;

export const PROJECT_SORTS = ['name', 'created_at'] as const;

const tags = ['projects'];

/** The projects domain's routes. */
export const projectRoutes = {
  list: defineRoute({
    method: 'GET',
    url: '/api/projects',
    operationId: 'listProjects',
    tags,
    summary: 'List projects',
    project: { in: 'none' },
    access: SIGNED_IN,
    querystring: Type.Object({ sort: SortParam(PROJECT_SORTS, 'name'), order: OrderParam, ...PageParams(1000, 1000) }),
    response: { 200: PageOf(Project), ...errors(400, 500) },
  }),
  create: defineRoute({
    method: 'POST',
    url: '/api/projects',
    operationId: 'createProject',
    tags,
    summary: 'Create a project',
    project: { in: 'none' },
    access: ADMIN,
    body: CreateProject,
    response: { 201: Project, ...errors(400, 409, 413, 415, 500) },
  }),
  get: defineRoute({
    method: 'GET',
    url: '/api/projects/:name',
    operationId: 'getProject',
    tags,
    summary: 'Get a project',
    project: { in: 'path', name: 'name' },
    access: SCIENTIST,
    params: Type.Object({ name: Type.String() }),
    response: { 200: Project, ...errors(400, 404, 500) },
  }),
} as const;

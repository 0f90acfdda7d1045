import { Type, type Static } from '@sinclair/typebox';
import { AnyObject, DateTime, errors, Nullable, Obj, OrderParam, PageOf, PageParams, SortParam } from './common.ts';
import { defineRoute, Media, SCIENTIST } from './route.ts';

/** The states of an application instance (docs/reference/http-api.md, "States"). */
export const APP_STATES = ['starting', 'running', 'failed', 'stopped'] as const;

export const AppInstanceTask = Obj(
  {
    run: Type.String({ description: 'The run of the `launch-app` task.' }),
    task: Type.String({ description: 'The task id.' }),
    completed_at: Nullable(DateTime('When a person marked it complete; `null` until then.')),
  },
  { description: 'The workflow task that launched the instance and waits for a person to mark it complete.' },
);

export const AppInstance = Obj(
  {
    id: Type.String({ description: '`a-` and 12 hex digits; its log is `<home>/apps/<id>/app.log`.' }),
    name: Type.String({ description: 'Unique in its project; the last part of its URL.' }),
    project: Type.String({ description: "The project's name." }),
    extension: Type.String({ description: 'The application extension it was launched from.' }),
    version: Type.String({ description: "The extension's version it was launched from." }),
    state: Type.Union(APP_STATES.map((s) => Type.Literal(s))),
    reason: Nullable(Type.String({ description: 'When `failed`, why (with the last lines of its log once it ran); when running again after a restart, `started again after a server restart`.' })),
    runner: Type.String({ description: '`process` (a local process) or `docker` (a container).' }),
    params: AnyObject('The parameter values it runs with.'),
    url: Type.String({ description: "Where it is served: `/applications/project/<project>/release/<name>/` on the instance's own host (`http://<name>--<project>.localhost:<TESSERA_APPS_PORT>` by default, or after TESSERA_APPS_PUBLIC_URL; an absolute URL, with access control on) or, with TESSERA_APPS_PORT=same, a path on the platform's port. A browser opens it best by its path on the platform's port, which signs it in to the instance's host." }),
    created_at: DateTime('When it was first launched.'),
    started_at: Nullable(DateTime('When it last became healthy; `null` before.')),
    task: Nullable(AppInstanceTask),
  },
  {
    $id: 'AppInstance',
    description: 'An instance of an application extension, in a project, served on a subpath of the platform.',
    examples: [
      {
        id: 'a-fee2382133fe',
        name: 'ada',
        project: 'admin',
        extension: 'hello-world-app',
        version: '0.1.0',
        state: 'running',
        reason: null,
        runner: 'process',
        params: { display_name: 'Ada' },
        url: '/applications/project/admin/release/ada/',
        created_at: '2026-12-02T09:01:40.017Z',
        started_at: '2026-12-02T09:01:40.114Z',
        task: null,
      },
    ],
  },
);
export type AppInstance = Static<typeof AppInstance>;

export const LaunchApp = Type.Object(
  {
    extension: Type.String({ minLength: 1, description: 'An installed application extension, e.g. "hello-world-app".' }),
    project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
    name: Type.Optional(Type.String({ description: 'Instance name (multi-instance applications only; default <extension>-<n>).' })),
    params: Type.Optional(Type.Object({}, { additionalProperties: true, description: "Values of the extension's parameters for this instance." })),
  },
  { $id: 'LaunchApp', additionalProperties: false },
);
export type LaunchApp = Static<typeof LaunchApp>;

/** `sort` fields of GET /api/applications; the default is by project, then name. */
export const APP_SORTS = ['name', 'project', 'extension', 'state', 'created_at', 'started_at'] as const;

const InstanceParams = Type.Object({ name: Type.String({ minLength: 1, description: 'The instance name.' }) });
const InstanceQuery = Type.Object({ project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })) });

const tags = ['applications'];
/** Every route but the list names its project with `?project=` (default `admin`). */
const project = { in: 'query', name: 'project' } as const;

/** The applications domain's routes: launch, list, read logs of, complete and stop application instances. */
export const applicationRoutes = {
  list: defineRoute({
    method: 'GET',
    url: '/api/applications',
    operationId: 'listApplications',
    tags,
    summary: 'Application instances with their state (starting, running, failed with the reason, stopped) and URL',
    description: "Without `project`, the instances of every project the caller is a member of.",
    project: { ...project, absent: 'all' },
    access: SCIENTIST,
    querystring: Type.Object({
      project: Type.Optional(Type.String({ description: "Only this project's instances (default: every project's)." })),
      state: Type.Optional(Type.String({ description: `Comma-separated: ${APP_STATES.join(', ')}.` })),
      extension: Type.Optional(Type.String()),
      sort: SortParam(APP_SORTS, 'project'),
      order: OrderParam,
      ...PageParams(1000, 1000),
    }),
    response: { 200: PageOf(AppInstance), ...errors(400, 500) },
  }),
  launch: defineRoute({
    method: 'POST',
    url: '/api/applications',
    operationId: 'launchApplication',
    tags,
    summary: 'Launch an instance of an installed application (202: starting; it is served at its url once running)',
    description:
      'A stopped or failed instance is launched again under its name, with the same `id` and log file. 404: the application is not installed or the project does not exist; ' +
      '409: an instance of that name runs or is starting; 503: the application runs only in a container and the server has no Docker engine (TESSERA_DOCKER), ' +
      'or it runs as a local process and the server has no sandbox for it while access control is on (TESSERA_SANDBOX).',
    project: { in: 'body', name: 'project' },
    access: SCIENTIST,
    body: LaunchApp,
    response: { 202: AppInstance, ...errors(400, 404, 409, 413, 415, 500, 503) },
  }),
  get: defineRoute({
    method: 'GET',
    url: '/api/applications/:name',
    operationId: 'getApplication',
    tags,
    summary: 'One instance',
    project,
    access: SCIENTIST,
    params: InstanceParams,
    querystring: InstanceQuery,
    response: { 200: AppInstance, ...errors(400, 404, 500) },
  }),
  logs: defineRoute({
    method: 'GET',
    url: '/api/applications/:name/logs',
    operationId: 'getApplicationLogs',
    tags,
    summary: "The last lines of an instance's output",
    description: 'Taken from the last 64 KB of its log; empty when it wrote nothing yet.',
    project,
    access: SCIENTIST,
    params: InstanceParams,
    querystring: Type.Object({
      project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
      lines: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: 200 })),
    }),
    response: { 200: Media(['text/plain'], 'The last `lines` lines, each ending with a newline.'), ...errors(400, 404, 500) },
  }),
  complete: defineRoute({
    method: 'POST',
    url: '/api/applications/:name/complete',
    operationId: 'completeApplication',
    tags,
    summary: 'Mark an instance launched by a workflow task (launch-app) complete: the task ends and the run goes on',
    description: '409 when no workflow launched it.',
    project,
    access: SCIENTIST,
    params: InstanceParams,
    querystring: InstanceQuery,
    response: { 200: AppInstance, ...errors(400, 404, 409, 413, 415, 500) },
  }),
  stop: defineRoute({
    method: 'DELETE',
    url: '/api/applications/:name',
    operationId: 'stopApplication',
    tags,
    summary: 'Stop an instance (it stays listed, stopped, until launched again)',
    project,
    access: SCIENTIST,
    params: InstanceParams,
    querystring: InstanceQuery,
    response: { 200: AppInstance, ...errors(400, 404, 413, 415, 500) },
  }),
} as const;

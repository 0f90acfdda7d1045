import { Type, type Static } from '@sinclair/typebox';
import { AnyObject, DateTime, errors, Nullable, Obj } from './common.ts';
import { defineRoute, Media, PUBLIC, SCIENTIST, SIGNED_IN } from './route.ts';

export const RunnerReport = Obj({ name: Type.String({ description: 'process, docker or builtin' }), detail: Type.String() });

export const Health = Obj(
  {
    status: Type.Literal('ok'),
    version: Type.String(),
    home: Type.String({ description: 'TESSERA_HOME: where the server keeps its database, store and workflow dirs.' }),
    runners: Type.Array(RunnerReport),
    runner_notes: Type.Array(Type.String(), { description: 'Why an expected runner is missing (e.g. no Docker engine), and whether local processes run without a sandbox (or are refused for want of one).' }),
    docker_socket: Nullable(Type.String()),
    workflows: Type.Integer({ description: 'How many workflows are loaded.' }),
    dicom: Obj({
      port: Nullable(Type.Integer({ description: 'The C-STORE port, null when DICOM_PORT=off or before it listens.' })),
      ae_title: Type.String(),
      fsync: Type.Boolean(),
      duplicates: Type.String(),
      series_quiet_seconds: Type.Number(),
    }),
    scheduler: Obj({
      running: Type.Integer({ description: 'Tasks running now.' }),
      ramMb: Type.Number({ description: 'RAM (MB) the running tasks requested.' }),
      gpuMemMb: Type.Number({ description: 'GPU memory (MB) the running tasks requested.' }),
      queued: Type.Integer({ description: 'Tasks waiting for a slot in the pools.' }),
      activeRuns: Type.Integer(),
      limits: Obj({ parallelism: Type.Integer(), ramMb: Type.Number(), gpuMemMb: Type.Number() }),
    }),
  },
  { $id: 'Health' },
);
export type Health = Static<typeof Health>;

const Folder = Obj({ path: Type.String(), bytes: Type.Integer(), files: Type.Integer() });

export const SystemReport = Obj(
  {
    version: Obj({ tessera: Type.String(), node: Type.String(), sqlite: Type.String(), platform: Type.String(), arch: Type.String(), os_release: Type.String() }),
    started_at: DateTime(),
    uptime_s: Type.Number(),
    home: Type.String(),
    runners: Type.Array(RunnerReport),
    runner_notes: Type.Array(Type.String()),
    components: Obj({
      process: Obj({ available: Type.Boolean() }),
      docker: Obj({ available: Type.Boolean(), version: Nullable(Type.String()), socket: Nullable(Type.String()), reason: Nullable(Type.String()) }),
      kubernetes: Obj({ configured: Type.Boolean(), reason: Type.String() }),
      dimse: Obj({ enabled: Type.Boolean(), ae_title: Type.String(), host: Type.String(), port: Nullable(Type.Integer()) }),
      dicomweb: Obj({ path: Type.String(), url: Type.String(), project_path: Type.String() }),
      tools: Type.Array(Obj({ name: Type.String(), found: Type.Boolean(), path: Nullable(Type.String()), used_for: Type.String() })),
    }),
    disk: Obj({
      filesystem: Obj({ path: Type.String(), total_bytes: Type.Integer(), free_bytes: Type.Integer(), available_bytes: Type.Integer() }),
      database: Obj({ path: Type.String(), bytes: Type.Integer() }),
      dicom: Obj({ path: Type.String(), bytes: Type.Integer(), series: Type.Integer(), instances: Type.Integer(), source: Type.Literal('index') }),
      folders: Nullable(Type.Record(Type.String(), Folder)),
      computed_at: Nullable(DateTime()),
      duration_ms: Nullable(Type.Number()),
      computing: Type.Boolean(),
    }),
  },
  { $id: 'SystemReport' },
);
export type SystemReport = Static<typeof SystemReport>;

/** The event types of GET /api/events. */
export const EVENT_TYPES = ['run', 'task', 'series', 'dataset', 'extension', 'application', 'import'] as const;

const tags = ['platform'];

/** The platform's own routes: health, what the server found, the event stream, the OpenAPI document. */
export const platformRoutes = {
  health: defineRoute({
    method: 'GET',
    url: '/api/health',
    operationId: 'getHealth',
    tags,
    summary: 'Readiness and what the server runs with',
    project: { in: 'none' },
    access: PUBLIC,
    response: { 200: Health, ...errors(500) },
  }),
  system: defineRoute({
    method: 'GET',
    url: '/api/system',
    operationId: 'getSystem',
    tags,
    summary: 'What the server found (runners, Docker, DICOM listener, DICOMweb, tools), disk use, versions and uptime',
    description:
      'Fast: folder sizes come from a walk in the background, at most once a minute (`disk.computed_at`; `null` until the first walk has ended, ' +
      "or pass `wait=true`); the DICOM store's size comes from its index, never from a walk.",
    project: { in: 'none' },
    access: SIGNED_IN,
    querystring: Type.Object({
      wait: Type.Optional(Type.Boolean({ description: 'Wait for the folder sizes to be computed when none are there yet (or a walk is going).' })),
    }),
    response: { 200: SystemReport, ...errors(400, 500) },
  }),
  events: defineRoute({
    method: 'GET',
    url: '/api/events',
    operationId: 'streamEvents',
    tags,
    summary: 'Server-sent events (text/event-stream) of state changes: runs, tasks, series, datasets, extensions, applications, imports',
    description:
      'Each event is `id: <seq>`, `event: <type>`, `data: <json>` with `type`, `project` (where it applies), the id or name of the entity and its `state`. ' +
      'The first event is `ready` (the subscription is active). A comment line `: heartbeat` comes every 15 s. Events are hints: fetch the entity again. ' +
      'Nothing is replayed after a reconnect (Last-Event-ID is not used); a client that does not read is disconnected.',
    project: { in: 'query', name: 'project', absent: 'all' },
    access: SCIENTIST,
    querystring: Type.Object({
      project: Type.Optional(Type.String({ description: 'Only events of this project, and those that belong to no project (extensions).' })),
      types: Type.Optional(Type.String({ description: `Comma-separated event types to receive (default all): ${EVENT_TYPES.join(', ')}.` })),
    }),
    response: { 200: Media(['text/event-stream'], 'The event stream.'), ...errors(400, 404, 500) },
  }),
  openapi: defineRoute({
    method: 'GET',
    url: '/api/openapi.json',
    operationId: 'getOpenApi',
    tags,
    summary: 'This API as an OpenAPI 3.1 document',
    project: { in: 'none' },
    access: PUBLIC,
    response: { 200: AnyObject('An OpenAPI 3.1 document.'), ...errors(500) },
  }),
} as const;

import { Type, type Static } from '@sinclair/typebox';
import { DagSpecSchema, RUN_STATES, TASK_STATES, TRIGGER_RULES, type DagSpec as ModelDagSpec } from '@tessera/model';
import { AnyObject, DateTime, errors, Nullable, Obj, OrderParam, PageOf, PageParams, Paging, ProjectQuery, SortParam } from './common.ts';
import { ADMIN, defineRoute, Media, PROJECT_ROLES, SCIENTIST, SIGNED_IN } from './route.ts';

/** A string that is one of `values`, as JSON Schema `enum`. */
function OneOf<const T extends readonly string[]>(values: T, description?: string) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...(description ? { description } : {}) });
}

/**
 * The DAG spec a run started with: @tessera/model's `DagSpecSchema` (published at
 * GET /api/schemas/dag-spec.json), named `DagSpec` in this document.
 */
export const DagSpec = Type.Unsafe<ModelDagSpec>({
  ...(JSON.parse(JSON.stringify(DagSpecSchema)) as object),
  $id: 'DagSpec',
  description: 'A DAG spec: the JSON document the SDK compiles a workflow to (see GET /api/schemas/dag-spec.json).',
});
export type DagSpec = ModelDagSpec;

/**
 * The spec a run started with, as it was stored then. Declared as an open object on
 * purpose: a spec written by an older Tessera may lack a field the schema has since
 * made required, and such a run must still be shown (the serializer would refuse it).
 */
const StoredDagSpec = Type.Unsafe<ModelDagSpec>({
  type: 'object',
  additionalProperties: true,
  description: 'The DAG spec the run started with (its extension\'s version then); its schema: GET /api/schemas/dag-spec.json.',
});

/** How a task of a workflow runs: by a built-in operator, in a container, as a local process, or either of the last two. */
export const RUNS_AS = ['builtin', 'container or process', 'container', 'process'] as const;

export const WorkflowTask = Obj(
  {
    id: Type.String(),
    title: Type.String({ description: 'The task id when the spec gives no title.' }),
    operator: Type.String(),
    upstream: Type.Array(Type.String(), { description: 'Ids of the tasks it waits for.' }),
    trigger_rule: OneOf(TRIGGER_RULES),
    runs_as: OneOf(RUNS_AS, 'Where it can run: `container or process` takes whichever runner the server has.'),
  },
  { $id: 'WorkflowTask', description: "A task of a workflow's DAG." },
);
export type WorkflowTask = Static<typeof WorkflowTask>;

export const Workflow = Obj(
  {
    id: Type.String({ examples: ['hello-world'] }),
    title: Type.String({ description: 'The id when the spec gives no title.' }),
    description: Type.String({ description: 'Empty when the spec gives none.' }),
    extension: Obj({ name: Type.String(), version: Type.String() }, { description: 'The extension that provides it.' }),
    workflow_form: AnyObject('The JSON Schema of its parameters (`conf.workflow_form` of POST /api/jobs).'),
    data_form: AnyObject('The JSON Schema of the data it takes (`conf.data_form` of POST /api/jobs).'),
    task_form: Type.Optional(AnyObject('The JSON Schema of the settings of its Task API tasks, one object per task id (`conf.task_form` of POST /api/jobs).')),
    tasks: Type.Array(WorkflowTask),
  },
  { $id: 'Workflow', description: 'A workflow of an installed or linked extension, with its forms and tasks.' },
);
export type Workflow = Static<typeof Workflow>;

export const WorkflowProblem = Obj(
  {
    dir: Type.String({ description: "The extension's folder." }),
    message: Type.String({ description: 'Why it was not loaded.' }),
  },
  { $id: 'WorkflowProblem', description: 'An extension that failed to load: its workflows are missing.' },
);
export type WorkflowProblem = Static<typeof WorkflowProblem>;

export const WorkflowReload = Obj(
  {
    extensions: Type.Integer({ description: 'How many extensions are loaded now (installed and linked).' }),
    workflows: Type.Integer({ description: 'How many workflows are loaded now.' }),
    problems: Type.Array(WorkflowProblem),
  },
  { $id: 'WorkflowReload', description: 'What a reload of the extension folders found.' },
);
export type WorkflowReload = Static<typeof WorkflowReload>;

export const Progress = Obj(
  {
    total: Type.Integer({ description: 'Tasks of the run.' }),
    done: Type.Integer({ description: 'Tasks that ended (success, failed, upstream_failed, skipped, canceled).' }),
    counts: Type.Record(Type.String(), Type.Integer(), { description: 'Tasks per state; states without tasks are left out.' }),
  },
  { $id: 'Progress', description: "A run's tasks, counted by state." },
);
export type Progress = Static<typeof Progress>;

/** Who started a job, or a run's latest attempt: the rights its tasks act with. */
const starterProperties = {
  started_by: Nullable(
    Type.String({
      description:
        'The name of the user who started it (for a run: who triggered its job, or retried it last); its tasks act with their rights in the project. ' +
        '`null`: no user did (an arrival trigger): its tasks act as a scientist of the project. `local` with access control off.',
    }),
  ),
  started_role: Nullable(
    Type.Unsafe<(typeof PROJECT_ROLES)[number]>({
      type: 'string',
      enum: [...PROJECT_ROLES],
      description: "Their role in the project when they started it: the most its tasks may do there (their token's role). `null` with `started_by`.",
    }),
  ),
};

const runProperties = {
  id: Type.String({ examples: ['r-mwucl8qz-0003a1f2'] }),
  job_id: Type.String(),
  project: Type.String({ description: 'Project name.' }),
  workflow: Type.String({ description: 'Workflow id.' }),
  state: OneOf(RUN_STATES),
  attempt: Type.Integer({ description: '1, then one more at each retry.' }),
  reason: Nullable(Type.String({ description: 'Why it failed or was canceled.' })),
  created_at: DateTime(),
  started_at: Nullable(DateTime()),
  ended_at: Nullable(DateTime()),
  workflow_dir: Nullable(Type.String({ description: 'Its folder on the server; null once the retention policy removed it.' })),
  workflow_dir_removed_at: Nullable(DateTime('When the retention policy removed its workflow dir.')),
  progress: Progress,
  series_count: Type.Integer({ description: 'How many series it works on (`data_form.identifiers`).' }),
  series_uid: Nullable(Type.String({ description: 'The SeriesInstanceUID when it works on one series (a run of a `single_execution` job).' })),
  ...starterProperties,
};

export const Run = Obj(runProperties, { $id: 'Run', description: 'A run of a workflow, as lists show it.' });
export type Run = Static<typeof Run>;

export const Task = Obj(
  {
    id: Type.String({ description: 'The task id in the DAG spec.' }),
    state: OneOf(TASK_STATES),
    try_number: Type.Integer({ description: 'Tries in this attempt; 0 before its first start.' }),
    restarts: Type.Integer({
      description: 'Tries of this attempt that ran again because the server stopped while the try before ran (crash, kill -9, shutdown); they do not use up a retry.',
    }),
    rerun_reason: Nullable(
      Type.String({ description: 'Why its latest such try runs again, e.g. "the server stopped while try 1 ran (it was killed or crashed) and the end of that try is not known; try 2 runs the task again and does not use up a retry"; null once a retry follows.' }),
    ),
    attempt: Type.Integer({ description: 'The run attempt it last ran in.' }),
    runner: Nullable(Type.String({ description: 'process, docker or builtin; null before it ran.' })),
    exit_code: Nullable(Type.Integer()),
    reason: Nullable(Type.String({ description: 'Why it failed, was skipped or canceled.' })),
    oom_killed: Type.Boolean({ description: 'Its last try was killed for using more memory than it asked for.' }),
    queued_at: Nullable(DateTime()),
    started_at: Nullable(DateTime()),
    ended_at: Nullable(DateTime()),
    next_try_at: Nullable(DateTime('When it is retried (state up_for_retry).')),
    log_url: Nullable(Type.String({ description: 'Its log (GET /api/runs/{id}/tasks/{task}/log); null before its first try.' })),
    upstream: Type.Array(Type.String(), { description: 'Ids of the tasks it waits for.' }),
  },
  { $id: 'Task', description: 'A task of a run.' },
);
export type Task = Static<typeof Task>;

export const RunDetail = Obj(
  {
    ...runProperties,
    conf: AnyObject('Its configuration (conf/conf.json of the workflow dir): `workflow_form`, `data_form` (with `identifiers`), `project_form`.'),
    spec: StoredDagSpec,
    extension_dir: Nullable(Type.String({ description: "The folder of its extension's files, at the version it started with." })),
    tasks: Type.Array(Task, { description: 'In DAG spec order.' }),
  },
  { $id: 'RunDetail', description: 'One run with its configuration, the DAG spec it started with (even after its extension was upgraded) and its tasks.' },
);
export type RunDetail = Static<typeof RunDetail>;

/** A job's state, from its runs': running while one is queued or running, else failed, canceled or success, in that order. */
export const JOB_STATES = ['running', 'failed', 'canceled', 'success'] as const;

export const Job = Obj(
  {
    id: Type.String({ examples: ['j-mwucl8qz-0000b3c4'] }),
    project: Type.String({ description: 'Project name.' }),
    workflow: Type.String({ description: 'Workflow id.' }),
    state: OneOf(JOB_STATES, 'From its runs: running while one is queued or running; else failed, canceled or success, the first that one of them has.'),
    created_at: DateTime(),
    conf: AnyObject('The forms it was triggered with, validated: `workflow_form`, `data_form`, `task_form` (if any).'),
    ...starterProperties,
    runs: Type.Array(Run, { description: 'Oldest first.' }),
  },
  { $id: 'Job', description: 'A trigger of a workflow: one run, or one run per series with `single_execution`.' },
);
export type Job = Static<typeof Job>;

export const TriggerJob = Type.Object(
  {
    workflow: Type.String({ minLength: 1, description: 'Workflow id, e.g. "hello-world".' }),
    project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
    conf: Type.Optional(
      Type.Object(
        {
          workflow_form: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Parameters; `single_execution: true` fans out one run per series.' })),
          data_form: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Which data: `dataset_name`, `identifiers` (SeriesInstanceUIDs), `dataset_limit`.' })),
          task_form: Type.Optional(
            Type.Object({}, {
              additionalProperties: true,
              description: 'Settings of Task API tasks (the workflow\'s `task_form` schema): `<task id>: {VAR: value}` or Kaapana\'s `<task id>: {env: [{name, value}]}`.',
            }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  {
    $id: 'TriggerJob',
    additionalProperties: false,
    description: 'What to run, where and with which forms.',
    examples: [{ workflow: 'hello-world', project: 'admin', conf: { workflow_form: { message: 'Guten Tag' }, data_form: { dataset_name: 'lung-ct' } } }],
  },
);
export type TriggerJob = Static<typeof TriggerJob>;

/** `sort` fields of GET /api/runs (`workflow` is the workflow id). */
export const RUN_SORTS = ['created_at', 'started_at', 'ended_at', 'state', 'workflow'] as const;
/** `sort` fields of GET /api/workflows. */
export const WORKFLOW_SORTS = ['id', 'title', 'extension'] as const;

const RunsQuery = Type.Intersect([
  Paging,
  ProjectQuery,
  Type.Object({
    sort: SortParam(RUN_SORTS, '-created_at'),
    order: OrderParam,
    state: Type.Optional(Type.String({ description: `Comma-separated run states: ${RUN_STATES.join(', ')}` })),
    workflow: Type.Optional(Type.String()),
    job: Type.Optional(Type.String()),
  }),
]);

const JobsQuery = Type.Intersect([Paging, ProjectQuery, Type.Object({ sort: SortParam(['created_at'], '-created_at'), order: OrderParam })]);

const WorkflowsQuery = Type.Object({
  q: Type.Optional(Type.String({ description: 'Text in the id, title or description, any case.' })),
  extension: Type.Optional(Type.String({ description: 'Only the workflows of this extension.' })),
  sort: SortParam(WORKFLOW_SORTS, 'id'),
  order: OrderParam,
  ...PageParams(1000, 1000),
});

const WorkflowParams = Type.Object({ id: Type.String({ description: 'Workflow id.' }) });
const JobParams = Type.Object({ id: Type.String({ description: 'Job id.' }) });
const RunParams = Type.Object({ id: Type.String({ description: 'Run id.' }) });
const LogParams = Type.Object({ id: Type.String({ description: 'Run id.' }), task: Type.String({ description: 'Task id.' }) });
const LogQuery = Type.Object({
  follow: Type.Optional(Type.Boolean({ description: 'Keep the response open and stream new output until the task ends.' })),
  attempt: Type.Optional(Type.Integer({ minimum: 1 })),
  try: Type.Optional(Type.Integer({ minimum: 1 })),
});

const tags = ['workflows'];
const runScope = { in: 'resource', resource: 'run' } as const;
const jobScope = { in: 'resource', resource: 'job' } as const;

/** The workflows domain's routes: workflows, jobs, runs, tasks and their logs. */
export const workflowRoutes = {
  dagSpecSchema: defineRoute({
    method: 'GET',
    url: '/api/schemas/dag-spec.json',
    operationId: 'getDagSpecSchema',
    tags,
    summary: 'The JSON Schema of the DAG spec',
    project: { in: 'none' },
    access: SIGNED_IN,
    response: { 200: AnyObject('The JSON Schema of the DAG spec (docs/reference/dag-spec.schema.json).'), ...errors(500) },
  }),
  list: defineRoute({
    method: 'GET',
    url: '/api/workflows',
    operationId: 'listWorkflows',
    tags,
    summary: 'List workflows with their forms',
    project: { in: 'none' },
    access: SIGNED_IN,
    querystring: WorkflowsQuery,
    response: {
      200: Obj({ ...PageOf(Workflow).properties, problems: Type.Array(WorkflowProblem, { description: 'Extensions that failed to load.' }) }),
      ...errors(400, 500),
    },
  }),
  reload: defineRoute({
    method: 'POST',
    url: '/api/workflows/reload',
    operationId: 'reloadWorkflows',
    tags,
    summary: 'Load the extension folders again (new and changed workflows)',
    project: { in: 'none' },
    access: ADMIN,
    response: { 200: WorkflowReload, ...errors(400, 413, 415, 500) },
  }),
  get: defineRoute({
    method: 'GET',
    url: '/api/workflows/:id',
    operationId: 'getWorkflow',
    tags,
    summary: 'Get a workflow with its forms and tasks',
    project: { in: 'none' },
    access: SIGNED_IN,
    params: WorkflowParams,
    response: { 200: Workflow, ...errors(400, 404, 500) },
  }),
  trigger: defineRoute({
    method: 'POST',
    url: '/api/jobs',
    operationId: 'triggerJob',
    tags,
    summary: 'Trigger a workflow: creates a job with one run, or one run per series with single_execution',
    project: { in: 'body', name: 'project' },
    access: SCIENTIST,
    body: TriggerJob,
    response: { 201: Job, ...errors(400, 404, 413, 415, 500) },
  }),
  listJobs: defineRoute({
    method: 'GET',
    url: '/api/jobs',
    operationId: 'listJobs',
    tags,
    summary: 'List jobs, newest first',
    project: { in: 'query', name: 'project', absent: 'all' },
    access: SCIENTIST,
    querystring: JobsQuery,
    response: { 200: PageOf(Job), ...errors(400, 404, 500) },
  }),
  getJob: defineRoute({
    method: 'GET',
    url: '/api/jobs/:id',
    operationId: 'getJob',
    tags,
    summary: 'Get a job with its runs',
    project: jobScope,
    access: SCIENTIST,
    params: JobParams,
    response: { 200: Job, ...errors(400, 404, 500) },
  }),
  cancelJob: defineRoute({
    method: 'POST',
    url: '/api/jobs/:id/cancel',
    operationId: 'cancelJob',
    tags,
    summary: 'Cancel every run of a job',
    project: jobScope,
    access: SCIENTIST,
    params: JobParams,
    response: { 200: Job, ...errors(400, 404, 413, 415, 500) },
  }),
  listRuns: defineRoute({
    method: 'GET',
    url: '/api/runs',
    operationId: 'listRuns',
    tags,
    summary: 'List runs, newest first',
    description: 'A run not started (or not ended) has `null` in `started_at` (`ended_at`): first in ascending order, last in descending.',
    project: { in: 'query', name: 'project', absent: 'all' },
    access: SCIENTIST,
    querystring: RunsQuery,
    response: { 200: PageOf(Run), ...errors(400, 404, 500) },
  }),
  getRun: defineRoute({
    method: 'GET',
    url: '/api/runs/:id',
    operationId: 'getRun',
    tags,
    summary: 'Get a run with its tasks and their states',
    project: runScope,
    access: SCIENTIST,
    params: RunParams,
    response: { 200: RunDetail, ...errors(400, 404, 500) },
  }),
  cancelRun: defineRoute({
    method: 'POST',
    url: '/api/runs/:id/cancel',
    operationId: 'cancelRun',
    tags,
    summary: 'Cancel a run: running tasks are stopped, pending ones canceled',
    description: 'A run that already ended is answered as it is.',
    project: runScope,
    access: SCIENTIST,
    params: RunParams,
    response: { 200: Run, ...errors(400, 404, 413, 415, 500) },
  }),
  retryRun: defineRoute({
    method: 'POST',
    url: '/api/runs/:id/retry',
    operationId: 'retryRun',
    tags,
    summary: 'Retry a failed or canceled run: same id, failed tasks rerun, successful ones kept',
    description: 'A run that is not failed or canceled, still has tasks being stopped, or whose workflow dir was removed is a 409.',
    project: runScope,
    access: SCIENTIST,
    params: RunParams,
    response: { 200: Run, ...errors(400, 404, 409, 413, 415, 500) },
  }),
  taskLog: defineRoute({
    method: 'GET',
    url: '/api/runs/:id/tasks/:task/log',
    operationId: 'getTaskLog',
    tags,
    summary: "Read a task's log (stdout and stderr); the latest try unless attempt/try are given; follow=true streams it live",
    description: 'Following the latest try goes on across retries, with a `--- tessera: <task> try <n> (attempt <a>) ---` line between tries.',
    project: runScope,
    access: SCIENTIST,
    params: LogParams,
    querystring: LogQuery,
    response: { 200: Media(['text/plain'], "The task's log."), ...errors(400, 404, 500) },
  }),
} as const;

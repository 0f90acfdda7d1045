import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { RUN_SORT_FIELDS, type DagScheduler, type RunRow, type RunSortField } from '@tessera/engine';
import type { WorkflowRegistry } from '@tessera/extensions';
import { DagSpecSchema, RUN_STATES, TesseraError, type RunState } from '@tessera/model';
import { errorResponses, OrderParam, PageParams, Paging, pageOf, parseSort, ProjectQuery, sortBy, SortParam } from '../http/common.schema.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { followTaskLog } from './task-log.ts';
import { jobJson, runJson, workflowJson } from './workflow-presenter.ts';

export interface WorkflowRoutesOptions {
  scheduler: DagScheduler;
  registry: WorkflowRegistry;
  projects: ProjectStore;
}

const Open = (description: string) => Type.Object({}, { additionalProperties: true, description });

const TriggerBody = Type.Object(
  {
    workflow: Type.String({ minLength: 1, description: 'Workflow id, e.g. "hello-world".' }),
    project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
    conf: Type.Optional(
      Type.Object(
        {
          workflow_form: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Parameters; `single_execution: true` fans out one run per series.' })),
          data_form: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'Which data: `dataset_name`, `identifiers` (SeriesInstanceUIDs), `dataset_limit`.' })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** `sort` fields of GET /api/runs (`workflow` is the workflow id). */
const RUN_SORTS = ['created_at', 'started_at', 'ended_at', 'state', 'workflow'] as const;
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

/** `sort` fields of GET /api/workflows. */
const WORKFLOW_SORTS = ['id', 'title', 'extension'] as const;
const WorkflowsQuery = Type.Object({
  q: Type.Optional(Type.String({ description: 'Text in the id, title or description, any case.' })),
  extension: Type.Optional(Type.String({ description: 'Only the workflows of this extension.' })),
  sort: SortParam(WORKFLOW_SORTS, 'id'),
  order: OrderParam,
  ...PageParams(1000, 1000),
});

const IdParams = Type.Object({ id: Type.String() });
const LogParams = Type.Object({ id: Type.String(), task: Type.String() });
const LogQuery = Type.Object({
  follow: Type.Optional(Type.Boolean({ description: 'Keep the response open and stream new output until the task ends.' })),
  attempt: Type.Optional(Type.Integer({ minimum: 1 })),
  try: Type.Optional(Type.Integer({ minimum: 1 })),
});

/** The workflows domain: workflows, jobs, runs, tasks and their logs. */
export async function workflowRoutes(app: FastifyInstance, opts: WorkflowRoutesOptions): Promise<void> {
  const { scheduler, registry, projects } = opts;
  const store = scheduler.store;
  const projectNames = new Map<string, string>();
  const projectName = async (id: string): Promise<string> => {
    let name = projectNames.get(id);
    if (!name) {
      name = (await projects.findById(id))?.name ?? id;
      projectNames.set(id, name);
    }
    return name;
  };
  const presentRuns = async (rows: RunRow[]) => {
    const counts = await store.taskCounts(rows.map((r) => r.id));
    return Promise.all(rows.map(async (r) => runJson(r, await projectName(r.project_id), counts.get(r.id) ?? {})));
  };
  const presentJob = async (jobId: string) => {
    const job = await store.getJob(jobId);
    if (!job) throw new TesseraError('TESSERA_NOT_FOUND', `job "${jobId}" does not exist`);
    const { runs } = await store.listRuns({ jobId, limit: 100_000 });
    return jobJson(job, await projectName(job.project_id), await presentRuns(runs.reverse()));
  };
  const requireRun = async (id: string): Promise<RunRow> => {
    const run = await store.getRun(id);
    if (!run) throw new TesseraError('TESSERA_NOT_FOUND', `run "${id}" does not exist; list runs with \`tessera runs\``);
    return run;
  };

  app.get('/api/schemas/dag-spec.json', { schema: { tags: ['workflows'], summary: 'The JSON Schema of the DAG spec' } }, async () => DagSpecSchema);

  app.get<{ Querystring: Static<typeof WorkflowsQuery> }>('/api/workflows', {
    schema: {
      tags: ['workflows'],
      summary: 'List workflows with their forms',
      querystring: WorkflowsQuery,
      response: {
        200: Type.Object({ items: Type.Array(Open('A workflow')), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer(), problems: Type.Array(Open('An extension that failed to load')) }),
        ...errorResponses,
      },
    },
  }, async (request) => {
    const q = request.query;
    const text = q.q?.toLowerCase();
    const sort = parseSort<(typeof WORKFLOW_SORTS)[number]>(q.sort, q.order, 'id');
    const all = registry.list().map(workflowJson).filter((w) =>
      (q.extension === undefined || w.extension.name === q.extension) &&
      (!text || `${w.id} ${w.title} ${w.description}`.toLowerCase().includes(text)));
    const sorted = sortBy(all, (w) => (sort.field === 'extension' ? w.extension.name : sort.field === 'title' ? w.title : w.id), sort.order);
    return { ...pageOf(sorted, q.limit ?? 1000, q.offset ?? 0), problems: registry.problems() };
  });

  app.post('/api/workflows/reload', {
    schema: { tags: ['workflows'], summary: 'Load the extension folders again (new and changed workflows)', response: { 200: Open('Counts and problems') } },
  }, async () => registry.reload());

  app.get<{ Params: Static<typeof IdParams> }>('/api/workflows/:id', {
    schema: { tags: ['workflows'], summary: 'Get a workflow with its forms and tasks', params: IdParams, response: { 200: Open('A workflow'), ...errorResponses } },
  }, async (request) => workflowJson(registry.get(request.params.id)));

  app.post<{ Body: Static<typeof TriggerBody> }>('/api/jobs', {
    schema: {
      tags: ['workflows'],
      summary: 'Trigger a workflow: creates a job with one run, or one run per series with single_execution',
      body: TriggerBody,
      response: { 201: Open('The job with its runs'), ...errorResponses },
    },
  }, async (request, reply) => {
    const project = await projects.require(request.body.project ?? 'admin');
    const wf = registry.get(request.body.workflow);
    const { job } = await scheduler.trigger({
      project: { id: project.id, name: project.name },
      workflow: { spec: wf.spec, extensionDir: wf.extension.dir },
      conf: request.body.conf ?? {},
    });
    return reply.status(201).send(await presentJob(job.id));
  });

  app.get<{ Querystring: Static<typeof JobsQuery> }>('/api/jobs', {
    schema: { tags: ['workflows'], summary: 'List jobs, newest first', querystring: JobsQuery, response: { 200: Open('Page of jobs: items, total, limit, offset'), ...errorResponses } },
  }, async (request) => {
    const q = request.query;
    const project = q.project ? await projects.require(q.project) : undefined;
    const sort = parseSort(q.sort, q.order, '-created_at');
    const { jobs, total } = await store.listJobs({ projectId: project?.id, limit: q.limit, offset: q.offset, order: sort.order });
    return { items: await Promise.all(jobs.map((j) => presentJob(j.id))), total, limit: q.limit ?? 50, offset: q.offset ?? 0 };
  });

  app.get<{ Params: Static<typeof IdParams> }>('/api/jobs/:id', {
    schema: { tags: ['workflows'], summary: 'Get a job with its runs', params: IdParams, response: { 200: Open('A job'), ...errorResponses } },
  }, async (request) => presentJob(request.params.id));

  app.post<{ Params: Static<typeof IdParams> }>('/api/jobs/:id/cancel', {
    schema: { tags: ['workflows'], summary: 'Cancel every run of a job', params: IdParams, response: { 200: Open('The job'), ...errorResponses } },
  }, async (request) => {
    await scheduler.cancelJob(request.params.id);
    return presentJob(request.params.id);
  });

  app.get<{ Querystring: Static<typeof RunsQuery> }>('/api/runs', {
    schema: { tags: ['workflows'], summary: 'List runs, newest first', querystring: RunsQuery, response: { 200: Open('Page of runs'), ...errorResponses } },
  }, async (request) => {
    const q = request.query;
    const project = q.project ? await projects.require(q.project) : undefined;
    const states = q.state?.split(',').map((s) => s.trim()).filter(Boolean) as RunState[] | undefined;
    const bad = states?.filter((s) => !(RUN_STATES as readonly string[]).includes(s)) ?? [];
    if (bad.length > 0) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `unknown run state ${bad.join(', ')}; use ${RUN_STATES.join(', ')}`, {
        details: [{ where: 'querystring.state', message: `must be among ${RUN_STATES.join(', ')}` }],
      });
    }
    const sort = parseSort<(typeof RUN_SORTS)[number]>(q.sort, q.order, '-created_at');
    const field: RunSortField = sort.field === 'workflow' ? 'workflow_id' : sort.field;
    if (!RUN_SORT_FIELDS.includes(field)) throw new TesseraError('TESSERA_INVALID_REQUEST', `cannot sort runs by ${sort.field}`);
    const { runs, total } = await store.listRuns({ projectId: project?.id, states, workflowId: q.workflow, jobId: q.job, limit: q.limit, offset: q.offset, sort: { field, order: sort.order } });
    return { items: await presentRuns(runs), total, limit: q.limit ?? 50, offset: q.offset ?? 0 };
  });

  app.get<{ Params: Static<typeof IdParams> }>('/api/runs/:id', {
    schema: { tags: ['workflows'], summary: 'Get a run with its tasks and their states', params: IdParams, response: { 200: Open('A run'), ...errorResponses } },
  }, async (request) => {
    const run = await requireRun(request.params.id);
    const tasks = await store.getTasks(run.id);
    const counts: Record<string, number> = {};
    for (const t of tasks) counts[t.state] = (counts[t.state] ?? 0) + 1;
    return runJson(run, await projectName(run.project_id), counts, tasks);
  });

  app.post<{ Params: Static<typeof IdParams> }>('/api/runs/:id/cancel', {
    schema: { tags: ['workflows'], summary: 'Cancel a run: running tasks are stopped, pending ones canceled', params: IdParams, response: { 200: Open('The run'), ...errorResponses } },
  }, async (request) => {
    const run = await scheduler.cancelRun(request.params.id);
    return (await presentRuns([run]))[0];
  });

  app.post<{ Params: Static<typeof IdParams> }>('/api/runs/:id/retry', {
    schema: { tags: ['workflows'], summary: 'Retry a failed or canceled run: same id, failed tasks rerun, successful ones kept', params: IdParams, response: { 200: Open('The run'), ...errorResponses } },
  }, async (request) => {
    const run = await scheduler.retryRun(request.params.id);
    return (await presentRuns([run]))[0];
  });

  app.get<{ Params: Static<typeof LogParams>; Querystring: Static<typeof LogQuery> }>('/api/runs/:id/tasks/:task/log', {
    schema: {
      tags: ['workflows'],
      summary: "Read a task's log (stdout and stderr); the latest try unless attempt/try are given; follow=true streams it live",
      params: LogParams,
      querystring: LogQuery,
      produces: ['text/plain'],
    },
  }, async (request, reply) => {
    const run = await requireRun(request.params.id);
    const tasks = await store.getTasks(run.id);
    const task = tasks.find((t) => t.task_id === request.params.task);
    if (!task) {
      throw new TesseraError('TESSERA_NOT_FOUND', `run "${run.id}" has no task "${request.params.task}"; its tasks are ${tasks.map((t) => t.task_id).join(', ')}`);
    }
    const stream = await followTaskLog({
      scheduler,
      run,
      taskId: task.task_id,
      attempt: request.query.attempt,
      tryNumber: request.query.try,
      follow: request.query.follow ?? false,
      signal: abortOnClose(reply.raw),
    });
    return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(stream);
  });
}

/** Aborts when the response ends or the client goes away (the response's close, not the request's). */
function abortOnClose(res: NodeJS.EventEmitter): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => controller.abort());
  return controller.signal;
}

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RUN_SORT_FIELDS, type DagScheduler, type RunRow, type RunSortField, type Starter } from '@tessera/engine';
import type { WorkflowRegistry } from '@tessera/extension-packages';
import { DagSpecSchema, RUN_STATES, TesseraError, type RunState } from '@tessera/model';
import { workflowRoutes as routes, type RUN_SORTS, type WORKFLOW_SORTS } from '@tessera/api';
import { pageOf, parseSort, sortBy } from '../http/lists.ts';
import { serve } from '../http/serve-route.ts';
import { AccessControl, visibleIds } from '../auth/access-control.ts';
import { roleIn } from '../auth/principal.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { followTaskLog } from './task-log.ts';
import { jobJson, runDetailJson, runJson, workflowJson } from './workflow-presenter.ts';

export interface WorkflowRoutesOptions {
  scheduler: DagScheduler;
  registry: WorkflowRegistry;
  projects: ProjectStore;
}

/**
 * Who starts a job or retries a run: the caller, with their role in the project (a scoped
 * token's caller: at most its role). The run's tasks act with these rights.
 */
function starterOf(request: FastifyRequest, projectId: string): Starter {
  const principal = request.access.principal ?? AccessControl.LOCAL;
  return { userId: principal.user.id, name: principal.user.name, role: roleIn(principal, projectId) ?? 'scientist' };
}

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
  const presentRun = async (row: RunRow) => (await presentRuns([row]))[0]!;
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

  serve(app, routes.dagSpecSchema, async () => DagSpecSchema);

  serve(app, routes.list, async (request) => {
    const q = request.query;
    const text = q.q?.toLowerCase();
    const sort = parseSort<(typeof WORKFLOW_SORTS)[number]>(q.sort, q.order, 'id');
    const all = registry.list().map(workflowJson).filter((w) =>
      (q.extension === undefined || w.extension.name === q.extension) &&
      (!text || `${w.id} ${w.title} ${w.description}`.toLowerCase().includes(text)));
    const sorted = sortBy(all, (w) => (sort.field === 'extension' ? w.extension.name : sort.field === 'title' ? w.title : w.id), sort.order);
    return { ...pageOf(sorted, q.limit ?? 1000, q.offset ?? 0), problems: registry.problems() };
  });

  serve(app, routes.reload, async () => registry.reload());

  serve(app, routes.get, async (request) => workflowJson(registry.get(request.params.id)));

  serve(app, routes.trigger, async (request, reply) => {
    const project = await projects.require(request.body.project ?? 'admin');
    const wf = registry.get(request.body.workflow);
    const { job } = await scheduler.trigger({
      project: { id: project.id, name: project.name },
      workflow: { spec: wf.spec, extensionDir: wf.extension.dir },
      conf: request.body.conf ?? {},
      startedBy: starterOf(request, project.id),
    });
    return reply.status(201).send(await presentJob(job.id));
  });

  serve(app, routes.listJobs, async (request) => {
    const q = request.query;
    const project = q.project ? await projects.require(q.project) : undefined;
    const sort = parseSort(q.sort, q.order, '-created_at');
    const { jobs, total } = await store.listJobs({ projectId: project?.id, projectIds: visibleIds(request), limit: q.limit, offset: q.offset, order: sort.order });
    return { items: await Promise.all(jobs.map((j) => presentJob(j.id))), total, limit: q.limit ?? 50, offset: q.offset ?? 0 };
  });

  serve(app, routes.getJob, async (request) => presentJob(request.params.id));

  serve(app, routes.cancelJob, async (request) => {
    await scheduler.cancelJob(request.params.id);
    return presentJob(request.params.id);
  });

  serve(app, routes.listRuns, async (request) => {
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
    const { runs, total } = await store.listRuns({ projectId: project?.id, projectIds: visibleIds(request), states, workflowId: q.workflow, jobId: q.job, limit: q.limit, offset: q.offset, sort: { field, order: sort.order } });
    return { items: await presentRuns(runs), total, limit: q.limit ?? 50, offset: q.offset ?? 0 };
  });

  serve(app, routes.getRun, async (request) => {
    const run = await requireRun(request.params.id);
    return runDetailJson(run, await projectName(run.project_id), await store.getTasks(run.id));
  });

  serve(app, routes.cancelRun, async (request) => presentRun(await scheduler.cancelRun(request.params.id)));

  serve(app, routes.retryRun, async (request) => {
    const run = await requireRun(request.params.id);
    // The new attempt acts with the rights of whoever retries it.
    return presentRun(await scheduler.retryRun(run.id, starterOf(request, run.project_id)));
  });

  serve(app, routes.taskLog, async (request, reply) => {
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

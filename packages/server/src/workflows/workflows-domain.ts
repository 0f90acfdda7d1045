import { domainView, type Kysely } from '@tessera/db';
import { DagScheduler, removeExpiredWorkflowDirs, WorkflowStore, workflowMigrations, type DataResolverInput, type TaskCredentials, type WorkflowTables } from '@tessera/engine';
import type { WorkflowRegistry } from '@tessera/extension-packages';
import type { ServerConfig } from '../config.ts';
import type { Domain, DomainLog } from '../domain.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import type { TaskRunners } from './task-runners.ts';
import { workflowRoutes } from './workflow-routes.ts';

export interface WorkflowsDomain extends Domain {
  readonly scheduler: DagScheduler;
}

export interface WorkflowsDomainDeps {
  config: ServerConfig;
  db: Kysely<object>;
  projects: ProjectStore;
  registry: WorkflowRegistry;
  runners: TaskRunners;
  /** Turns a data_form into series UIDs (the DICOM domain knows the datasets). */
  resolveIdentifiers: (input: DataResolverInput) => Promise<string[]>;
  publicUrl: () => string;
  /** The scoped API token of each try (auth/scoped-credentials.ts). */
  credentials?: TaskCredentials;
  log: DomainLog;
}

/** Workflow dirs past their retention are removed this often. */
const RETENTION_SWEEP_MS = 60 * 60 * 1000;

/** The workflows domain: jobs, runs and tasks, the scheduler that runs them, and their workflow dirs' retention. */
export function createWorkflowsDomain(deps: WorkflowsDomainDeps): WorkflowsDomain {
  const { config, log } = deps;
  const scheduler = new DagScheduler({
    resolveIdentifiers: deps.resolveIdentifiers,
    store: new WorkflowStore(domainView<WorkflowTables>(deps.db)),
    home: config.home,
    runners: deps.runners.runners,
    limits: { parallelism: config.parallelism, ramMb: config.ramPoolMb, gpuMemMb: config.gpuPoolMb },
    // Read when a task starts: the URL is known only once the server listens.
    services: { get TESSERA_API_URL() { return deps.publicUrl(); } } as Record<string, string>,
    ...(deps.credentials ? { credentials: deps.credentials } : {}),
    log: (m) => log.error(m),
  });
  const retention = { days: config.retentionDays, failedDays: config.failedRetentionDays };
  const sweepDirs = (): void => {
    removeExpiredWorkflowDirs(scheduler.store, retention, Date.now(), (runId, err) =>
      log.warn(`could not remove the workflow dir of run ${runId} (retention): ${err.message}`),
    ).catch((err: Error) => log.error(`workflow dir retention failed: ${err.message}`));
  };
  let retentionTimer: NodeJS.Timeout | undefined;
  return {
    name: 'workflows',
    migrations: workflowMigrations,
    scheduler,
    start: async () => {
      const recovery = await scheduler.start();
      if (recovery.resumedRuns > 0 || recovery.swept > 0) {
        const { resumedRuns, reattached, rerun, swept } = recovery;
        log.info(
          `resumed ${resumedRuns} runs that were active when the server stopped: ${reattached} running tries re-attached or found ended meanwhile, ` +
            `${rerun} whose end is not known run again as a new try (with the reason in the task's rerun_reason), ${swept} leftover processes or containers stopped`,
        );
      }
      sweepDirs();
      retentionTimer = setInterval(sweepDirs, RETENTION_SWEEP_MS);
      retentionTimer.unref();
    },
    routes: (app) => workflowRoutes(app, { scheduler, registry: deps.registry, projects: deps.projects }),
    close: async () => {
      clearInterval(retentionTimer);
      await scheduler.close();
      for (const r of deps.runners.runners) await r.close();
    },
  };
}

import { join } from 'node:path';
import { allRoutes, API_TAGS, openApiDocument, platformRoutes } from '@tessera/api';
import type { Kysely } from '@tessera/db';
import type { DagScheduler } from '@tessera/engine';
import type { WorkflowRegistry } from '@tessera/extension-packages';
import { PLATFORM_VERSION } from '@tessera/model';
import type { ServerConfig } from '../config.ts';
import type { Domain } from '../domain.ts';
import { serve } from '../http/serve-route.ts';
import type { TaskRunners } from '../workflows/task-runners.ts';
import { DiskUsage } from './disk-usage.ts';
import { systemRoutes } from './system-routes.ts';

export interface PlatformDomainDeps {
  config: ServerConfig;
  db: Kysely<object>;
  runners: TaskRunners;
  registry: WorkflowRegistry;
  scheduler: DagScheduler;
  /** The DICOM receiver's port once it listens. */
  dicomPort: () => number | undefined;
  publicUrl: () => string;
  startedAt: number;
}

/** The platform's own routes: readiness, what the server found and its disk use, and this API as an OpenAPI document. */
export function createPlatformDomain(deps: PlatformDomainDeps): Domain {
  const { config, runners, registry, scheduler } = deps;
  const disk = new DiskUsage(
    Object.fromEntries(['buckets', 'workflows', 'logs', 'extensions', 'apps'].map((d) => [d === 'buckets' ? 'results' : d, join(config.home, d)])),
    config.diskUsageMaxAgeMs ?? 60_000,
  );
  const openapi = openApiDocument(allRoutes, {
    title: 'Tessera API',
    version: PLATFORM_VERSION,
    description: 'Workflows, runs, projects, DICOM data, extensions, applications. Errors are `{ error: { code, message, details } }`.',
    tags: API_TAGS,
  });
  return {
    name: 'platform',
    migrations: [],
    start: async () => undefined,
    routes: async (app) => {
      serve(app, platformRoutes.health, async () => ({
        status: 'ok' as const,
        version: PLATFORM_VERSION,
        home: config.home,
        runners: runners.reports,
        runner_notes: runners.notes,
        docker_socket: runners.dockerSocket ?? null,
        workflows: registry.list().length,
        dicom: { port: deps.dicomPort() ?? null, ae_title: config.dicomAeTitle, fsync: config.dicomFsync, duplicates: config.dicomDuplicates, series_quiet_seconds: config.seriesQuietSeconds },
        scheduler: { ...scheduler.usage(), limits: scheduler.limits },
      }));
      await systemRoutes(app, {
        config,
        db: deps.db,
        runners: runners.reports,
        runnerNotes: runners.notes,
        docker: runners.docker,
        dicomPort: deps.dicomPort,
        publicUrl: deps.publicUrl,
        startedAt: deps.startedAt,
        disk,
      });
      serve(app, platformRoutes.openapi, async () => openapi);
    },
    close: async () => undefined,
  };
}

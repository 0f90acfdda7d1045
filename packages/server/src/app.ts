import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { domainView, migrate, openDatabase, type Kysely } from '@tessera/db';
import { dicomMigrations } from '@tessera/dicom';
import { PLATFORM_VERSION } from '@tessera/model';
import {
  BuiltinRunner,
  CORE_BUILTINS,
  DagScheduler,
  DockerRunner,
  ProcessRunner,
  WorkflowStore,
  detectDocker,
  removeExpiredWorkflowDirs,
  workflowMigrations,
  type Runner,
  type WorkflowTables,
} from '@tessera/engine';
import { ImageTool, WorkflowRegistry } from '@tessera/extensions';
import { AppManager, DockerAppRunner, ProcessAppRunner, SubpathProxy, appMigrations, type AppTables } from '@tessera/apps';
import { createServer } from 'node:http';
import type { ServerConfig } from './config.ts';
import { allRoutes, API_TAGS, ErrorResponse, openApiDocument, platformRoutes } from '@tessera/api';
// The route options `tags` and `summary` of the routes not yet declared from the contract.
import type {} from '@fastify/swagger';
import { checkAnswersAgainstContracts } from './http/answer-check.ts';
import { serve } from './http/serve-route.ts';
import { installErrorHandler } from './http/error-handler.ts';
import { projectMigrations, ProjectStore, type ProjectTables } from './projects/project-store.ts';
import { projectRoutes } from './projects/project-routes.ts';
import { createDicomDomain, type DicomDomain } from './dicom/dicom-domain.ts';
import { startArrivalTriggers } from './arrival-triggers/arrival-triggers.ts';
import { workflowRoutes } from './workflows/workflow-routes.ts';
import { ExtensionManager, extensionMigrations, type ExtensionTables } from '@tessera/extensions';
import { extensionRoutes } from './extensions/extension-routes.ts';
import { applicationRoutes } from './applications/application-routes.ts';
import { launchAppOperator } from './platform-operators/launch-app-operator.ts';
import { EventBus } from './events/event-bus.ts';
import { eventRoutes } from './events/event-routes.ts';
import { projectNames, publishSeriesEvents, publishWorkflowEvents } from './events/domain-events.ts';
import { DiskUsage } from './system/disk-usage.ts';
import { systemRoutes, type DockerReport } from './system/system-routes.ts';
import { webUiRoutes } from './web-ui.ts';

export const VERSION = PLATFORM_VERSION;

/** What the server found to run tasks with, for the banner and /api/health. */
export interface RunnerReport {
  name: string;
  detail: string;
}

export interface Tessera {
  app: FastifyInstance;
  config: ServerConfig;
  scheduler: DagScheduler;
  registry: WorkflowRegistry;
  extensions: ExtensionManager;
  apps: AppManager;
  projects: ProjectStore;
  dicom: DicomDomain;
  /** State changes of every domain, for GET /api/events. */
  events: EventBus;
  /** The DICOM C-STORE port once listening (undefined when DICOM_PORT=off). */
  dicomPort: number | undefined;
  runners: RunnerReport[];
  /** Why an expected runner is missing (e.g. no Docker engine). */
  runnerNotes: string[];
  /** Listens on the configured host and port; returns the base URL. */
  listen: () => Promise<string>;
  close: () => Promise<void>;
}

/**
 * The composition root: opens the DB, runs every domain's migrations, finds the
 * runners, resumes the scheduler, and mounts one plugin per domain.
 */
export async function createTessera(config: ServerConfig): Promise<Tessera> {
  const startedAt = Date.now();
  mkdirSync(config.home, { recursive: true });
  mkdirSync(join(config.home, 'extensions'), { recursive: true });
  // Recovery stops whatever runs under this home that it does not know: a second
  // server on the same home would kill the first one's tasks.
  const releaseHome = lockHome(config.home);
  const db = openDatabase<object>({ file: join(config.home, 'tessera.db'), durability: config.dbDurability });
  await migrate(db as Kysely<unknown>, [...projectMigrations, ...workflowMigrations, ...dicomMigrations, ...extensionMigrations, ...appMigrations]);
  const projects = new ProjectStore(domainView<ProjectTables>(db));
  await projects.ensureDefault();

  // Processes and containers are tagged with this, so a sweep never touches another home's tasks.
  const homeId = createHash('sha256').update(config.home).digest('hex').slice(0, 16);
  const { runners, reports, notes, builtins, dockerSocket, docker } = await findRunners(config, homeId);

  const registry = new WorkflowRegistry({ roots: config.extensionRoots });
  const loaded = await registry.reload();

  // Application instances are served on the platform's own port, ahead of the API routes.
  const routing: { proxy?: SubpathProxy } = {};
  const app = Fastify({
    serverFactory: (handler) => {
      const server = createServer((req, res) => {
        if (!routing.proxy?.handle(req, res)) handler(req, res);
      });
      server.on('upgrade', (req, socket, head) => {
        if (!routing.proxy?.upgrade(req, socket, head)) socket.destroy();
      });
      return server;
    },
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    logController: new LogController({ disableRequestLogging: true }),
    // A followed log streams until its task ends: closing must not wait for it.
    forceCloseConnections: true,
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, useDefaults: true, allErrors: true } },
  });
  let publicUrl = config.publicUrl ?? `http://${config.host}:${config.port}`;
  const events = new EventBus((err) => app.log.error({ err }, 'an event subscriber failed'));
  const onEventError = (err: Error): void => app.log.error({ err }, 'an event could not be published');
  const projectName = projectNames(projects);
  const dicom = await createDicomDomain({ config, db, projects, builtins, log: { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m), error: (m) => app.log.error(m) } });
  const scheduler = new DagScheduler({
    resolveIdentifiers: dicom.resolveIdentifiers,
    store: new WorkflowStore(domainView<WorkflowTables>(db)),
    home: config.home,
    runners,
    limits: { parallelism: config.parallelism, ramMb: config.ramPoolMb, gpuMemMb: config.gpuPoolMb },
    services: { get TESSERA_API_URL() { return publicUrl; } } as Record<string, string>,
    log: (m) => app.log.error(m),
  });
  const unpublishWorkflows = publishWorkflowEvents({ bus: events, scheduler, projectName, onError: onEventError });
  const unpublishSeries = publishSeriesEvents({ bus: events, dicom: dicom.service, projectName, windowMs: 250, onError: onEventError });
  for (const p of loaded.problems) app.log.warn(`extension ${p.dir} not loaded: ${p.message}`);
  const extensions = new ExtensionManager({
    db: domainView<ExtensionTables>(db),
    home: config.home,
    builtinDir: config.builtinExtensionsDir,
    registry,
    images: dockerSocket ? new ImageTool(dockerSocket) : undefined,
    maxPackageBytes: config.extensionMaxPackageMb * 1024 * 1024,
    defaults: config.defaultExtensions,
    changed: (e) => events.publish({ type: 'extension', ...e }),
    activeRunDirs: async () => new Set((await scheduler.store.activeRuns()).map((r) => r.extension_dir).filter((d): d is string => d !== null)),
    log: { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m) },
  });
  await extensions.start();
  const apps = new AppManager({
    db: domainView<AppTables>(db),
    home: config.home,
    extensions: () => registry.extensions(),
    installParams: (name) => registry.installedParams(name),
    projects: {
      byName: (name) => projects.require(name),
      nameOf: async (id) => (await projects.findById(id))?.name ?? id,
    },
    resultsDir: (projectId) => join(config.home, 'buckets', projectId),
    services: () => ({ TESSERA_API_URL: publicUrl }),
    log: { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m), error: (m) => app.log.error(m) },
    runners: [...(dockerSocket ? [new DockerAppRunner({ socketPath: dockerSocket })] : []), new ProcessAppRunner()],
    released: (port) => routing.proxy?.forget(port),
    changed: (i) => events.publish({ type: 'application', project: i.project, name: i.name, id: i.id, extension: i.extension, state: i.state, reason: i.reason }),
  });
  builtins.register('launch-app', launchAppOperator(apps, () => publicUrl));
  // Runs resume once what their tasks need is there: installed extensions, the launch-app
  // operator, and the application instances a waiting task finds again.
  await apps.load();
  const recovery = await scheduler.start();
  if (recovery.resumedRuns > 0 || recovery.swept > 0) {
    app.log.info(recovery, 'resumed the runs that were active when the server stopped');
  }
  routing.proxy = new SubpathProxy((project, instance) => apps.target(project, instance));
  // Connections meet the proxy's fast path first; API requests and rare cases go on to Fastify's server.
  routing.proxy.attach(app.server);

  const retention = { days: config.retentionDays, failedDays: config.failedRetentionDays };
  const sweepDirs = (): void => {
    removeExpiredWorkflowDirs(scheduler.store, retention, Date.now(), (runId, err) =>
      app.log.warn(`could not remove the workflow dir of run ${runId} (retention): ${err.message}`),
    ).catch((err) => app.log.error({ err }, 'workflow dir retention failed'));
  };
  sweepDirs();
  const retentionTimer = setInterval(sweepDirs, 60 * 60 * 1000);
  retentionTimer.unref();

  if (config.checkAnswers) checkAnswersAgainstContracts(app);
  // For the routes not yet declared from the contract, which name it by reference.
  app.addSchema(ErrorResponse);
  installErrorHandler(app);

  serve(app, platformRoutes.health, async () => ({
    status: 'ok' as const,
    version: VERSION,
    home: config.home,
    runners: reports,
    runner_notes: notes,
    docker_socket: dockerSocket ?? null,
    workflows: registry.list().length,
    dicom: { port: dicomPort ?? null, ae_title: config.dicomAeTitle, fsync: config.dicomFsync, duplicates: config.dicomDuplicates, series_quiet_seconds: config.seriesQuietSeconds },
    scheduler: { ...scheduler.usage(), limits: scheduler.limits },
  }));
  const eventStreams = new Set<() => void>();
  await app.register(eventRoutes, { bus: events, projects, heartbeatMs: config.eventsHeartbeatMs ?? 15_000, maxBufferBytes: config.eventsMaxBufferBytes ?? 1024 * 1024, drainMs: config.eventsDrainMs ?? 10_000, streams: eventStreams });
  const disk = new DiskUsage(
    Object.fromEntries(['buckets', 'workflows', 'logs', 'extensions', 'apps'].map((d) => [d === 'buckets' ? 'results' : d, join(config.home, d)])),
    config.diskUsageMaxAgeMs ?? 60_000,
  );
  await app.register(systemRoutes, { config, db, runners: reports, runnerNotes: notes, docker, dicomPort: () => dicomPort, publicUrl: () => publicUrl, startedAt, disk });
  const openapi = openApiDocument(allRoutes, {
    title: 'Tessera API',
    version: VERSION,
    description: 'Workflows, runs, projects, DICOM data, extensions, applications. Errors are `{ error: { code, message, details } }`.',
    tags: API_TAGS,
  });
  serve(app, platformRoutes.openapi, async () => openapi);
  await app.register(projectRoutes, { projects });
  await app.register(workflowRoutes, { scheduler, registry, projects });
  await app.register(extensionRoutes, { manager: extensions });
  await app.register(applicationRoutes, { apps });
  await dicom.register(app, () => publicUrl, events);
  // The web UI (packages/web/dist) at `/`, last: its catch-all answers only what no route above does.
  await app.register(webUiRoutes);
  const triggers = startArrivalTriggers({ dicom: dicom.service, registry, scheduler, projects, log: (m) => app.log.warn(m) });
  let dicomPort: number | undefined;

  return {
    app,
    config,
    scheduler,
    registry,
    extensions,
    apps,
    projects,
    dicom,
    events,
    get dicomPort() {
      return dicomPort;
    },
    runners: reports,
    runnerNotes: notes,
    listen: async () => {
      await app.listen({ port: config.port, host: config.host });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      publicUrl = config.publicUrl ?? `http://${host}:${port}`;
      const { restarted } = await apps.resume();
      if (restarted > 0) app.log.info(`starting ${restarted} application instance(s) again`);
      try {
        dicomPort = await dicom.listen();
      } catch (err) {
        await app.close();
        const taken = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        throw new Error(
          `could not receive DICOM on ${config.host}:${config.dicomPort}: ${(err as Error).message}` +
            `${taken ? ' (another DICOM server uses the port)' : ''}; set DICOM_PORT to another port, or DICOM_PORT=off to run without the receiver`,
          { cause: err },
        );
      }
      return `http://${host}:${port}`;
    },
    close: async () => {
      clearInterval(retentionTimer);
      for (const end of [...eventStreams]) end();
      triggers.stop();
      await apps.close();
      routing.proxy?.close();
      await extensions.close();
      await dicom.close();
      await app.close();
      await scheduler.close();
      unpublishWorkflows();
      unpublishSeries();
      for (const r of runners) await r.close();
      await db.destroy();
      releaseHome();
    },
  };
}

async function findRunners(config: ServerConfig, homeId: string): Promise<{ runners: Runner[]; reports: RunnerReport[]; notes: string[]; builtins: BuiltinRunner; dockerSocket: string | undefined; docker: DockerReport }> {
  const builtins = new BuiltinRunner(CORE_BUILTINS);
  const runners: Runner[] = [builtins];
  const reports: RunnerReport[] = [{ name: 'builtin', get detail() { return `built-in operators: ${builtins.names().join(', ')}`; } }];
  const notes: string[] = [];
  let dockerSocket: string | undefined;
  const wanted = config.runners === 'auto' ? ['docker', 'process'] : config.runners;
  const report: DockerReport = { wanted: wanted.includes('docker'), available: false, version: null, socket: null, reason: null };
  // Containers first: an operator with an image runs in its container when an engine is there.
  if (wanted.includes('docker')) {
    const docker = await detectDocker({ socketPath: config.dockerSocket });
    Object.assign(report, docker.available ? { available: true, version: docker.version, socket: docker.socketPath } : { reason: docker.reason });
    if (docker.available) {
      runners.push(new DockerRunner({ homeId, socketPath: docker.socketPath }));
      dockerSocket = docker.socketPath;
      reports.push({ name: 'docker', detail: `Docker ${docker.version} at unix://${docker.socketPath}` });
    } else if (config.runners !== 'auto') {
      throw new Error(`TESSERA_RUNNERS asks for docker, but ${docker.reason}`);
    } else {
      notes.push(`no container runner: ${docker.reason}. Operators that only have an image will fail; start Docker or set DOCKER_HOST.`);
    }
  }
  if (wanted.includes('process')) {
    runners.push(new ProcessRunner({ homeId }));
    reports.push({ name: 'process', detail: 'local processes' });
  }
  return { runners, reports, notes, builtins, dockerSocket, docker: report };
}

/**
 * Takes `<home>/server.pid` for this process. Another live Tessera server holding it
 * stops this start with a message; a file left by a dead one is taken over.
 */
function lockHome(home: string): () => void {
  const file = join(home, 'server.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => {
        try {
          if (readFileSync(file, 'utf8') === String(process.pid)) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(
          `another Tessera server (pid ${pid}) uses ${home}; stop it first, or give this one another TESSERA_HOME ` +
            `(if pid ${pid} is not a Tessera server, delete ${file})`,
        );
      }
      unlinkSync(file); // left by a server that is gone
    }
  }
  throw new Error(`could not take ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

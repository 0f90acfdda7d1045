import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { AppManager, SubpathProxy } from '@tessera/apps';
import { migrate, openDatabase, type Kysely } from '@tessera/db';
import type { DagScheduler } from '@tessera/engine';
import type { ExtensionManager, WorkflowRegistry } from '@tessera/extension-packages';
import { PLATFORM_OPERATORS, PLATFORM_VERSION } from '@tessera/model';
import { createApplicationsDomain } from './applications/applications-domain.ts';
import { createArrivalTriggersDomain } from './arrival-triggers/arrival-triggers-domain.ts';
import type { ServerConfig } from './config.ts';
import { createDicomDomain, type DicomDomain } from './dicom/dicom-domain.ts';
import type { Domain, DomainLog } from './domain.ts';
import { EventBus } from './events/event-bus.ts';
import { createEventsDomain } from './events/events-domain.ts';
import { createExtensionsDomain } from './extensions/extensions-domain.ts';
import { lockHome } from './home-lock.ts';
import { checkAnswersAgainstContracts } from './http/answer-check.ts';
import { BrowserSafety } from './http/browser-safety.ts';
import { clientErrorHandler, frameworkErrors, installErrorHandler, MAX_PARAM_LENGTH } from './http/error-handler.ts';
import { httpLimitsOf, httpServerOptions, RequestWatch } from './http/http-limits.ts';
import { installRequestValidators } from './http/request-validators.ts';
import { requireContracts } from './http/serve-route.ts';
import { dataOperators } from './platform-operators/data-operators.ts';
import { launchAppOperator } from './platform-operators/launch-app-operator.ts';
import type { ProjectStore } from './projects/project-store.ts';
import { createProjectsDomain } from './projects/projects-domain.ts';
import { createResultsDomain } from './results/results-domain.ts';
import { createPlatformDomain } from './system/platform-domain.ts';
import { webUiRoutes } from './web-ui.ts';
import { findTaskRunners, type RunnerReport } from './workflows/task-runners.ts';
import { createWorkflowsDomain } from './workflows/workflows-domain.ts';

export const VERSION = PLATFORM_VERSION;
export type { RunnerReport };

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
  /** What the admin must read at the start: local processes without a sandbox. */
  warnings: string[];
  /** Listens on the configured host and port; returns the base URL. */
  listen: () => Promise<string>;
  close: () => Promise<void>;
}

/**
 * The composition root: it only composes. It takes the home, opens the database, finds
 * the task runners, creates each domain with what it depends on, runs every domain's
 * migrations, starts the domains in order, declares their routes, and closes them in
 * reverse order. What each domain does is in its folder (see domain.ts).
 */
export async function createTessera(config: ServerConfig): Promise<Tessera> {
  const startedAt = Date.now();
  mkdirSync(config.home, { recursive: true });
  mkdirSync(join(config.home, 'extensions'), { recursive: true });
  // Recovery stops whatever runs under this home that it does not know: a second
  // server on the same home would kill the first one's tasks.
  const releaseHome = lockHome(config.home);
  const db = openDatabase<object>({ file: join(config.home, 'tessera.db'), durability: config.dbDurability });
  // Processes and containers are tagged with this, so a sweep never touches another home's tasks.
  const homeId = createHash('sha256').update(config.home).digest('hex').slice(0, 16);
  const runners = await findTaskRunners(config, homeId);

  // Application instances are served on the platform's own port, ahead of the API routes.
  const routing: { proxy?: SubpathProxy } = {};
  // Connections, head and body timeouts (http-limits.ts): no absolute time for a whole request.
  const limits = httpLimitsOf(config);
  // Host (DNS rebinding) and Origin (CSRF) checks come before anything else answers, the app proxy included.
  const safety = new BrowserSafety(config);
  const watch = new RequestWatch(limits, { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m), error: (m) => app.log.error(m) });
  const app = Fastify({
    serverFactory: (handler) => {
      const server = createServer(httpServerOptions(limits), (req, res) => {
        watch.watch(req, res);
        if (safety.refuseRequest(req, res)) return;
        if (!routing.proxy?.handle(req, res)) handler(req, res);
      });
      watch.capConnections(server);
      server.on('upgrade', (req, socket, head) => {
        if (safety.refuseUpgrade(req, socket)) return;
        if (!routing.proxy?.upgrade(req, socket, head)) socket.destroy();
      });
      return server;
    },
    logger: config.logLevel === 'silent' ? false : { level: config.logLevel },
    logController: new LogController({ disableRequestLogging: true }),
    // A followed log streams until its task ends: closing must not wait for it.
    forceCloseConnections: true,
    // Refusals before a route is found are answered in the error format too.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors,
    clientErrorHandler,
  });
  const log: DomainLog = { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m), error: (m) => app.log.error(m) };
  let publicUrl = config.publicUrl ?? `http://${config.host}:${config.port}`;
  const url = (): string => publicUrl;
  let dicomPort: number | undefined;
  const events = new EventBus((err) => app.log.error({ err }, 'an event subscriber failed'));

  const projects = createProjectsDomain({ db });
  const dicom = createDicomDomain({ config, db, projects: projects.store, events, publicUrl: url, log });
  const results = createResultsDomain({ home: config.home, projects: projects.store });
  // The scheduler is created below; the extensions domain asks it only once started.
  const extensions = createExtensionsDomain({
    config, db, events, dockerSocket: runners.dockerSocket, log,
    activeRunDirs: async () => new Set((await workflows.scheduler.store.activeRuns()).map((r) => r.extension_dir).filter((d): d is string => d !== null)),
  });
  const applications = createApplicationsDomain({ config, db, projects: projects.store, registry: extensions.registry, events, dockerSocket: runners.dockerSocket, processSandbox: runners.processSandbox, publicUrl: url, log });
  const workflows = createWorkflowsDomain({ config, db, projects: projects.store, registry: extensions.registry, runners, resolveIdentifiers: (i) => dicom.resolveIdentifiers(i), publicUrl: url, log });
  routing.proxy = applications.proxy;
  // The proxy's fast path forwards only what passes; the rest goes to the handler above, which refuses it.
  applications.proxy.admit = (method, headers) => safety.hostAllowed(headers.host) && safety.originAllowed(method, headers, false);
  for (const [name, op] of Object.entries(dataOperators(dicom.service, results.buckets))) runners.builtins.register(name, op);
  runners.builtins.register(PLATFORM_OPERATORS.launchApp, launchAppOperator(applications.apps, url));

  // In start order: runs resume (workflows) once what their tasks need is there: the
  // store, installed extensions, the platform operators and the application instances a
  // waiting task finds again; the scheduler's events are published from its recovery on.
  const domains: Domain[] = [
    projects,
    dicom,
    results,
    createEventsDomain({ config, bus: events, projects: projects.store, scheduler: workflows.scheduler, dicom: dicom.service, log }),
    extensions,
    applications,
    workflows,
    createArrivalTriggersDomain({ dicom: dicom.service, registry: extensions.registry, scheduler: workflows.scheduler, projects: projects.store, log }),
    createPlatformDomain({ config, db, runners, registry: extensions.registry, scheduler: workflows.scheduler, dicomPort: () => dicomPort, publicUrl: url, startedAt }),
  ];
  await migrate(db as Kysely<unknown>, domains.flatMap((d) => d.migrations));
  for (const d of domains) await d.start();

  if (config.checkAnswers) checkAnswersAgainstContracts(app);
  installRequestValidators(app);
  installErrorHandler(app);
  // Every API route comes from the contract (packages/api): one declared otherwise stops the start.
  requireContracts(app);
  for (const d of domains) await d.routes(app);
  // The web UI (packages/web/dist) at `/`, last: its catch-all answers only what no route above does.
  await app.register(webUiRoutes);

  return {
    app,
    config,
    scheduler: workflows.scheduler,
    registry: extensions.registry,
    extensions: extensions.manager,
    apps: applications.apps,
    projects: projects.store,
    dicom,
    events,
    get dicomPort() {
      return dicomPort;
    },
    runners: runners.reports,
    runnerNotes: runners.notes,
    warnings: runners.warnings,
    listen: async () => {
      await app.listen({ port: config.port, host: config.host });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      publicUrl = config.publicUrl ?? `http://${host}:${port}`;
      const { restarted } = await applications.resume();
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
      for (const d of [...domains].reverse()) await d.close();
      watch.close();
      await app.close();
      await db.destroy();
      releaseHome();
    },
  };
}

import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { APP_PREFIX, pageHtml, parseAppPath, type AppManager, type SubpathProxy } from '@tessera/apps';
import { AppOrigins } from './applications/app-origins.ts';
import { migrate, openDatabase, type Kysely } from '@tessera/db';
import type { ContainerAccess, DagScheduler } from '@tessera/engine';
import type { ExtensionManager, WorkflowRegistry } from '@tessera/extension-packages';
import { PLATFORM_OPERATORS, PLATFORM_VERSION } from '@tessera/model';
import { createApplicationsDomain } from './applications/applications-domain.ts';
import { createAccessDomain, type AccessDomain } from './auth/access-domain.ts';
import { APP_SIGN_IN_PATH, AppGate } from './auth/app-gate.ts';
import { createArrivalTriggersDomain } from './arrival-triggers/arrival-triggers-domain.ts';
import { isLoopbackHost, type ServerConfig } from './config.ts';
import { createDicomDomain, type DicomDomain } from './dicom/dicom-domain.ts';
import type { Domain, DomainLog } from './domain.ts';
import { EventBus } from './events/event-bus.ts';
import { createEventsDomain } from './events/events-domain.ts';
import { createExtensionsDomain } from './extensions/extensions-domain.ts';
import { lockHome } from './home-lock.ts';
import { checkAnswersAgainstContracts } from './http/answer-check.ts';
import { BrowserSafety } from './http/browser-safety.ts';
import { CONTAINER_HOST, containerAccess, planContainerApi } from './http/container-access.ts';
import { clientErrorHandler, frameworkErrors, installErrorHandler, MAX_PARAM_LENGTH } from './http/error-handler.ts';
import { httpLimitsOf, httpServerOptions, RequestWatch } from './http/http-limits.ts';
import { installRequestValidators } from './http/request-validators.ts';
import { requireContracts } from './http/serve-route.ts';
import { readTls, type TlsMaterial } from './http/tls.ts';
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
  /** Users, memberships, sessions and tokens, the audit log, and the enforcement of every route's access rule. */
  access: AccessDomain;
  dicom: DicomDomain;
  /** State changes of every domain, for GET /api/events. */
  events: EventBus;
  /** The DICOM C-STORE port once listening (undefined when DICOM_PORT=off). */
  dicomPort: number | undefined;
  /** The certificate served when TESSERA_TLS_CERT and TESSERA_TLS_KEY are set (HTTPS), else undefined (HTTP). */
  tls: TlsMaterial | undefined;
  runners: RunnerReport[];
  /** Why an expected runner is missing (e.g. no Docker engine). */
  runnerNotes: string[];
  /**
   * Where application instances are served when on their own origin (TESSERA_APPS_PORT), else
   * undefined: the one shared origin, or the template with `{instance}` when each has its host.
   */
  appsUrl: string | undefined;
  /** Where the loopback server's runtime file is (undefined: none written). */
  runtimeFile: string | undefined;
  /**
   * A single-use sign-in link for the console (valid 15 minutes) when access control is on
   * and the first admin has not chosen a password yet; undefined otherwise.
   */
  consoleSignInLink: () => Promise<string | undefined>;
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
  // Checked before anything is taken or opened: a bad certificate stops the start with its reason.
  const tls = config.tls ? readTls(config.tls) : undefined;
  const scheme = tls ? 'https' : 'http';
  mkdirSync(config.home, { recursive: true });
  mkdirSync(join(config.home, 'extensions'), { recursive: true });
  // Recovery stops whatever runs under this home that it does not know: a second
  // server on the same home would kill the first one's tasks.
  const releaseHome = lockHome(config.home);
  const db = openDatabase<object>({ file: join(config.home, 'tessera.db'), durability: config.dbDurability });
  // Processes and containers are tagged with this, so a sweep never touches another home's tasks.
  const homeId = createHash('sha256').update(config.home).digest('hex').slice(0, 16);
  // How tasks and applications in containers reach the API: known once the server listens (container-access.ts).
  const containers: { url: string | undefined; bridge: Server | undefined } = { url: undefined, bridge: undefined };
  const platformAccess = (): ContainerAccess => containerAccess(containers.url);
  const runners = await findTaskRunners(config, homeId, platformAccess);

  // Application instances are served on the platform's own port, ahead of the API routes.
  const routing: { proxy?: SubpathProxy; gate?: AppGate } = {};
  // Connections, head and body timeouts (http-limits.ts): no absolute time for a whole request.
  const limits = httpLimitsOf(config);
  // Host (DNS rebinding) and Origin (CSRF) checks come before anything else answers, the app proxy included.
  const safety = new BrowserSafety(config);
  const watch = new RequestWatch(limits, { info: (m) => app.log.info(m), warn: (m) => app.log.warn(m), error: (m) => app.log.error(m) });
  // Applications on their own origin (a second port): an app's scripts are then another site's to the
  // platform, so they cannot call its API as the signed-in user (the Origin check, closed CORS), nor
  // register a service worker or read storage of the platform's origin (ADR 0016).
  const separateApps = config.appsPort !== 'same';
  // Where instances are served: a host name per instance on the apps' port by default (app-origins.ts); known once it listens.
  let origins = AppOrigins.platform();
  const serveApp = (req: IncomingMessage, res: ServerResponse): boolean => {
    const appPath = routing.proxy && routing.gate ? parseAppPath(req.url ?? '') : undefined;
    if (appPath === undefined) return false;
    if (appPath === 'bad') return routing.proxy!.handle(req, res);
    routing.gate!.serve(req, res, appPath.project, appPath.instance, () => void routing.proxy!.handle(req, res));
    return true;
  };
  const upgradeApp = (req: IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    const appPath = routing.proxy && routing.gate ? parseAppPath(req.url ?? '') : undefined;
    if (appPath === undefined) return false;
    if (appPath === 'bad') return routing.proxy!.upgrade(req, socket, head);
    routing.gate!.serveUpgrade(req, socket, appPath.project, appPath.instance, () => void routing.proxy!.upgrade(req, socket, head));
    return true;
  };
  /**
   * The apps' server answers a Host that is one of its names: with a host per instance, the
   * host of the instance the path names (so no instance's page is served on another's origin,
   * and a rebound name gets nothing); with one shared origin, the platform's names.
   */
  const appsHostFits = (host: string | undefined, url: string): boolean => {
    if (origins.mode !== 'instance') return safety.hostAllowed(host) || (host !== undefined && host.toLowerCase() === new URL(origins.originOf('', '')).host);
    const appPath = parseAppPath(url);
    if (!appPath) return false;
    // A path no instance has (an encoded slash, a dot segment): the proxy refuses it with 400 and serves nothing.
    if (appPath === 'bad') return true;
    return origins.hostFits(host, appPath.project, appPath.instance);
  };
  let appsServer: Server | undefined;
  if (separateApps) {
    const appsRequest = (req: IncomingMessage, res: ServerResponse): void => {
      watch.watch(req, res);
      const url = req.url ?? '/';
      if (origins.mode === 'instance' && (url === APP_SIGN_IN_PATH || url.startsWith(`${APP_SIGN_IN_PATH}?`))) return routing.gate!.serveSignIn(req, res);
      if (!appsHostFits(req.headers.host, url)) {
        res.writeHead(404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
        res.end(pageHtml('No such application', `There is no application instance at this address. Tessera is at ${publicUrl}; open applications from there.`));
        return;
      }
      if (safety.refuseRequest(req, res, true)) return;
      if (serveApp(req, res)) return;
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`This port serves Tessera's application instances only (/applications/project/...). Tessera itself is at ${publicUrl}.\n`);
    };
    appsServer = tls
      ? (createHttpsServer({ ...httpServerOptions(limits), cert: tls.cert, key: tls.key, handshakeTimeout: limits.headersTimeoutMs }, appsRequest) as unknown as Server)
      : createServer(httpServerOptions(limits), appsRequest);
    watch.capConnections(appsServer);
    appsServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!appsHostFits(req.headers.host, req.url ?? '/')) return void socket.destroy();
      if (safety.refuseUpgrade(req, socket, true)) return;
      if (!upgradeApp(req, socket, head)) socket.destroy();
    });
  }
  // One request and upgrade handling for every listener: the main one, and the Docker bridge's (container-access.ts).
  let listeners: { request: (req: IncomingMessage, res: ServerResponse) => void; upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void } | undefined;
  const app = Fastify({
    serverFactory: (handler) => {
      const request = (req: IncomingMessage, res: ServerResponse): void => {
        watch.watch(req, res);
        if (safety.refuseRequest(req, res)) return;
        if (separateApps && (req.url ?? '').startsWith(APP_PREFIX)) {
          // Applications live on their own origin: a link to the platform's port goes there,
          // with a ticket that signs the browser in to the instance's own host (app-gate.ts).
          const appPath = parseAppPath(req.url ?? '');
          if (origins.mode === 'instance' && appPath && appPath !== 'bad') return routing.gate!.servePlatform(req, res, appPath.project, appPath.instance);
          res.writeHead(307, { location: `${origins.originOf('', '')}${req.url}`, 'cache-control': 'no-store' });
          res.end();
          return;
        }
        // An application's path: its project's members only (app-gate.ts), then the proxy.
        if (!serveApp(req, res)) handler(req, res);
      };
      const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
        if (safety.refuseUpgrade(req, socket)) return;
        if (separateApps || !upgradeApp(req, socket, head)) socket.destroy();
      };
      listeners = { request, upgrade };
      // HTTPS takes the same options; its handshake counts as part of the request head, so it has the head's time.
      const server: Server = tls
        ? (createHttpsServer({ ...httpServerOptions(limits), cert: tls.cert, key: tls.key, handshakeTimeout: limits.headersTimeoutMs }, request) as unknown as Server)
        : createServer(httpServerOptions(limits), request);
      watch.capConnections(server);
      server.on('upgrade', upgrade);
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
  let publicUrl = config.publicUrl ?? `${scheme}://${config.host}:${config.port}`;
  const url = (): string => publicUrl;
  let dicomPort: number | undefined;
  const events = new EventBus((err) => app.log.error({ err }, 'an event subscriber failed'));

  const projects = createProjectsDomain({ db });
  const access = createAccessDomain({ config, db, projects: projects.store, log, secureCookies: () => url().startsWith('https:'), publicUrl: url });
  const dicom = createDicomDomain({ config, db, projects: projects.store, events, publicUrl: url, log });
  const results = createResultsDomain({ home: config.home, projects: projects.store });
  // The scheduler is created below; the extensions domain asks it only once started.
  const extensions = createExtensionsDomain({
    config, db, events, dockerSocket: runners.dockerSocket, log,
    activeRunDirs: async () => new Set((await workflows.scheduler.store.activeRuns()).map((r) => r.extension_dir).filter((d): d is string => d !== null)),
  });
  const applications = createApplicationsDomain({
    config, db, projects: projects.store, registry: extensions.registry, events, dockerSocket: runners.dockerSocket, processSandbox: runners.processSandbox, publicUrl: url, log,
    ...(appsServer ? { appsOrigin: (project: string, instance: string) => origins.originOf(project, instance), proxyServer: () => appsServer } : {}),
    credentials: access.scoped.apps, platformAccess,
  });
  const workflows = createWorkflowsDomain({
    config, db, projects: projects.store, registry: extensions.registry, runners, resolveIdentifiers: (i) => dicom.resolveIdentifiers(i), publicUrl: url, log,
    credentials: access.scoped.runs,
  });
  routing.proxy = applications.proxy;
  routing.gate = new AppGate({ access: access.control, store: access.store, projects: projects.store, origins: () => origins, platformUrl: () => (separateApps ? publicUrl : '') });
  // The proxy's fast path forwards only what passes; the rest goes to the handler above, which refuses it.
  applications.proxy.admit = (method, headers, project, instance) =>
    (origins.mode === 'instance' ? origins.hostFits(headers.host, project, instance) : safety.hostAllowed(headers.host)) &&
    safety.originAllowed(method, headers, tls !== undefined) && routing.gate!.admitted(project, instance, headers);
  // A caller the fast path has not seen a moment ago is checked without leaving it (the grant then lets `admit` pass).
  applications.proxy.check = async (_method, headers, project, instance) => (await routing.gate!.check({ ...headers } as IncomingHttpHeaders, project, instance)) === 'ok';
  // Routes that name a run or a job: access control finds its project here.
  access.control.registerResource('run', async (params) => {
    const run = await workflows.scheduler.store.getRun(String(params.id));
    return { projectId: run?.project_id, what: `run "${params.id}"` };
  });
  access.control.registerResource('job', async (params) => {
    const job = await workflows.scheduler.store.getJob(String(params.id));
    return { projectId: job?.project_id, what: `job "${params.id}"` };
  });
  for (const [name, op] of Object.entries(dataOperators(dicom.service, results.buckets, access.scoped))) runners.builtins.register(name, op);
  runners.builtins.register(PLATFORM_OPERATORS.launchApp, launchAppOperator(applications.apps, url, access.scoped));

  // In start order: runs resume (workflows) once what their tasks need is there: the
  // store, installed extensions, the platform operators and the application instances a
  // waiting task finds again; the scheduler's events are published from its recovery on.
  const domains: Domain[] = [
    projects,
    access,
    dicom,
    results,
    createEventsDomain({ config, bus: events, projects: projects.store, scheduler: workflows.scheduler, dicom: dicom.service, log, access: access.control }),
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
  // Who may call each route: one mechanism for all of them, from their contracts (auth/access-control.ts).
  access.control.install(app);
  access.audit.install(app);
  // Every API route comes from the contract (packages/api): one declared otherwise stops the start.
  requireContracts(app);
  for (const d of domains) await d.routes(app);
  // The web UI (packages/web/dist) at `/`, last: its catch-all answers only what no route above does.
  await app.register(webUiRoutes);

  /**
   * After the main listener: how containers reach the API (container-access.ts). With a
   * loopback bind and access control on, a second listener of the same handlers on the
   * Docker bridge's gateway address; its port is the main one's when free there.
   */
  const openContainerAccess = async (port: number): Promise<void> => {
    const plan = await planContainerApi({ config, port, dockerSocket: runners.dockerSocket });
    if (plan.note) runners.notes.push(plan.note);
    if (plan.bridge) {
      try {
        const bridgePort = await listenOnBridge(plan.bridge, port).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'EADDRINUSE') return listenOnBridge(plan.bridge!, 0);
          throw err;
        });
        safety.allowHost(plan.bridge);
        safety.allowHost(CONTAINER_HOST);
        containers.url = `http://${CONTAINER_HOST}:${bridgePort}`;
        runners.notes.push(`tasks and applications in containers reach the API at ${containers.url} (a listener on the Docker bridge, ${plan.bridge}:${bridgePort}; every request there needs a token)`);
      } catch (err) {
        runners.notes.push(`tasks and applications in containers cannot call the API: could not listen on the Docker bridge's gateway ${plan.bridge} (${(err as Error).message}); set TESSERA_PUBLIC_URL to an address containers reach`);
      }
    } else if (plan.url) {
      safety.allowHost(CONTAINER_HOST);
      containers.url = plan.url;
    }
  };
  const listenOnBridge = (address: string, port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const server = createServer(httpServerOptions(limits), listeners!.request);
      server.on('upgrade', listeners!.upgrade);
      watch.capConnections(server);
      server.once('error', reject);
      server.listen({ host: address, port }, () => {
        server.off('error', reject);
        containers.bridge = server;
        const a = server.address();
        resolve(typeof a === 'object' && a ? a.port : port);
      });
    });
  const closeBridge = async (): Promise<void> => {
    const server = containers.bridge;
    if (!server) return;
    containers.bridge = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  };

  let runtime: { file: string; remove: () => Promise<void> } | undefined;
  return {
    app,
    config,
    access,
    get runtimeFile() {
      return runtime?.file;
    },
    get appsUrl() {
      if (origins.mode === 'platform') return undefined;
      return origins.display;
    },
    consoleSignInLink: async () => {
      if (config.auth !== 'on') return undefined;
      const admin = await access.store.userByName('admin');
      if (!admin || !admin.must_change_password || admin.disabled) return undefined;
      return `${publicUrl}/sign-in#code=${await access.identity.createLink(admin)}`;
    },
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
    tls,
    runners: runners.reports,
    runnerNotes: runners.notes,
    warnings: runners.warnings,
    listen: async () => {
      await app.listen({ port: config.port, host: config.host });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      publicUrl = config.publicUrl ?? `${scheme}://${host}:${port}`;
      if (appsServer) {
        await new Promise<void>((resolve, reject) => {
          appsServer!.once('error', reject);
          appsServer!.listen(config.appsPort as number, config.host, () => resolve());
        });
        const appsAddress = appsServer.address();
        const appsPort = typeof appsAddress === 'object' && appsAddress ? appsAddress.port : 0;
        origins = AppOrigins.fromConfig({ appsPublicUrl: config.appsPublicUrl, publicUrl: config.publicUrl, scheme, host: config.host, appsPort });
        if (origins.mode === 'shared') {
          app.log.warn(`applications share one origin (${origins.originOf('', '')}): one instance's scripts can read another's pages of the same user. ` +
            'Give each instance a host name of its own: TESSERA_APPS_PUBLIC_URL=https://{instance}.apps.example.org with a wildcard DNS name (docs/guides/operations.md)');
        }
      }
      await openContainerAccess(port);
      // For the CLI and scripts on this machine, as Jupyter's runtime files: an admin token for this port.
      if (config.auth === 'on' && isLoopbackHost(config.host)) runtime = await access.identity.writeRuntimeFile(port, `${scheme}://${host}:${port}`);
      const { restarted } = await applications.resume();
      if (restarted > 0) app.log.info(`starting ${restarted} application instance(s) again`);
      try {
        dicomPort = await dicom.listen();
      } catch (err) {
        await closeBridge();
        await app.close();
        const taken = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
        throw new Error(
          `could not receive DICOM on ${config.host}:${config.dicomPort}: ${(err as Error).message}` +
            `${taken ? ' (another DICOM server uses the port)' : ''}; set DICOM_PORT to another port, or DICOM_PORT=off to run without the receiver`,
          { cause: err },
        );
      }
      return `${scheme}://${host}:${port}`;
    },
    close: async () => {
      await runtime?.remove();
      await closeBridge();
      for (const d of [...domains].reverse()) await d.close();
      watch.close();
      if (appsServer?.listening) {
        appsServer.closeAllConnections();
        await new Promise<void>((resolve) => appsServer!.close(() => resolve()));
      }
      await app.close();
      await db.destroy();
      releaseHome();
    },
  };
}

import type { Server } from 'node:http';
import { join } from 'node:path';
import { AppManager, appMigrations, DockerAppRunner, ProcessAppRunner, SubpathProxy, type AppCredentials, type AppTables } from '@tessera/apps';
import type { ContainerAccess } from '@tessera/engine';
import { domainView, type Kysely } from '@tessera/db';
import type { WorkflowRegistry } from '@tessera/extension-packages';
import type { ServerConfig } from '../config.ts';
import type { Domain, DomainLog } from '../domain.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import type { ProcessSandbox } from '../workflows/process-sandbox.ts';
import { applicationRoutes } from './application-routes.ts';

export interface ApplicationsDomain extends Domain {
  readonly apps: AppManager;
  /** The application proxy: instances on `/applications/project/<p>/...` of the platform's own port. */
  readonly proxy: SubpathProxy;
  /** Starts again the instances that ran when the server stopped (once the server listens: they get its URL). */
  resume(): Promise<{ restarted: number }>;
}

export interface ApplicationsDomainDeps {
  config: ServerConfig;
  db: Kysely<object>;
  projects: ProjectStore;
  registry: WorkflowRegistry;
  events: EventBus;
  dockerSocket: string | undefined;
  /** The sandbox of local processes (or the refusal to run them), as for process tasks. */
  processSandbox: ProcessSandbox;
  publicUrl: () => string;
  log: DomainLog;
  /** The applications' own origin, when they have one (TESSERA_APPS_PORT): instance URLs start with it. */
  appsOrigin?: (project: string, instance: string) => string;
  /** The HTTP server whose connections the proxy's fast path takes: the applications' own, else the platform's. */
  proxyServer?: () => Server;
  /** The scoped API token of each instance (auth/scoped-credentials.ts). */
  credentials?: AppCredentials;
  /** How containers reach the API (TESSERA_API_URL, extra hosts). */
  platformAccess?: () => ContainerAccess;
}

/** The applications domain: instances of application extensions, their runners, and the proxy in front of them. */
export function createApplicationsDomain(deps: ApplicationsDomainDeps): ApplicationsDomain {
  const { config, projects, registry } = deps;
  const apps = new AppManager({
    db: domainView<AppTables>(deps.db),
    home: config.home,
    extensions: () => registry.extensions(),
    installParams: (name) => registry.installedParams(name),
    projects: {
      byName: (name) => projects.require(name),
      nameOf: async (id) => (await projects.findById(id))?.name ?? id,
    },
    resultsDir: (projectId) => join(config.home, 'buckets', projectId),
    // Where the scheduler lays out a run's workflow dir (scheduler-core.ts).
    workflowDir: (runId) => join(config.home, 'workflows', runId),
    services: () => ({ TESSERA_API_URL: deps.publicUrl() }),
    origin: deps.appsOrigin,
    log: deps.log,
    runners: [...(deps.dockerSocket ? [new DockerAppRunner({ socketPath: deps.dockerSocket, ...(deps.platformAccess ? { platformAccess: deps.platformAccess } : {}) })] : []), new ProcessAppRunner({ sandbox: deps.processSandbox.sandbox, refuse: deps.processSandbox.refusal, launcher: deps.config.launcher })],
    ...(deps.credentials ? { credentials: deps.credentials } : {}),
    // `proxy` is created below; an instance is released only after both exist.
    released: (port) => proxy.forget(port),
    changed: (i) => deps.events.publish({ type: 'application', project: i.project, name: i.name, id: i.id, extension: i.extension, state: i.state, reason: i.reason }),
  });
  const proxy = new SubpathProxy((project, instance) => apps.target(project, instance));
  return {
    name: 'applications',
    migrations: appMigrations,
    apps,
    proxy,
    // The instances a waiting workflow task finds again are loaded before the scheduler resumes its runs.
    start: () => apps.load(),
    routes: async (app) => {
      await applicationRoutes(app, { apps, projects: deps.projects });
      // Connections meet the proxy's fast path first; API requests and rare cases go on to Fastify's server.
      proxy.attach(deps.proxyServer?.() ?? app.server, { headMs: config.httpHeadersTimeoutSeconds * 1000 });
    },
    resume: () => apps.resume(),
    close: async () => {
      await apps.close();
      proxy.close();
    },
  };
}

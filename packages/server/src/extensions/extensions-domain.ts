import { domainView, type Kysely } from '@tessera/db';
import { ensureImage, registryCredentialsFromEnv } from '@tessera/engine';
import { ExtensionManager, extensionMigrations, ImageTool, WorkflowRegistry, type ExtensionTables } from '@tessera/extension-packages';
import type { ServerConfig } from '../config.ts';
import type { Domain, DomainLog } from '../domain.ts';
import type { EventBus } from '../events/event-bus.ts';
import { extensionRoutes } from './extension-routes.ts';

export interface ExtensionsDomain extends Domain {
  /** The workflows of the installed and linked extensions. */
  readonly registry: WorkflowRegistry;
  /** The catalog and its installer. */
  readonly manager: ExtensionManager;
}

export interface ExtensionsDomainDeps {
  config: ServerConfig;
  db: Kysely<object>;
  events: EventBus;
  /** The Docker engine's socket, when one answers (extension images are built and loaded there). */
  dockerSocket: string | undefined;
  /** Extension folders of runs still queued or running: their files and images stay until those end. */
  activeRunDirs: () => Promise<Set<string>>;
  log: DomainLog;
}

/** The extensions domain: the linked folders, the catalog (built-in and uploaded packages) and installs. */
export function createExtensionsDomain(deps: ExtensionsDomainDeps): ExtensionsDomain {
  const { config } = deps;
  // Registry images are pulled with the credentials of TESSERA_REGISTRY_AUTH_FILE, read at each pull.
  const images = deps.dockerSocket
    ? new ImageTool(deps.dockerSocket, { pull: (docker, image, o) => ensureImage(docker, image, { ...o, credentials: registryCredentialsFromEnv() }) })
    : undefined;
  const registry = new WorkflowRegistry({ roots: config.extensionRoots, ...(images ? { processingContainers: (image: string) => images.processingContainer(image) } : {}) });
  const manager = new ExtensionManager({
    db: domainView<ExtensionTables>(deps.db),
    home: config.home,
    builtinDir: config.builtinExtensionsDir,
    registry,
    images,
    maxPackageBytes: config.extensionMaxPackageMb * 1024 * 1024,
    defaults: config.defaultExtensions,
    changed: (e) => deps.events.publish({ type: 'extension', ...e }),
    activeRunDirs: deps.activeRunDirs,
    log: deps.log,
  });
  return {
    name: 'extensions',
    migrations: extensionMigrations,
    registry,
    manager,
    start: async () => {
      const loaded = await registry.reload();
      for (const p of loaded.problems) deps.log.warn(`extension ${p.dir} not loaded: ${p.message}`);
      await manager.start();
    },
    routes: (app) => extensionRoutes(app, { manager }),
    close: () => manager.close(),
  };
}

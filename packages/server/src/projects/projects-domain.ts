import { domainView, type Kysely } from '@tessera/db';
import type { Domain } from '../domain.ts';
import { projectRoutes } from './project-routes.ts';
import { projectMigrations, ProjectStore, type ProjectTables } from './project-store.ts';

export interface ProjectsDomain extends Domain {
  readonly store: ProjectStore;
}

/** The projects domain: every entity that holds data belongs to one; the default project exists from the first start. */
export function createProjectsDomain(deps: { db: Kysely<object> }): ProjectsDomain {
  const store = new ProjectStore(domainView<ProjectTables>(deps.db));
  return {
    name: 'projects',
    migrations: projectMigrations,
    store,
    start: async () => {
      await store.ensureDefault();
    },
    routes: (app) => projectRoutes(app, { projects: store }),
    close: async () => undefined,
  };
}

import { join } from 'node:path';
import type { Domain } from '../domain.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { ResultBuckets } from './result-buckets.ts';
import { resultRoutes } from './result-routes.ts';

export interface ResultsDomain extends Domain {
  readonly buckets: ResultBuckets;
}

/** The result buckets: a folder per project under `<home>/buckets`, where put-files stores a run's results. */
export function createResultsDomain(deps: { home: string; projects: ProjectStore }): ResultsDomain {
  const buckets = new ResultBuckets(join(deps.home, 'buckets'));
  return {
    name: 'results',
    migrations: [],
    buckets,
    start: async () => undefined,
    routes: (app) => resultRoutes(app, { buckets, projects: deps.projects }),
    close: async () => undefined,
  };
}

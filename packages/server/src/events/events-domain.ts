import type { DicomService } from '@tessera/dicom';
import type { DagScheduler } from '@tessera/engine';
import type { ServerConfig } from '../config.ts';
import type { Domain, DomainLog } from '../domain.ts';
import type { AccessControl } from '../auth/access-control.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { projectNames, publishSeriesEvents, publishWorkflowEvents } from './domain-events.ts';
import type { EventBus } from './event-bus.ts';
import { eventRoutes } from './event-routes.ts';

/** Series events of one project are gathered this long into one event. */
const SERIES_EVENT_WINDOW_MS = 250;

/**
 * The event stream (GET /api/events): the bus every domain publishes its state changes
 * to, the publishers of the scheduler's and the store's changes, and the open streams.
 */
export function createEventsDomain(deps: { config: ServerConfig; bus: EventBus; projects: ProjectStore; scheduler: DagScheduler; dicom: DicomService; log: DomainLog; access?: AccessControl }): Domain {
  const { config, bus } = deps;
  const streams = new Set<() => void>();
  const unpublish: (() => void)[] = [];
  const onError = (err: Error): void => deps.log.error(`an event could not be published: ${err.message}`);
  return {
    name: 'events',
    migrations: [],
    start: async () => {
      const projectName = projectNames(deps.projects);
      unpublish.push(publishWorkflowEvents({ bus, scheduler: deps.scheduler, projectName, onError }));
      unpublish.push(publishSeriesEvents({ bus, dicom: deps.dicom, projectName, windowMs: SERIES_EVENT_WINDOW_MS, onError }));
    },
    routes: (app) =>
      eventRoutes(app, {
        bus,
        projects: deps.projects,
        heartbeatMs: config.eventsHeartbeatMs ?? 15_000,
        maxBufferBytes: config.eventsMaxBufferBytes ?? 1024 * 1024,
        drainMs: config.eventsDrainMs ?? 10_000,
        streams,
        ...(deps.access ? { access: deps.access } : {}),
      }),
    close: async () => {
      for (const end of [...streams]) end();
      for (const stop of unpublish.splice(0)) stop();
    },
  };
}

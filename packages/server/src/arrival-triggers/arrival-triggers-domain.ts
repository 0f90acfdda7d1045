import type { DicomService } from '@tessera/dicom';
import type { DagScheduler } from '@tessera/engine';
import type { WorkflowRegistry } from '@tessera/extension-packages';
import type { Domain, DomainLog } from '../domain.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { startArrivalTriggers } from './arrival-triggers.ts';

/** Arrival triggers: a series that has fully arrived starts the workflows whose extension's triggers it meets. */
export function createArrivalTriggersDomain(deps: { dicom: DicomService; registry: WorkflowRegistry; scheduler: DagScheduler; projects: ProjectStore; log: DomainLog }): Domain {
  let triggers: { stop: () => void } | undefined;
  return {
    name: 'arrival-triggers',
    migrations: [],
    start: async () => {
      triggers = startArrivalTriggers({ dicom: deps.dicom, registry: deps.registry, scheduler: deps.scheduler, projects: deps.projects, log: (m) => deps.log.warn(m) });
    },
    routes: async () => undefined,
    close: async () => triggers?.stop(),
  };
}

import { join } from 'node:path';
import type { Kysely } from '@tessera/db';
import { dicomMigrations, DicomService, DimseServer, type SeriesEvent } from '@tessera/dicom';
import type { DataResolverInput } from '@tessera/engine';
import { TesseraError } from '@tessera/model';
import type { ServerConfig } from '../config.ts';
import type { Domain, DomainLog } from '../domain.ts';
import type { EventBus } from '../events/event-bus.ts';
import { DEFAULT_PROJECT, type ProjectStore } from '../projects/project-store.ts';
import { dataRoutes } from './data-routes.ts';
import { datasetRoutes } from './dataset-routes.ts';
import { dicomWebRoutes } from './dicomweb-routes.ts';
import { senderRoutes } from './sender-routes.ts';

export interface DicomDomain extends Domain {
  readonly service: DicomService;
  /** The C-STORE receiver, when enabled. */
  readonly dimse: DimseServer | undefined;
  /** Turns a data_form (dataset_name, identifiers, dataset_limit) into series UIDs. */
  resolveIdentifiers(input: DataResolverInput): Promise<string[]>;
  /** Starts the C-STORE receiver once the HTTP server listens; returns its port. */
  listen(): Promise<number | undefined>;
}

export interface DicomDomainDeps {
  config: ServerConfig;
  db: Kysely<object>;
  projects: ProjectStore;
  events: EventBus;
  /** Public base URL of the server (for DICOMweb's RetrieveURLs), read per request. */
  publicUrl: () => string;
  log: DomainLog;
}

/** The DICOM domain: the store and its index, datasets, the data API, DICOMweb, the C-STORE receiver and who may send to it. */
export function createDicomDomain(o: DicomDomainDeps): DicomDomain {
  const { config, projects } = o;
  const service = new DicomService({
    db: o.db,
    root: join(config.home, 'dicom'),
    fsync: config.dicomFsync,
    duplicates: config.dicomDuplicates,
    quietPeriodMs: config.seriesQuietSeconds * 1000,
    maxInstanceBytes: config.dicomMaxInstanceMb * 1024 * 1024,
    maxUploadBytes: config.dicomMaxUploadMb * 1024 * 1024,
    defaultProject: DEFAULT_PROJECT,
    projects: { byName: (name) => projects.findByName(name) },
    refuseUnknownSenders: config.dicomRefuseUnknownSenders,
    log: o.log,
  });

  const dimse =
    config.dicomPort === 'off'
      ? undefined
      : new DimseServer({
          host: config.host,
          port: config.dicomPort,
          aeTitle: config.dicomAeTitle,
          maxDatasetBytes: config.dicomMaxInstanceMb * 1024 * 1024,
          maxAssociations: config.dicomMaxAssociations,
          associationMemoryBytes: config.dicomAssociationMemoryMb * 1024 * 1024,
          spoolDir: service.store.incomingDir,
          idleTimeoutMs: config.dicomIdleTimeoutSeconds * 1000,
          onAssociate: (info) => service.associate(info),
          onStore: (req) => service.cstore(req),
          log: o.log,
        });

  const resolveIdentifiers = async (input: DataResolverInput): Promise<string[]> => {
    const form = input.dataForm;
    const limit = typeof form.dataset_limit === 'number' ? form.dataset_limit : undefined;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) {
      throw new TesseraError('TESSERA_INVALID_FORM', `dataset_limit must be a whole number of at least 1, not ${limit}`, { details: [{ where: 'data_form.dataset_limit', message: 'must be an integer >= 1' }] });
    }
    const ids: string[] = [];
    if (typeof form.dataset_name === 'string') {
      const d = await service.datasets.find(input.project.id, form.dataset_name);
      if (!d) throw new TesseraError(
          'TESSERA_NOT_FOUND',
          `dataset "${form.dataset_name}" does not exist in project "${input.project.name}"; list the datasets with \`tessera datasets --project ${input.project.name}\`, or send data into it (storescu -aet kp-${form.dataset_name}, tessera import --dataset ${form.dataset_name})`,
        );
      ids.push(...(await service.datasets.seriesOf(d.id)));
      if (ids.length === 0) throw new TesseraError('TESSERA_INVALID_FORM', `dataset "${form.dataset_name}" is empty: add series to it first`, { details: [{ where: 'data_form.dataset_name', message: 'the dataset has no series' }] });
    }
    if (Array.isArray(form.identifiers)) ids.push(...(form.identifiers as string[]));
    return [...new Set(ids)].slice(0, limit);
  };

  return {
    name: 'dicom',
    migrations: dicomMigrations,
    service,
    dimse,
    resolveIdentifiers,
    start: () => service.start(),
    routes: async (app) => {
      await app.register(dicomWebRoutes, { dicom: service, projects, publicUrl: o.publicUrl });
      await app.register(dataRoutes, { dicom: service, projects, events: o.events });
      await app.register(datasetRoutes, { dicom: service, projects, events: o.events });
      await app.register(senderRoutes, { dicom: service, projects, aeTitle: config.dicomAeTitle, log: o.log });
    },
    listen: async () => (dimse ? (await dimse.listen()).port : undefined),
    close: async () => {
      await dimse?.close();
      await service.close();
    },
  };
}

export type { SeriesEvent };

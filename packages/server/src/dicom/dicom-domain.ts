import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from '@tessera/db';
import { DicomService, DimseServer, type SeriesEvent } from '@tessera/dicom';
import type { BuiltinRunner, DataResolverInput } from '@tessera/engine';
import { TesseraError } from '@tessera/model';
import type { ServerConfig } from '../config.ts';
import type { EventBus } from '../events/event-bus.ts';
import { DEFAULT_PROJECT, type ProjectStore } from '../projects/project-store.ts';
import { dataOperators } from '../platform-operators/data-operators.ts';
import { dataRoutes } from './data-routes.ts';
import { datasetRoutes } from './dataset-routes.ts';
import { dicomWebRoutes } from './dicomweb-routes.ts';
import { ResultBuckets } from '../results/result-buckets.ts';
import { resultRoutes } from '../results/result-routes.ts';

export interface DicomDomain {
  service: DicomService;
  buckets: ResultBuckets;
  /** The C-STORE receiver, when enabled. */
  dimse: DimseServer | undefined;
  /** Turns a data_form (dataset_name, identifiers, dataset_limit) into series UIDs. */
  resolveIdentifiers: (input: DataResolverInput) => Promise<string[]>;
  register: (app: FastifyInstance, publicUrl: () => string, events: EventBus) => Promise<void>;
  /** Starts the C-STORE receiver; returns its port. */
  listen: () => Promise<number | undefined>;
  close: () => Promise<void>;
}

type Log = { info(msg: string): void; warn(msg: string): void; error(msg: string): void };

/** The DICOM domain: store, index, datasets, DICOMweb, the C-STORE receiver, result buckets and the data operators. */
export async function createDicomDomain(o: { config: ServerConfig; db: Kysely<object>; projects: ProjectStore; builtins: BuiltinRunner; log: Log }): Promise<DicomDomain> {
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
    log: o.log,
  });
  await service.start();
  const buckets = new ResultBuckets(join(config.home, 'buckets'));
  for (const [name, op] of Object.entries(dataOperators(service, buckets))) o.builtins.register(name, op);

  const dimse =
    config.dicomPort === 'off'
      ? undefined
      : new DimseServer({
          host: config.host,
          port: config.dicomPort,
          aeTitle: config.dicomAeTitle,
          maxDatasetBytes: config.dicomMaxInstanceMb * 1024 * 1024,
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
    service,
    buckets,
    dimse,
    resolveIdentifiers,
    register: async (app, publicUrl, events) => {
      await app.register(dicomWebRoutes, { dicom: service, projects, publicUrl });
      await app.register(dataRoutes, { dicom: service, projects, events });
      await app.register(datasetRoutes, { dicom: service, projects, events });
      await app.register(resultRoutes, { buckets, projects });
    },
    listen: async () => (dimse ? (await dimse.listen()).port : undefined),
    close: async () => {
      await dimse?.close();
      await service.close();
    },
  };
}

export type { SeriesEvent };

import { Type, type Static } from '@sinclair/typebox';
import { DateTime, errors, Nullable, Obj, OrderParam, PageOf, PageParams, ProjectQuery, SortParam } from './common.ts';
import { Series, SERIES_SORTS, SeriesFilterBody } from './data.ts';
import { defineRoute, PRINCIPAL_INVESTIGATOR, SCIENTIST } from './route.ts';

export const DATASET_SORTS = ['name', 'created_at', 'updated_at', 'series_count'] as const;
export type DatasetSort = (typeof DATASET_SORTS)[number];

export const Dataset = Obj(
  {
    name: Type.String({ description: '1-128 letters, digits, ".", "_" or "-", starting with a letter or digit.', examples: ['lung-ct'] }),
    project: Type.String(),
    description: Nullable(Type.String()),
    series_count: Type.Integer({ description: 'How many series it holds.' }),
    created_at: DateTime(),
    updated_at: DateTime(),
  },
  { $id: 'Dataset', description: 'A named set of series inside a project; a series may be in several datasets.' },
);
export type Dataset = Static<typeof Dataset>;

export const DeletedDataset = Obj({ deleted: Type.String({ description: 'The dataset deleted (its series stay in the store).' }) }, { $id: 'DeletedDataset' });
export type DeletedDataset = Static<typeof DeletedDataset>;

export const DatasetSeriesAdded = Obj(
  { dataset: Type.String(), added: Type.Integer({ description: 'Series added (those it held already are not counted).' }), series_count: Type.Integer({ description: 'How many series it holds now.' }) },
  { $id: 'DatasetSeriesAdded' },
);
export type DatasetSeriesAdded = Static<typeof DatasetSeriesAdded>;

export const DatasetSeriesRemoved = Obj(
  { dataset: Type.String(), removed: Type.Integer({ description: 'Series removed (they stay in the store).' }), series_count: Type.Integer({ description: 'How many series it holds now.' }) },
  { $id: 'DatasetSeriesRemoved' },
);
export type DatasetSeriesRemoved = Static<typeof DatasetSeriesRemoved>;

export const CreateDataset = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128 }),
    description: Type.Optional(Type.String()),
    project: Type.Optional(Type.String()),
    series: Type.Optional(Type.Array(Type.String(), { description: 'SeriesInstanceUIDs to put in it.' })),
    query: Type.Optional(SeriesFilterBody),
  },
  { additionalProperties: false },
);
export type CreateDataset = Static<typeof CreateDataset>;

export const UpdateDataset = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })), description: Type.Optional(Type.String()), project: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
export type UpdateDataset = Static<typeof UpdateDataset>;

export const DatasetMembers = Type.Object(
  {
    series: Type.Optional(Type.Array(Type.String(), { description: 'SeriesInstanceUIDs.' })),
    query: Type.Optional(SeriesFilterBody),
    project: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type DatasetMembers = Static<typeof DatasetMembers>;

const NameParams = Type.Object({ name: Type.String() });

const tags = ['datasets'];
const inQuery = { in: 'query', name: 'project' } as const;
/** The body's `project` wins; without it, the `project` query parameter; without both, the default project. */
const inBody = { in: 'body', name: 'project' } as const;

/** The datasets domain's routes: named sets of series in a project. */
export const datasetRoutes = {
  list: defineRoute({
    method: 'GET',
    url: '/api/datasets',
    operationId: 'listDatasets',
    tags,
    summary: 'List datasets',
    project: inQuery,
    access: SCIENTIST,
    querystring: Type.Intersect([
      ProjectQuery,
      Type.Object({ q: Type.Optional(Type.String({ description: 'Part of the name.' })), sort: SortParam(DATASET_SORTS, 'name'), order: OrderParam, ...PageParams(100, 1000) }),
    ]),
    response: { 200: PageOf(Dataset), ...errors(400, 404, 500) },
  }),
  create: defineRoute({
    method: 'POST',
    url: '/api/datasets',
    operationId: 'createDataset',
    tags,
    summary: 'Create a dataset, optionally with series (by UID or by query)',
    description: 'The project is the body\'s `project`, else the `project` query parameter. A series that does not exist is a 404, and no dataset is created.',
    project: inBody,
    access: PRINCIPAL_INVESTIGATOR,
    querystring: ProjectQuery,
    body: CreateDataset,
    response: { 201: Dataset, ...errors(400, 404, 409, 413, 415, 500) },
  }),
  get: defineRoute({
    method: 'GET',
    url: '/api/datasets/:name',
    operationId: 'getDataset',
    tags,
    summary: 'One dataset',
    project: inQuery,
    access: SCIENTIST,
    params: NameParams,
    querystring: ProjectQuery,
    response: { 200: Dataset, ...errors(400, 404, 500) },
  }),
  update: defineRoute({
    method: 'PATCH',
    url: '/api/datasets/:name',
    operationId: 'updateDataset',
    tags,
    summary: 'Rename a dataset or change its description',
    description: 'The project is the body\'s `project`, else the `project` query parameter.',
    project: inBody,
    access: PRINCIPAL_INVESTIGATOR,
    params: NameParams,
    querystring: ProjectQuery,
    body: UpdateDataset,
    response: { 200: Dataset, ...errors(400, 404, 409, 413, 415, 500) },
  }),
  delete: defineRoute({
    method: 'DELETE',
    url: '/api/datasets/:name',
    operationId: 'deleteDataset',
    tags,
    summary: 'Delete a dataset (its series stay in the store)',
    project: inQuery,
    access: PRINCIPAL_INVESTIGATOR,
    params: NameParams,
    querystring: ProjectQuery,
    response: { 200: DeletedDataset, ...errors(400, 404, 413, 415, 500) },
  }),
  listSeries: defineRoute({
    method: 'GET',
    url: '/api/datasets/:name/series',
    operationId: 'listDatasetSeries',
    tags,
    summary: "A dataset's series",
    project: inQuery,
    access: SCIENTIST,
    params: NameParams,
    querystring: Type.Intersect([ProjectQuery, Type.Object({ sort: SortParam(SERIES_SORTS, 'created_at'), order: OrderParam, ...PageParams(100, 10_000) })]),
    response: { 200: PageOf(Series), ...errors(400, 404, 500) },
  }),
  addSeries: defineRoute({
    method: 'POST',
    url: '/api/datasets/:name/series',
    operationId: 'addDatasetSeries',
    tags,
    summary: 'Add series to a dataset, by UID or by query',
    description: 'The project is the body\'s `project`, else the `project` query parameter. A series that does not exist is a 404, and none is added.',
    project: inBody,
    access: PRINCIPAL_INVESTIGATOR,
    params: NameParams,
    querystring: ProjectQuery,
    body: DatasetMembers,
    response: { 200: DatasetSeriesAdded, ...errors(400, 404, 413, 415, 500) },
  }),
  removeSeries: defineRoute({
    method: 'DELETE',
    url: '/api/datasets/:name/series',
    operationId: 'removeDatasetSeries',
    tags,
    summary: 'Remove series from a dataset (they stay in the store)',
    description: 'The project is the body\'s `project`, else the `project` query parameter.',
    project: inBody,
    access: PRINCIPAL_INVESTIGATOR,
    params: NameParams,
    querystring: ProjectQuery,
    body: DatasetMembers,
    response: { 200: DatasetSeriesRemoved, ...errors(400, 404, 413, 415, 500) },
  }),
} as const;

import { Type, type Static } from '@sinclair/typebox';
import { AnyObject, DateTime, ErrorResponse, errors, Nullable, Obj, PageOf, PageParams, ProjectQuery, SortParam } from './common.ts';
import { defineRoute, Media, PRINCIPAL_INVESTIGATOR, SCIENTIST } from './route.ts';

/** The sorts of the metadata index (the same list as @tessera/dicom's: the server passes them on to it, which the compiler checks). */
export const SERIES_SORTS = ['created_at', 'updated_at', 'study_date', 'patient_name', 'patient_id', 'modality', 'series_description', 'series_number', 'num_instances'] as const;
export type SeriesSort = (typeof SERIES_SORTS)[number];

const UID = '1.2.826.0.1.3680043.8.498.10123456789';

export const Series = Obj(
  {
    series_instance_uid: Type.String({ examples: [UID] }),
    study_instance_uid: Type.String(),
    project: Type.String({ description: 'The project that holds it.' }),
    modality: Nullable(Type.String({ examples: ['CT'] })),
    series_number: Nullable(Type.Integer()),
    series_description: Nullable(Type.String()),
    body_part: Nullable(Type.String({ description: 'BodyPartExamined.' })),
    manufacturer: Nullable(Type.String()),
    series_date: Nullable(Type.String({ description: 'YYYY-MM-DD (as stored when it is not a full date).', examples: ['2024-01-31'] })),
    patient_id: Nullable(Type.String()),
    patient_name: Nullable(Type.String()),
    study_date: Nullable(Type.String({ description: 'YYYY-MM-DD (as stored when it is not a full date).' })),
    study_description: Nullable(Type.String()),
    instances: Type.Integer({ description: 'Instances stored.' }),
    size_bytes: Type.Integer({ description: 'Bytes of the stored instances.' }),
    created_at: DateTime('When its first instance arrived.'),
    updated_at: DateTime('When its last instance arrived.'),
    complete: Type.Boolean({ description: 'No instance arrived for TESSERA_SERIES_QUIET_SECONDS: the series is complete and has (or is getting) its thumbnail.' }),
    thumbnail: Nullable(Type.String({ description: 'The URL of its PNG thumbnail, null until made.', examples: [`/api/series/${UID}/thumbnail?project=admin`] })),
    thumbnail_error: Nullable(Type.String({ description: 'Why no thumbnail could be made.' })),
  },
  { $id: 'Series', description: 'A series of the metadata index.' },
);
export type Series = Static<typeof Series>;

export const SeriesDetail = Obj(
  {
    ...Series.properties,
    datasets: Type.Array(Type.String(), { description: 'The datasets it is in.' }),
    tags: AnyObject('Every top-level attribute of its first instance, typed: keyword -> value (numbers as numbers, dates YYYY-MM-DD, times HH:MM:SS, person names as text, several values as arrays, sequences as lists of objects; private and unknown tags under their hex tag).'),
  },
  { $id: 'SeriesDetail', description: 'One series with its datasets and every attribute, typed.' },
);
export type SeriesDetail = Static<typeof SeriesDetail>;

export const Instance = Obj(
  {
    sop_instance_uid: Type.String(),
    sop_class_uid: Type.String(),
    instance_number: Nullable(Type.Integer()),
    transfer_syntax: Type.String({ description: 'The transfer syntax UID it is stored in.' }),
    size_bytes: Type.Integer(),
    received_at: DateTime(),
  },
  { $id: 'Instance', description: 'An instance of a series, as stored.' },
);
export type Instance = Static<typeof Instance>;

const FacetCounts = Type.Array(Obj({ value: Nullable(Type.String({ description: 'null: the attribute is missing.' })), count: Type.Integer() }), {
  description: 'At most 100 values, the most frequent first.',
});

export const SeriesFacets = Obj(
  { modality: FacetCounts, body_part: FacetCounts, manufacturer: FacetCounts },
  { $id: 'SeriesFacets', description: 'How many matching series have each modality, body part and manufacturer.', examples: [{ modality: [{ value: 'CT', count: 12 }], body_part: [{ value: 'CHEST', count: 9 }, { value: null, count: 3 }], manufacturer: [] }] },
);
export type SeriesFacets = Static<typeof SeriesFacets>;

export const DeletedSeries = Obj(
  { deleted: Type.String({ description: 'The series deleted.' }), instances: Type.Integer({ description: 'Instances deleted with it.' }) },
  { $id: 'DeletedSeries', description: 'A series was deleted: its files, index entries and dataset memberships.' },
);
export type DeletedSeries = Static<typeof DeletedSeries>;

export const DeleteSeriesResult = Obj(
  {
    deleted: Type.Integer({ description: 'How many series were deleted.' }),
    results: Type.Array(
      Obj({
        series: Type.String(),
        instances: Type.Optional(Type.Integer({ description: 'Instances deleted, when the series was deleted.' })),
        error: Type.Optional(Type.String({ description: 'Why not (the series does not exist).' })),
      }),
      { description: 'One per series asked for, in order.' },
    ),
  },
  { $id: 'DeleteSeriesResult', description: 'What became of each series asked for.' },
);
export type DeleteSeriesResult = Static<typeof DeleteSeriesResult>;

export const ImportFile = Obj(
  {
    file: Type.String({ description: "The file name (multipart: the part's filename; in a .zip: `<archive name>/<entry path>`)." }),
    status: Type.Union([Type.Literal('stored'), Type.Literal('replaced'), Type.Literal('duplicate'), Type.Literal('rejected')]),
    sop_instance_uid: Type.Optional(Type.String()),
    series_instance_uid: Type.Optional(Type.String()),
    study_instance_uid: Type.Optional(Type.String()),
    sop_class_uid: Type.Optional(Type.String()),
    error: Type.Optional(Obj({ code: Type.String(), message: Type.String() }, { description: 'Why it was rejected.' })),
  },
  { $id: 'ImportFile', description: 'The outcome of one file of an import (a file of the upload, or an entry of a .zip).' },
);
export type ImportFile = Static<typeof ImportFile>;

const importSummary = {
  upload_id: Type.String({ description: 'The `upload_id` parameter, or the one the server made: the `import` events of GET /api/events carry it.' }),
  project: Type.String(),
  dataset: Type.String({ description: 'The dataset the series joined.' }),
  stored: Type.Integer({ description: 'Files stored (new or replaced).' }),
  duplicates: Type.Integer({ description: 'Files whose instance the project already held (kept as it was, or refused by TESSERA_DICOM_DUPLICATES=reject: then rejected).' }),
  rejected: Type.Integer(),
  files: Type.Array(ImportFile, { description: 'One entry per file, in the order received.' }),
};

export const ImportResult = Obj(importSummary, { $id: 'ImportResult', description: 'The result of every file of an upload (at least one was stored, or none was sent).' });
export type ImportResult = Static<typeof ImportResult>;

export const ImportError = Obj(
  {
    error: ErrorResponse.properties.error,
    upload_id: Type.Optional(importSummary.upload_id),
    project: Type.Optional(importSummary.project),
    dataset: Type.Optional(importSummary.dataset),
    stored: Type.Optional(importSummary.stored),
    duplicates: Type.Optional(importSummary.duplicates),
    rejected: Type.Optional(importSummary.rejected),
    files: Type.Optional(importSummary.files),
  },
  {
    $id: 'ImportError',
    description:
      'An upload that stored nothing, or a refused request: `{error: {code, message, details}}`; when files were read, with the fields of a result too (`files` says why each was rejected).',
  },
);
export type ImportError = Static<typeof ImportError>;

/** Filters of the metadata index, as query parameters: series search, facets. */
export const SeriesFilter = Type.Object({
  project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
  dataset: Type.Optional(Type.String({ description: 'Only series of this dataset.' })),
  modality: Type.Optional(Type.String({ description: 'Comma-separated modalities, e.g. CT,MR.' })),
  body_part: Type.Optional(Type.String({ description: 'Comma-separated BodyPartExamined values.' })),
  manufacturer: Type.Optional(Type.String({ description: 'Comma-separated manufacturers.' })),
  study_date_from: Type.Optional(Type.String({ description: 'YYYY-MM-DD or YYYYMMDD, inclusive.' })),
  study_date_to: Type.Optional(Type.String({ description: 'YYYY-MM-DD or YYYYMMDD, inclusive.' })),
  q: Type.Optional(Type.String({ description: 'Free text: every word must occur in names, ids, descriptions, modality, body part, manufacturer, UIDs.' })),
  study: Type.Optional(Type.String({ description: 'StudyInstanceUID.' })),
  patient_id: Type.Optional(Type.String()),
  tag: Type.Optional(
    Type.Union([Type.String(), Type.Array(Type.String())], {
      description: 'Attribute matches `Keyword=value` (repeatable): exact, `*`/`?` wildcards, `>=n`, `<=n`, date ranges `20200101-20201231`.',
    }),
  ),
});
export type SeriesFilter = Static<typeof SeriesFilter>;

export const SeriesListQuery = Type.Intersect([
  SeriesFilter,
  Type.Object({
    sort: SortParam(SERIES_SORTS, '-created_at'),
    order: Type.Optional(Type.Unsafe<'asc' | 'desc'>({ type: 'string', enum: ['asc', 'desc'], description: 'Order of a `sort` field given without `-` (default desc, as before `-field` existed).' })),
    ...PageParams(100, 10_000),
  }),
]);
export type SeriesListQuery = Static<typeof SeriesListQuery>;

/** The same filters as a JSON object (datasets: the series matching a query). */
export const SeriesFilterBody = Type.Object(
  {
    dataset: Type.Optional(Type.String()),
    modality: Type.Optional(Type.Array(Type.String())),
    body_part: Type.Optional(Type.Array(Type.String())),
    manufacturer: Type.Optional(Type.Array(Type.String())),
    study_date_from: Type.Optional(Type.String()),
    study_date_to: Type.Optional(Type.String()),
    q: Type.Optional(Type.String()),
    study: Type.Optional(Type.String()),
    patient_id: Type.Optional(Type.String()),
    tags: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: false },
);
export type SeriesFilterBody = Static<typeof SeriesFilterBody>;

const UidParams = Type.Object({ uid: Type.String({ pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, description: 'A DICOM UID.' }) });

export const DeleteSeries = Type.Object(
  { series: Type.Array(Type.String(), { minItems: 1, maxItems: 10000, description: 'SeriesInstanceUIDs.' }), project: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
export type DeleteSeries = Static<typeof DeleteSeries>;

const ImportQuery = Type.Intersect([
  ProjectQuery,
  Type.Object({
    dataset: Type.Optional(Type.String({ description: 'Dataset the series join (created if new; default import-YYYY-MM-DD).' })),
    upload_id: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', description: 'An id the client chooses for this upload: the `import` events of GET /api/events carry it (default: one made by the server, in the answer).' }),
    ),
  }),
]);

/** The media types POST /api/dicom/import reads. */
export const IMPORT_MEDIA_TYPES = ['application/dicom', 'application/zip', 'application/x-zip-compressed', 'multipart/form-data'] as const;

const importErrors = { 400: ImportError, 404: ImportError, 409: ImportError, 413: ImportError, 415: ImportError, 503: ImportError };

const tags = ['data'];
const inQuery = { in: 'query', name: 'project' } as const;
const zip = Media(['application/zip'], 'A .zip of the DICOM files, `<study>/<series>/<sop>.dcm`, streamed (`content-disposition: attachment`).');

/** The data domain's routes: the metadata index of the DICOM store, uploads, downloads and deletes. */
export const dataRoutes = {
  list: defineRoute({
    method: 'GET',
    url: '/api/series',
    operationId: 'listSeries',
    tags,
    summary: 'Search the metadata index of series',
    description: 'A bare `sort` field without `order` is descending here, as before `-field` existed.',
    project: inQuery,
    access: SCIENTIST,
    querystring: SeriesListQuery,
    response: { 200: PageOf(Series), ...errors(400, 404, 500) },
  }),
  facets: defineRoute({
    method: 'GET',
    url: '/api/series/facets',
    operationId: 'getSeriesFacets',
    tags,
    summary: 'Counts per modality, body part and manufacturer of the matching series',
    project: inQuery,
    access: SCIENTIST,
    querystring: SeriesFilter,
    response: { 200: SeriesFacets, ...errors(400, 404, 500) },
  }),
  get: defineRoute({
    method: 'GET',
    url: '/api/series/:uid',
    operationId: 'getSeries',
    tags,
    summary: 'One series with all its attributes (typed) and its datasets',
    project: inQuery,
    access: SCIENTIST,
    params: UidParams,
    querystring: ProjectQuery,
    response: { 200: SeriesDetail, ...errors(400, 404, 500) },
  }),
  instances: defineRoute({
    method: 'GET',
    url: '/api/series/:uid/instances',
    operationId: 'listSeriesInstances',
    tags,
    summary: "A series' instances, by instance number",
    project: inQuery,
    access: SCIENTIST,
    params: UidParams,
    querystring: Type.Intersect([ProjectQuery, Type.Object(PageParams(1000, 10_000))]),
    response: { 200: PageOf(Instance), ...errors(400, 404, 500) },
  }),
  thumbnail: defineRoute({
    method: 'GET',
    url: '/api/series/:uid/thumbnail',
    operationId: 'getSeriesThumbnail',
    tags,
    summary: "A series' thumbnail (PNG), made once the series is complete",
    description: 'A 404 says why there is none (yet): the series is still arriving, the thumbnail is being made, or it could not be made.',
    project: inQuery,
    access: SCIENTIST,
    params: UidParams,
    querystring: ProjectQuery,
    response: { 200: Media(['image/png'], 'The thumbnail (`cache-control: max-age=60`).'), ...errors(400, 404, 500, 503) },
  }),
  delete: defineRoute({
    method: 'DELETE',
    url: '/api/series/:uid',
    operationId: 'deleteSeries',
    tags,
    summary: 'Delete a series: files, index entries and dataset memberships',
    project: inQuery,
    access: PRINCIPAL_INVESTIGATOR,
    params: UidParams,
    querystring: ProjectQuery,
    response: { 200: DeletedSeries, ...errors(400, 404, 413, 415, 500) },
  }),
  deleteMany: defineRoute({
    method: 'POST',
    url: '/api/series/delete',
    operationId: 'deleteSeriesList',
    tags,
    summary: 'Delete several series',
    description: 'A series that does not exist is reported in `results` (with `error`); the others are deleted.',
    project: { in: 'body', name: 'project' },
    access: PRINCIPAL_INVESTIGATOR,
    body: DeleteSeries,
    response: { 200: DeleteSeriesResult, ...errors(400, 404, 413, 415, 500) },
  }),
  import: defineRoute({
    method: 'POST',
    url: '/api/dicom/import',
    operationId: 'importDicom',
    tags,
    summary: 'Upload DICOM files: application/dicom (one file), application/zip, or multipart/form-data (files and .zip archives); answers with the result of every file',
    description:
      'When no file was stored the status is that of the files\' common error (400 when they differ; 413 when all were too large, 409 when all were refused duplicates, ...) and the body is the error together with the same summary fields.',
    project: inQuery,
    access: SCIENTIST,
    querystring: ImportQuery,
    consumes: IMPORT_MEDIA_TYPES,
    response: { 200: ImportResult, ...importErrors, ...errors(500) },
  }),
  downloadSeries: defineRoute({
    method: 'GET',
    url: '/api/series/:uid/download',
    operationId: 'downloadSeries',
    tags,
    summary: 'A series as a .zip of DICOM files',
    project: inQuery,
    access: SCIENTIST,
    params: UidParams,
    querystring: ProjectQuery,
    response: { 200: zip, ...errors(400, 404, 500) },
  }),
  downloadStudy: defineRoute({
    method: 'GET',
    url: '/api/studies/:uid/download',
    operationId: 'downloadStudy',
    tags,
    summary: 'A study as a .zip of DICOM files',
    project: inQuery,
    access: SCIENTIST,
    params: UidParams,
    querystring: ProjectQuery,
    response: { 200: zip, ...errors(400, 404, 500) },
  }),
  downloadDataset: defineRoute({
    method: 'GET',
    url: '/api/datasets/:name/download',
    operationId: 'downloadDataset',
    tags: ['datasets'],
    summary: 'A dataset as a .zip of DICOM files',
    description: 'An empty dataset answers 404.',
    project: inQuery,
    access: SCIENTIST,
    params: Type.Object({ name: Type.String() }),
    querystring: ProjectQuery,
    response: { 200: zip, ...errors(400, 404, 500) },
  }),
} as const;

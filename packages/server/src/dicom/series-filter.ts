import { Type, type Static } from '@sinclair/typebox';
import { SERIES_SORTS, type SeriesQuery } from '@tessera/dicom';
import { TesseraError } from '@tessera/model';
import { PageParams, SortParam } from '../http/common.schema.ts';

/** Filters of the metadata index, shared by series search, facets, datasets-by-query and downloads. */
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

/** The same filter as a JSON body (datasets: add the series matching a query). */
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

const list = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);

/** Query-string filters to a series query (the dataset is resolved by the caller). */
export function filterFromQuery(q: SeriesFilter, projectId: string, datasetId: string | undefined): SeriesQuery {
  const tags: Record<string, string> = {};
  for (const t of q.tag === undefined ? [] : Array.isArray(q.tag) ? q.tag : [q.tag]) {
    const i = t.indexOf('=');
    if (i <= 0) throw new TesseraError('TESSERA_INVALID_REQUEST', `tag filter "${t}" must be Keyword=value, e.g. tag=SliceThickness=1.25`, { details: [{ where: 'query.tag', message: 'must be Keyword=value' }] });
    tags[t.slice(0, i)] = t.slice(i + 1);
  }
  return {
    projectId,
    datasetId,
    modality: list(q.modality),
    bodyPart: list(q.body_part),
    manufacturer: list(q.manufacturer),
    studyDateFrom: q.study_date_from,
    studyDateTo: q.study_date_to,
    text: q.q,
    studyUid: q.study,
    patientId: q.patient_id,
    tags,
  };
}

/** A JSON-body filter to a series query. */
export function filterFromBody(b: SeriesFilterBody, projectId: string, datasetId: string | undefined): SeriesQuery {
  return {
    projectId,
    datasetId,
    modality: b.modality,
    bodyPart: b.body_part,
    manufacturer: b.manufacturer,
    studyDateFrom: b.study_date_from,
    studyDateTo: b.study_date_to,
    text: b.q,
    studyUid: b.study,
    patientId: b.patient_id,
    tags: b.tags,
  };
}

import type { SeriesFilter, SeriesFilterBody } from '@tessera/api';
import type { SeriesQuery } from '@tessera/dicom';
import { TesseraError } from '@tessera/model';

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

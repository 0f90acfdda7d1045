import { sql, type Kysely, type RawBuilder } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { tagHex, tagInfo, tagOfKeyword, parseTagRef } from '../parse/data-dictionary.ts';
import type { DicomTables, SeriesTable } from '../store/dicom-tables.ts';

export const SERIES_SORTS = ['created_at', 'updated_at', 'study_date', 'patient_name', 'patient_id', 'modality', 'series_description', 'series_number', 'num_instances'] as const;
export type SeriesSort = (typeof SERIES_SORTS)[number];
export const FACETS = ['modality', 'body_part', 'manufacturer'] as const;
export type Facet = (typeof FACETS)[number];

/** A search over the metadata index (platform API, CLI, datasets by query). */
export interface SeriesQuery {
  projectId: string;
  /** Only series of this dataset (id). */
  datasetId?: string;
  modality?: string[];
  bodyPart?: string[];
  manufacturer?: string[];
  /** Study date range, inclusive: YYYY-MM-DD or YYYYMMDD. */
  studyDateFrom?: string;
  studyDateTo?: string;
  /** Free text: every word must occur in patient name or id, descriptions, modality, body part, manufacturer, accession, institution, protocol or UIDs. */
  text?: string;
  /** Attribute matches by keyword or tag: exact, `*`/`?` wildcards, `a-b` ranges for dates, `>=n`/`<=n` for numbers. */
  tags?: Record<string, string>;
  studyUid?: string;
  seriesUids?: string[];
  patientId?: string;
  sort?: SeriesSort;
  order?: 'asc' | 'desc';
  limit?: number;
  offset?: number;
}

export type SeriesRow = Omit<SeriesTable, 'search_text' | 'attrs'>;

const ROW_COLUMNS = [
  'project_id', 'series_uid', 'study_uid', 'modality', 'series_number', 'series_description', 'body_part', 'manufacturer', 'series_date',
  'patient_id', 'patient_name', 'study_date', 'study_description', 'num_instances', 'size_bytes', 'created_at', 'updated_at', 'completed_at',
  'thumbnail', 'thumbnail_error',
] as const;

function bad(where: string, message: string): TesseraError {
  return new TesseraError('TESSERA_INVALID_REQUEST', `invalid search: ${where} ${message}`, { details: [{ where, message }] });
}

function dicomDate(value: string, where: string): string {
  const d = value.replace(/-/g, '');
  if (!/^\d{8}$/.test(d)) throw bad(where, `"${value}" is not a date (YYYY-MM-DD or YYYYMMDD)`);
  return d;
}

/** The WHERE conditions of a query, on `dicom_series` aliased `s`. */
export function seriesConditions(q: SeriesQuery): RawBuilder<unknown>[] {
  const w: RawBuilder<unknown>[] = [sql`s.project_id = ${q.projectId}`];
  if (q.datasetId) w.push(sql`exists (select 1 from dataset_series d where d.dataset_id = ${q.datasetId} and d.series_uid = s.series_uid)`);
  const inList = (col: string, values: string[] | undefined) => {
    if (values && values.length > 0) w.push(sql`${sql.ref(`s.${col}`)} in (${sql.join(values)})`);
  };
  inList('modality', q.modality);
  inList('body_part', q.bodyPart);
  inList('manufacturer', q.manufacturer);
  inList('series_uid', q.seriesUids);
  if (q.studyDateFrom) w.push(sql`s.study_date >= ${dicomDate(q.studyDateFrom, 'study_date_from')}`);
  if (q.studyDateTo) w.push(sql`s.study_date <= ${dicomDate(q.studyDateTo, 'study_date_to')}`);
  if (q.studyUid) w.push(sql`s.study_uid = ${q.studyUid}`);
  if (q.patientId) w.push(sql`s.patient_id = ${q.patientId}`);
  // Control characters separate words too: a NUL would end SQLite's full-text query early ("unterminated string").
  const words = (q.text ?? '').toLowerCase().split(/[\s\u0000-\u001f\u007f]+/).filter(Boolean);
  // Words of three characters or more go to the trigram index; shorter ones are scanned for.
  const indexed = words.filter((word) => [...word].length >= 3);
  if (indexed.length > 0) {
    const match = indexed.map((word) => `"${word.replace(/"/g, '""')}"`).join(' AND ');
    w.push(sql`s.rowid in (select rowid from dicom_series_fts where dicom_series_fts match ${match})`);
  }
  for (const word of words.filter((x) => [...x].length < 3)) {
    w.push(sql`s.search_text like ${`%${word.replace(/[!%_]/g, '!$&')}%`} escape '!'`);
  }
  for (const [key, value] of Object.entries(q.tags ?? {})) w.push(tagCondition(key, value));
  return w;
}

/** A match on any attribute, against the series' full attribute set. */
function tagCondition(key: string, value: string): RawBuilder<unknown> {
  return sql`exists (select 1 from dicom_series_tags t where t.project_id = s.project_id and t.series_uid = s.series_uid and ${tagMatch(key, value)})`;
}

function tagMatch(key: string, value: string): RawBuilder<unknown> {
  const tag = parseTagRef(key) ?? tagOfKeyword(key);
  if (tag === undefined) throw bad(`tag.${key}`, 'is neither a DICOM keyword (e.g. SliceThickness) nor a tag (e.g. 00180050)');
  const vr = tagInfo(tag)?.vr ?? 'UN';
  const path = `$."${tagHex(tag)}".Value[0]${vr === 'PN' ? '.Alphabetic' : ''}`;
  const expr = sql`json_extract(t.tags, ${path})`;
  const numeric = ['IS', 'DS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV'].includes(vr);
  const cmp = /^(>=|<=|>|<)(.+)$/.exec(value);
  if (cmp) {
    const n = Number(cmp[2]);
    if (numeric && !Number.isFinite(n)) throw bad(`tag.${key}`, `"${cmp[2]}" is not a number`);
    return sql`${expr} ${sql.raw(cmp[1]!)} ${numeric ? n : cmp[2]}`;
  }
  if ((vr === 'DA' || vr === 'DT' || vr === 'TM') && /^[\d.:]*-[\d.:]*$/.test(value) && !/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const [from, to] = value.split('-');
    const parts: RawBuilder<unknown>[] = [];
    if (from) parts.push(sql`${expr} >= ${from}`);
    if (to) parts.push(sql`${expr} <= ${to}`);
    return parts.length ? sql`(${sql.join(parts, sql` and `)})` : sql`1 = 1`;
  }
  if (value.includes('*') || value.includes('?')) {
    return sql`${expr} like ${value.replace(/[!%_]/g, '!$&').replace(/\*/g, '%').replace(/\?/g, '_')} escape '!'`;
  }
  if (numeric) {
    const n = Number(value);
    if (!Number.isFinite(n)) throw bad(`tag.${key}`, `"${value}" is not a number`);
    return sql`${expr} = ${n}`;
  }
  if (vr === 'DA' && /^\d{4}-\d{2}-\d{2}$/.test(value)) return sql`${expr} = ${value.replace(/-/g, '')}`;
  if (vr === 'PN') return sql`${expr} like ${value.replace(/[!%_]/g, '!$&')} escape '!'`;
  return sql`${expr} = ${value}`;
}

/** A page of series and the total number matching. */
export async function searchSeries(db: Kysely<DicomTables>, q: SeriesQuery): Promise<{ items: SeriesRow[]; total: number }> {
  const w = sql.join(seriesConditions(q), sql` and `);
  const sort = q.sort ?? 'created_at';
  if (!SERIES_SORTS.includes(sort)) throw bad('sort', `must be one of ${SERIES_SORTS.join(', ')}`);
  const order = sql.raw(q.order === 'asc' ? 'asc' : 'desc');
  const limit = Math.min(Math.max(q.limit ?? 100, 1), 10_000);
  const [items, total] = await Promise.all([
    sql<SeriesRow>`select ${sql.raw(ROW_COLUMNS.map((c) => `s.${c}`).join(', '))} from dicom_series s where ${w}
      order by ${sql.ref(`s.${sort}`)} ${order}, s.series_uid ${order} limit ${limit} offset ${q.offset ?? 0}`.execute(db),
    sql<{ n: number }>`select count(*) as n from dicom_series s where ${w}`.execute(db),
  ]);
  return { items: items.rows, total: Number(total.rows[0]?.n ?? 0) };
}

/** Series UIDs matching a query (for "add the search results to a dataset"), up to `max`. */
export async function seriesUidsMatching(db: Kysely<DicomTables>, q: SeriesQuery, max = 100_000): Promise<string[]> {
  const w = sql.join(seriesConditions(q), sql` and `);
  const rows = await sql<{ series_uid: string }>`select s.series_uid from dicom_series s where ${w} order by s.created_at, s.series_uid limit ${max}`.execute(db);
  return rows.rows.map((r) => r.series_uid);
}

/** Counts per value of each facet, over the series matching the query. */
export async function seriesFacets(db: Kysely<DicomTables>, q: SeriesQuery): Promise<Record<Facet, { value: string | null; count: number }[]>> {
  const w = sql.join(seriesConditions(q), sql` and `);
  const out = {} as Record<Facet, { value: string | null; count: number }[]>;
  for (const facet of FACETS) {
    // "+column": group by an expression, so that SQLite filters with the index of the
    // condition instead of walking the facet's own index over every series.
    const rows = await sql<{ value: string | null; count: number }>`select ${sql.ref(`s.${facet}`)} as value, count(*) as count from dicom_series s where ${w}
      group by +${sql.ref(`s.${facet}`)} order by count desc, value limit 100`.execute(db);
    out[facet] = rows.rows.map((r) => ({ value: r.value, count: Number(r.count) }));
  }
  return out;
}

/** The full attribute set of one series in DICOM JSON, or undefined. */
export async function seriesTagsJson(db: Kysely<DicomTables>, projectId: string, seriesUid: string): Promise<string | undefined> {
  const row = await db.selectFrom('dicom_series_tags').select('tags').where('project_id', '=', projectId).where('series_uid', '=', seriesUid).executeTakeFirst();
  return row?.tags;
}

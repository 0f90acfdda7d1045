import { sql, type Kysely, type RawBuilder } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { parseTagRef, tagHex, tagInfo, tagLabel } from '../parse/data-dictionary.ts';
import type { DicomTables } from '../store/dicom-tables.ts';
import { INSTANCE_TAGS, SERIES_TAGS, STUDY_TAGS, TAG } from '../store/index-record.ts';

export type QidoLevel = 'study' | 'series' | 'instance';

type Kind = 'text' | 'pn' | 'date' | 'time' | 'uid' | 'int' | 'modalities';
interface Column {
  col: string;
  kind: Kind;
}

// Attributes with a column of their own (indexed, or at least not inside JSON).
const STUDY_COLUMNS = new Map<number, Column>([
  [TAG.StudyInstanceUID, { col: 'st.study_uid', kind: 'uid' }],
  [TAG.PatientName, { col: 'st.patient_name', kind: 'pn' }],
  [TAG.PatientID, { col: 'st.patient_id', kind: 'text' }],
  [TAG.PatientBirthDate, { col: 'st.patient_birth_date', kind: 'date' }],
  [TAG.StudyDate, { col: 'st.study_date', kind: 'date' }],
  [TAG.StudyTime, { col: 'st.study_time', kind: 'time' }],
  [TAG.AccessionNumber, { col: 'st.accession_number', kind: 'text' }],
  [TAG.StudyID, { col: 'st.study_id', kind: 'text' }],
  [TAG.StudyDescription, { col: 'st.study_description', kind: 'text' }],
  [TAG.ReferringPhysicianName, { col: 'st.referring_physician', kind: 'pn' }],
  [TAG.ModalitiesInStudy, { col: 'st.modalities', kind: 'modalities' }],
]);
const SERIES_COLUMNS = new Map<number, Column>([
  [TAG.SeriesInstanceUID, { col: 'se.series_uid', kind: 'uid' }],
  [TAG.Modality, { col: 'se.modality', kind: 'text' }],
  [TAG.SeriesNumber, { col: 'se.series_number', kind: 'int' }],
  [TAG.SeriesDescription, { col: 'se.series_description', kind: 'text' }],
  [TAG.BodyPartExamined, { col: 'se.body_part', kind: 'text' }],
  [TAG.Manufacturer, { col: 'se.manufacturer', kind: 'text' }],
  [TAG.SeriesDate, { col: 'se.series_date', kind: 'date' }],
]);
const INSTANCE_COLUMNS = new Map<number, Column>([
  [TAG.SOPInstanceUID, { col: 'i.sop_uid', kind: 'uid' }],
  [TAG.SOPClassUID, { col: 'i.sop_class_uid', kind: 'uid' }],
  [TAG.InstanceNumber, { col: 'i.instance_number', kind: 'int' }],
]);

const DEFAULTS: Record<QidoLevel, ReadonlySet<number>> = {
  study: new Set([...STUDY_TAGS, TAG.ModalitiesInStudy, TAG.NumberOfStudyRelatedSeries, TAG.NumberOfStudyRelatedInstances]),
  series: new Set([...SERIES_TAGS, TAG.StudyInstanceUID, TAG.NumberOfSeriesRelatedInstances]),
  instance: new Set([...INSTANCE_TAGS, TAG.SeriesInstanceUID, TAG.Modality, TAG.SeriesNumber, TAG.StudyInstanceUID]),
};

export interface QidoRequest {
  level: QidoLevel;
  projectId: string;
  /** From the path: /studies/{study}/series, /studies/{study}/series/{series}/instances. */
  studyUid?: string;
  seriesUid?: string;
  /** Query parameters as received (repeated keys as arrays). */
  query: Record<string, string | string[] | undefined>;
  /** Base URL of this DICOMweb service, for RetrieveURL. */
  baseUrl: string;
}

export interface QidoResult {
  /** The DICOM JSON array, ready to send. */
  json: string;
  count: number;
  /** True when `limit` cut the results short. */
  more: boolean;
  /** Tags asked with includefield that need the files (instance level); the caller fills them in. */
  fromFiles: number[];
  /** Index paths of the returned instances (instance level), in order. */
  paths: string[];
}

const MAX_LIMIT = 100_000;

/** Runs a QIDO-RS search (PS3.18 §10.6) over the index. */
export async function qidoSearch(db: Kysely<DicomTables>, req: QidoRequest): Promise<QidoResult> {
  const { level } = req;
  const where: RawBuilder<unknown>[] = [sql`${sql.raw(alias(level))}.project_id = ${req.projectId}`];
  // Instances are found through their series (dicom_instances has no study index: one index write less per instance).
  if (req.studyUid) where.push(sql`${sql.raw(level === 'study' ? 'st' : 'se')}.study_uid = ${req.studyUid}`);
  if (req.seriesUid) where.push(sql`${sql.raw(level === 'instance' ? 'i' : 'se')}.series_uid = ${req.seriesUid}`);
  let limit = level === 'instance' ? MAX_LIMIT : 1000;
  let offset = 0;
  const include = new Set<number>();
  let includeAll = false;
  for (const [key, raw] of Object.entries(req.query)) {
    if (raw === undefined) continue;
    const values = Array.isArray(raw) ? raw : [raw];
    if (key === 'limit' || key === 'offset') {
      const n = Number(values[0]);
      if (!Number.isSafeInteger(n) || n < 0) throw badQuery(key, `must be a non-negative integer of at most ${Number.MAX_SAFE_INTEGER}, got "${values[0]}"`);
      if (key === 'limit') limit = Math.min(n, MAX_LIMIT);
      else offset = n;
      continue;
    }
    if (key === 'fuzzymatching') continue;
    if (key === 'includefield') {
      for (const v of values.flatMap((x) => x.split(','))) {
        if (v === 'all') {
          includeAll = true;
          continue;
        }
        const tag = parseTagRef(v);
        if (tag === undefined) throw badQuery('includefield', `"${v}" is neither a DICOM keyword nor a tag (e.g. PatientAge or 00101010)`);
        include.add(tag);
      }
      continue;
    }
    const tag = parseTagRef(key);
    if (tag === undefined) {
      throw badQuery(key, `"${key}" is not a QIDO-RS parameter, a DICOM keyword or a tag: use a keyword as the standard spells it (e.g. PatientName) or a tag (e.g. 00100010); sequence paths are not supported`);
    }
    const value = values[values.length - 1]!;
    if (value === '') {
      include.add(tag); // universal matching: return the attribute
      continue;
    }
    where.push(matchCondition(level, tag, value));
  }

  const w = sql.join(where, sql` and `);
  const base = baseFrom(level);
  const extra = includeAll ? 'all' : [...include].filter((t) => !DEFAULTS[level].has(t));
  const rows = await sql<Row>`select ${sql.raw(selectList(level, extra === 'all' || extra.length > 0))} from ${base} where ${w} order by ${sql.raw(orderBy(level))} limit ${limit + 1} offset ${offset}`.execute(db);
  const more = rows.rows.length > limit;
  const list = more ? rows.rows.slice(0, limit) : rows.rows;
  const fromFiles = level === 'instance' && extra !== 'all' ? extra.filter((t) => !SERIES_TAGS.includes(t) && !STUDY_TAGS.includes(t)) : [];
  const parts = list.map((r) => rowJson(level, r, req, extra));
  return { json: `[${parts.join(',')}]`, count: list.length, more, fromFiles, paths: level === 'instance' ? list.map((r) => r.path!) : [] };
}

interface Row {
  st_attrs: string;
  se_attrs?: string;
  i_attrs?: string;
  tags?: string;
  modalities: string;
  num_series: number;
  st_instances: number;
  se_instances?: number;
  study_uid: string;
  series_uid?: string;
  sop_uid?: string;
  path?: string;
}

function alias(level: QidoLevel): string {
  return level === 'study' ? 'st' : level === 'series' ? 'se' : 'i';
}

function baseFrom(level: QidoLevel): RawBuilder<unknown> {
  if (level === 'study') return sql.raw('dicom_studies st');
  const studyJoin = 'join dicom_studies st on st.project_id = se.project_id and st.study_uid = se.study_uid';
  if (level === 'series') return sql.raw(`dicom_series se ${studyJoin}`);
  return sql.raw(`dicom_instances i join dicom_series se on se.project_id = i.project_id and se.series_uid = i.series_uid ${studyJoin}`);
}

/** The columns to read; a series' full attribute set only when includefield asks beyond the defaults (it is large). */
function selectList(level: QidoLevel, withTags: boolean): string {
  const st =
    'st.attrs as st_attrs, st.modalities, st.num_series, st.study_uid, ' +
    '(select sum(c.num_instances) from dicom_series c where c.project_id = st.project_id and c.study_uid = st.study_uid) as st_instances';
  if (level === 'study') {
    return withTags
      ? `${st}, (select t.tags from dicom_series x join dicom_series_tags t on t.project_id = x.project_id and t.series_uid = x.series_uid ` +
          'where x.project_id = st.project_id and x.study_uid = st.study_uid limit 1) as tags'
      : st;
  }
  const seTags = '(select t.tags from dicom_series_tags t where t.project_id = se.project_id and t.series_uid = se.series_uid) as tags';
  const se = `${st}, se.attrs as se_attrs, se.num_instances as se_instances, se.series_uid${withTags ? `, ${seTags}` : ''}`;
  if (level === 'series') return se;
  return `${se}, i.attrs as i_attrs, i.sop_uid, i.path`;
}

function orderBy(level: QidoLevel): string {
  if (level === 'study') return 'st.study_date, st.study_uid';
  if (level === 'series') return 'st.study_uid, se.series_number, se.series_uid';
  return 'se.series_uid, i.instance_number, i.sop_uid';
}

function inner(json: string): string {
  return json.length > 2 ? json.slice(1, -1) : '';
}

function rowJson(level: QidoLevel, r: Row, req: QidoRequest, extra: number[] | 'all'): string {
  const fields: string[] = [];
  const studyUrl = `${req.baseUrl}/studies/${r.study_uid}`;
  if (level === 'study') {
    fields.push(inner(r.st_attrs));
    fields.push(`"00080061":{"vr":"CS","Value":${JSON.stringify(r.modalities ? r.modalities.split('\\') : [])}}`);
    fields.push(`"00201206":{"vr":"IS","Value":[${Number(r.num_series)}]}`, `"00201208":{"vr":"IS","Value":[${Number(r.st_instances)}]}`);
    fields.push(`"00081190":{"vr":"UR","Value":[${JSON.stringify(studyUrl)}]}`);
  } else if (level === 'series') {
    if (!req.studyUid) fields.push(inner(r.st_attrs));
    else fields.push(`"0020000D":{"vr":"UI","Value":[${JSON.stringify(r.study_uid)}]}`);
    fields.push(inner(r.se_attrs!));
    fields.push(`"00201209":{"vr":"IS","Value":[${Number(r.se_instances)}]}`);
    fields.push(`"00081190":{"vr":"UR","Value":[${JSON.stringify(`${studyUrl}/series/${r.series_uid}`)}]}`);
  } else {
    if (!req.studyUid) fields.push(inner(r.st_attrs));
    else fields.push(`"0020000D":{"vr":"UI","Value":[${JSON.stringify(r.study_uid)}]}`);
    fields.push(inner(r.se_attrs!));
    fields.push(inner(r.i_attrs!));
    fields.push(`"00081190":{"vr":"UR","Value":[${JSON.stringify(`${studyUrl}/series/${r.series_uid}/instances/${r.sop_uid}`)}]}`);
  }
  fields.push(`"00080056":{"vr":"CS","Value":["ONLINE"]}`);
  let json = `{${fields.filter(Boolean).join(',')}}`;
  if (extra === 'all' || extra.length > 0) {
    // Rare path: attributes beyond the defaults come from the series' full attribute set.
    const obj = JSON.parse(json) as Record<string, unknown>;
    const tags = r.tags ? (JSON.parse(r.tags) as Record<string, unknown>) : {};
    if (extra === 'all') {
      for (const [k, v] of Object.entries(tags)) if (!(k in obj)) obj[k] = v;
    } else {
      for (const t of extra) {
        const k = tagHex(t);
        if (!(k in obj) && tags[k] !== undefined) obj[k] = tags[k];
      }
    }
    json = JSON.stringify(sortKeys(obj));
  }
  return json;
}

function sortKeys(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function badQuery(where: string, message: string): TesseraError {
  return new TesseraError('TESSERA_INVALID_REQUEST', `invalid QIDO-RS query: ${where} ${message}`, { details: [{ where: `query.${where}`, message }] });
}

function levelOfTag(tag: number): QidoLevel | undefined {
  if (STUDY_COLUMNS.has(tag) || STUDY_TAGS.includes(tag)) return 'study';
  if (SERIES_COLUMNS.has(tag) || SERIES_TAGS.includes(tag)) return 'series';
  if (INSTANCE_COLUMNS.has(tag) || INSTANCE_TAGS.includes(tag)) return 'instance';
  return undefined;
}

const RANK: Record<QidoLevel, number> = { study: 0, series: 1, instance: 2 };

/** The SQL condition of one attribute match (single value, wildcard, range, UID list). */
function matchCondition(level: QidoLevel, tag: number, value: string): RawBuilder<unknown> {
  const column = STUDY_COLUMNS.get(tag) ?? SERIES_COLUMNS.get(tag) ?? INSTANCE_COLUMNS.get(tag);
  const tagLevel = levelOfTag(tag);
  if (column && tagLevel && RANK[tagLevel] <= RANK[level]) return valueMatch(sql.raw(column.col), column.kind, value);
  const vr = tagInfo(tag)?.vr ?? 'UN';
  const kind: Kind = vr === 'PN' ? 'pn' : vr === 'DA' ? 'date' : vr === 'TM' ? 'time' : vr === 'UI' ? 'uid' : vr === 'IS' || vr === 'US' || vr === 'SS' || vr === 'UL' || vr === 'SL' ? 'int' : 'text';
  const path = `$."${tagHex(tag)}".Value[0]${kind === 'pn' ? '.Alphabetic' : ''}`;
  if (tagLevel && RANK[tagLevel] <= RANK[level]) {
    const src = tagLevel === 'study' ? 'st.attrs' : tagLevel === 'series' ? 'se.attrs' : 'i.attrs';
    return valueMatch(sql`json_extract(${sql.raw(src)}, ${path})`, kind, value);
  }
  if (tagLevel === 'instance' && level !== 'instance') {
    throw badQuery(tagLabel(tag), `is an instance-level attribute and cannot be matched in a ${level}-level query`);
  }
  // Any other attribute: matched against the series' full attribute set.
  if (level === 'study') {
    return sql`exists (select 1 from dicom_series x join dicom_series_tags t on t.project_id = x.project_id and t.series_uid = x.series_uid
      where x.project_id = st.project_id and x.study_uid = st.study_uid and ${valueMatch(sql`json_extract(t.tags, ${path})`, kind, value)})`;
  }
  return sql`exists (select 1 from dicom_series_tags t where t.project_id = se.project_id and t.series_uid = se.series_uid and ${valueMatch(sql`json_extract(t.tags, ${path})`, kind, value)})`;
}

function valueMatch(expr: RawBuilder<unknown>, kind: Kind, value: string): RawBuilder<unknown> {
  if (kind === 'uid') {
    const uids = value.split(/[\\,]/).map((s) => s.trim()).filter(Boolean);
    return uids.length === 1 ? sql`${expr} = ${uids[0]}` : sql`${expr} in (${sql.join(uids)})`;
  }
  if ((kind === 'date' || kind === 'time') && value.includes('-')) {
    const [from, to] = value.split('-').map((s) => s.replace(/[:.]/g, ''));
    const parts: RawBuilder<unknown>[] = [];
    if (from) parts.push(sql`${expr} >= ${from}`);
    // A time range's end covers the whole of its last unit (e.g. "-1200" includes 120059).
    if (to) parts.push(kind === 'time' ? sql`${expr} <= ${to + '999999'.slice(0, Math.max(0, 13 - to.length))}` : sql`${expr} <= ${to}`);
    return parts.length ? sql.join(parts, sql` and `) : sql`1 = 1`;
  }
  if (kind === 'int') {
    const n = Number(value);
    if (!Number.isFinite(n)) throw badQuery('value', `"${value}" is not a number`);
    return sql`${expr} = ${n}`;
  }
  if (kind === 'modalities') {
    const mods = value.split(/[\\,]/).filter(Boolean);
    return sql`(${sql.join(mods.map((m) => sql`('\\' || ${expr} || '\\') like ${`%\\${escapeLike(m)}\\%`} escape '!'`), sql` or `)})`;
  }
  if (value.includes('*') || value.includes('?')) {
    const pattern = escapeLike(value).replace(/\*/g, '%').replace(/\?/g, '_');
    return sql`${expr} like ${pattern} escape '!'`;
  }
  // Person names match case-insensitively, as most archives do.
  if (kind === 'pn') return sql`${expr} like ${escapeLike(value)} escape '!'`;
  return sql`${expr} = ${value}`;
}

function escapeLike(s: string): string {
  return s.replace(/[!%_]/g, '!$&');
}

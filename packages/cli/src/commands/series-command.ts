import type { AnswerOf, dataRoutes, DeleteSeries, DeleteSeriesResult, Series, SeriesDetail, SeriesFacets } from '@tessera/api';
import { CliError, type ApiClient } from '../api-client.ts';
import { canAsk, confirm, type Prompt } from '../confirm.ts';
import { bytes, printJson, table, truncate } from '../output.ts';
import { checkUids, filterQuery, type SeriesFilterOptions } from '../series-filters.ts';

export interface SeriesListOptions extends SeriesFilterOptions {
  sort?: string;
  order?: string;
  limit: number;
  offset: number;
  json?: boolean;
  project: string;
}

/** `tessera series`: searches the metadata index, newest first unless --sort says otherwise. */
export async function seriesListCommand(api: ApiClient, o: SeriesListOptions): Promise<number> {
  const page = await api.get<AnswerOf<typeof dataRoutes.list, 200>>('/api/series', { project: o.project, ...filterQuery(o), sort: o.sort, order: o.order, limit: o.limit, offset: o.offset });
  if (o.json) {
    printJson(page);
    return 0;
  }
  console.log(seriesTable(page.items));
  pageFooter(page.total, o.offset, page.items.length, 'series');
  return 0;
}

/** The series table of `tessera series` and `tessera datasets show`. */
export function seriesTable(items: Series[]): string {
  return table(['SERIES UID', 'MODALITY', 'PATIENT', 'STUDY DATE', 'DESCRIPTION', 'INSTANCES', 'COMPLETE'], items.map((s) => [
    s.series_instance_uid,
    s.modality,
    truncate(s.patient_name ?? s.patient_id, 30),
    s.study_date,
    truncate(s.series_description, 40),
    s.instances,
    s.complete ? 'yes' : 'arriving',
  ]));
}

/** Says on stderr how many there are in all and how to see the next page, when there are more. */
export function pageFooter(total: number, offset: number, shown: number, what: string): void {
  if (total === 0) console.error(`(no ${what})`);
  else if (total > offset + shown) console.error(`(${total} ${what} in all; see more with --offset ${offset + shown})`);
}

/** `tessera series show <uid>`: a series' attributes, its datasets and every DICOM attribute of its first instance. */
export async function seriesShowCommand(api: ApiClient, uid: string, o: { json?: boolean; project: string }): Promise<number> {
  checkUids([uid], 'series');
  const s = await api.get<SeriesDetail>(`/api/series/${uid}`, { project: o.project });
  if (o.json) {
    printJson(s);
    return 0;
  }
  const rows: [string, unknown][] = [
    ['series uid', s.series_instance_uid],
    ['study uid', s.study_instance_uid],
    ['project', s.project],
    ['datasets', s.datasets.join(', ') || '-'],
    ['modality', s.modality],
    ['series number', s.series_number],
    ['description', s.series_description],
    ['body part', s.body_part],
    ['manufacturer', s.manufacturer],
    ['patient', [s.patient_name, s.patient_id && `(${s.patient_id})`].filter(Boolean).join(' ') || null],
    ['study date', s.study_date],
    ['study description', s.study_description],
    ['series date', s.series_date],
    ['instances', `${s.instances} (${bytes(s.size_bytes)})`],
    ['complete', s.complete ? 'yes' : 'no: instances may still be arriving'],
    ['received', `${s.created_at}, last ${s.updated_at}`],
  ];
  if (s.thumbnail_error) rows.push(['thumbnail', `none: ${s.thumbnail_error}`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v === null || v === undefined || v === '' ? '-' : String(v)}`);
  const tags = Object.entries(s.tags);
  if (tags.length) {
    console.log('\nattributes:');
    const tw = Math.max(...tags.map(([k]) => k.length));
    for (const [k, v] of tags) console.log(`  ${k.padEnd(tw)}  ${attributeText(v)}`.trimEnd());
  }
  return 0;
}

/** A typed DICOM value on one line: multiple values joined by `\`, sequences as their item count, long values cut. */
export function attributeText(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) {
    if (v.some((x) => typeof x === 'object' && x !== null)) return `(sequence of ${v.length} item${v.length === 1 ? '' : 's'})`;
    return truncate(v.map((x) => attributeText(x)).join('\\'), 100) ?? '';
  }
  if (typeof v === 'object') return truncate(JSON.stringify(v), 100) ?? '';
  return truncate(String(v), 100) ?? '';
}

/**
 * `tessera series delete <uid...>`: deletes series with their files, index entries and
 * dataset memberships. Asks first on a terminal; without one, --yes is required.
 * Exits 1 when a series did not exist or the question was answered no.
 */
export async function seriesDeleteCommand(api: ApiClient, uids: string[], o: { yes?: boolean; json?: boolean; project: string }, prompt?: Prompt): Promise<number> {
  checkUids(uids, 'series');
  const unique = [...new Set(uids)];
  if (!o.yes) {
    if (!canAsk(prompt)) {
      throw new CliError(`refusing to delete ${unique.length} series without confirmation: there is no terminal to ask on. Add --yes to delete them.`, { exitCode: 2 });
    }
    const shown = await Promise.all(unique.slice(0, 10).map((uid) => api.get<SeriesDetail>(`/api/series/${uid}`, { project: o.project }).catch(() => undefined)));
    console.error(`Deleting from project ${o.project} removes the files, the index entries and the dataset memberships; it cannot be undone:`);
    unique.slice(0, 10).forEach((uid, i) => {
      const s = shown[i];
      console.error(s ? `  ${uid}  ${s.modality ?? '-'}  ${s.patient_name ?? s.patient_id ?? '-'}  ${s.series_description ?? ''}  ${s.instances} instance(s)` : `  ${uid}  (not found)`);
    });
    if (unique.length > 10) console.error(`  ... and ${unique.length - 10} more`);
    if (!(await confirm(`Delete ${unique.length} series?`, prompt))) {
      console.error('nothing deleted');
      return 1;
    }
  }
  const results: DeleteSeriesResult['results'] = [];
  for (let i = 0; i < unique.length; i += 10_000) {
    const r = await api.post<DeleteSeriesResult>('/api/series/delete', { series: unique.slice(i, i + 10_000), project: o.project } satisfies DeleteSeries);
    results.push(...r.results);
  }
  const failed = results.filter((r) => r.error !== undefined);
  if (o.json) printJson({ deleted: results.length - failed.length, results });
  else {
    for (const r of results) {
      if (r.error === undefined) console.log(`deleted series ${r.series} (${r.instances} instance${r.instances === 1 ? '' : 's'})`);
      else console.error(`error: ${r.error}`);
    }
  }
  return failed.length ? 1 : 0;
}

/** `tessera series facets`: how many matching series per modality, body part and manufacturer. */
export async function seriesFacetsCommand(api: ApiClient, o: SeriesFilterOptions & { json?: boolean; project: string }): Promise<number> {
  const f = await api.get<SeriesFacets>('/api/series/facets', { project: o.project, ...filterQuery(o) });
  if (o.json) {
    printJson(f);
    return 0;
  }
  const sections: [string, keyof SeriesFacets][] = [['MODALITY', 'modality'], ['BODY PART', 'body_part'], ['MANUFACTURER', 'manufacturer']];
  console.log(sections.map(([title, key]) => table([title, 'SERIES'], f[key].map((v) => [v.value ?? '(none)', v.count]))).join('\n\n'));
  return 0;
}

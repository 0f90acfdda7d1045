import type { AnswerOf, CreateDataset, Dataset, DatasetMembers, datasetRoutes, DatasetSeriesAdded, DatasetSeriesRemoved, DeletedDataset, UpdateDataset } from '@tessera/api';
import { CliError, type ApiClient } from '../api-client.ts';
import { printJson, table, truncate } from '../output.ts';
import { checkUids, filterBody, hasFilters, type SeriesFilterOptions } from '../series-filters.ts';
import { pageFooter, seriesTable } from './series-command.ts';

interface Common {
  json?: boolean;
  project: string;
}

/** Options of the commands that name series: by UID (`--series`), by the filters, or both. */
export interface MembersOptions extends SeriesFilterOptions, Common {
  series?: string[];
}

const path = (name: string): string => `/api/datasets/${encodeURIComponent(name)}`;

/** `tessera datasets`: the project's datasets with their series counts. */
export async function datasetsListCommand(api: ApiClient, o: Common & { query?: string; sort?: string; order?: string; limit: number; offset: number }): Promise<number> {
  const page = await api.get<AnswerOf<typeof datasetRoutes.list, 200>>('/api/datasets', { project: o.project, q: o.query, sort: o.sort, order: o.order, limit: o.limit, offset: o.offset });
  if (o.json) {
    printJson(page);
    return 0;
  }
  console.log(table(['NAME', 'SERIES', 'CREATED', 'UPDATED', 'DESCRIPTION'], page.items.map((d) => [d.name, d.series_count, d.created_at, d.updated_at, truncate(d.description, 60)])));
  pageFooter(page.total, o.offset, page.items.length, 'datasets');
  return 0;
}

/** `tessera datasets create <name>`: a new dataset, empty or with the series named by UID and/or filters. */
export async function datasetsCreateCommand(api: ApiClient, name: string, o: MembersOptions & { description?: string }): Promise<number> {
  const query = filterBody(o);
  const series = o.series ?? [];
  const d = await api.post<Dataset>('/api/datasets', {
    name,
    project: o.project,
    ...(o.description !== undefined ? { description: o.description } : {}),
    ...(series.length ? { series: checkUids(series, '--series') } : {}),
    ...(query ? { query } : {}),
  } satisfies CreateDataset);
  if (o.json) {
    printJson(d);
    return 0;
  }
  console.log(`created dataset ${d.name} in project ${d.project} with ${d.series_count} series`);
  if (query && d.series_count === 0 && !series.length) console.error('note: no series matched the filters; the dataset is empty (check them with `tessera series` and the same filters)');
  return 0;
}

/** `tessera datasets show <name>`: the dataset and a page of its series. */
export async function datasetsShowCommand(api: ApiClient, name: string, o: Common & { limit: number; offset: number }): Promise<number> {
  const d = await api.get<Dataset>(path(name), { project: o.project });
  const series = await api.get<AnswerOf<typeof datasetRoutes.listSeries, 200>>(`${path(name)}/series`, { project: o.project, limit: o.limit, offset: o.offset });
  if (o.json) {
    printJson({ ...d, series });
    return 0;
  }
  console.log(`dataset      ${d.name}`);
  console.log(`project      ${d.project}`);
  console.log(`description  ${d.description ?? '-'}`);
  console.log(`series       ${d.series_count}`);
  console.log(`created      ${d.created_at}`);
  console.log(`updated      ${d.updated_at}`);
  if (series.items.length) console.log(`\n${seriesTable(series.items)}`);
  if (series.total > o.offset + series.items.length) console.error(`(${series.total} series in all; see more with --offset ${o.offset + series.items.length})`);
  return 0;
}

/** `tessera datasets rename <old> <new>` */
export async function datasetsRenameCommand(api: ApiClient, from: string, to: string, o: Common): Promise<number> {
  const d = await api.patch<Dataset>(path(from), { name: to, project: o.project } satisfies UpdateDataset);
  if (o.json) printJson(d);
  else console.log(`renamed dataset ${from} to ${d.name} (${d.series_count} series)`);
  return 0;
}

/** `tessera datasets delete <name>`: the dataset goes, its series stay in the store. */
export async function datasetsDeleteCommand(api: ApiClient, name: string, o: Common): Promise<number> {
  const d = await api.get<Dataset>(path(name), { project: o.project });
  const r = await api.delete<DeletedDataset>(path(name), { project: o.project });
  if (o.json) printJson(r);
  else console.log(`deleted dataset ${d.name}; its ${d.series_count} series stay in the store (delete those with \`tessera series delete\`)`);
  return 0;
}

/** `tessera datasets add <name>` and `datasets remove <name>`: change the members, named by UID and/or filters. */
export async function datasetsMembersCommand(api: ApiClient, action: 'add' | 'remove', name: string, o: MembersOptions): Promise<number> {
  const series = o.series ?? [];
  if (!series.length && !hasFilters(o)) {
    throw new CliError(`name the series to ${action}: --series UID... or filters (--modality, --query, --study, --tag, ...); see tessera datasets ${action} --help`, { exitCode: 2 });
  }
  const query = filterBody(o);
  const body = { project: o.project, ...(series.length ? { series: checkUids(series, '--series') } : {}), ...(query ? { query } : {}) } satisfies DatasetMembers;
  const r =
    action === 'add'
      ? await api.post<DatasetSeriesAdded>(`${path(name)}/series`, body)
      : await api.delete<DatasetSeriesRemoved>(`${path(name)}/series`, {}, body);
  if (o.json) {
    printJson(r);
    return 0;
  }
  const n = 'added' in r ? r.added : r.removed;
  console.log(`${action === 'add' ? 'added' : 'removed'} ${n} series ${action === 'add' ? 'to' : 'from'} dataset ${name}; it has ${r.series_count} series`);
  return 0;
}

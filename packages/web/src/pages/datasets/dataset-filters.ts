// The Datasets page's filters and their three shapes: the page state, the query string of
// GET /api/series (and its facets), and the `query` body of POST /api/datasets. No React,
// no fetch: the conversions are tested on their own (dataset-filters.test.ts).
import type { Query } from '../../api.ts';

/** What the gallery shows: the sidebar's filters, the search text and the sort. */
export interface Filters {
  q: string;
  dataset: string;
  modality: string[];
  body_part: string[];
  manufacturer: string[];
  study_date_from: string;
  study_date_to: string;
  /** Tag filters as typed, `Keyword=value`. */
  tags: string[];
  /** `<column>:<asc|desc>`, as the Sort select's values. */
  sort: string;
}

export const EMPTY_FILTERS: Filters = { q: '', dataset: '', modality: [], body_part: [], manufacturer: [], study_date_from: '', study_date_to: '', tags: [], sort: 'created_at:desc' };

/** The facets the sidebar lists with counts, in the order it shows them. */
export type FacetKey = 'modality' | 'body_part' | 'manufacturer';
export const FACET_KEYS: readonly FacetKey[] = ['modality', 'body_part', 'manufacturer'];

export type SetFilter = <K extends keyof Filters>(key: K, value: Filters[K]) => void;

/** The facet's heading in the sidebar. */
export function facetTitle(k: FacetKey): string {
  return k === 'body_part' ? 'Body part' : k[0]!.toUpperCase() + k.slice(1);
}

/** The filters a URL opens the page with: `/datasets?dataset=<name>` (links from elsewhere) chooses a dataset. */
export function filtersFromSearch(search: string): Filters {
  const ds = new URLSearchParams(search).get('dataset');
  return ds ? { ...EMPTY_FILTERS, dataset: ds } : EMPTY_FILTERS;
}

/** The filters as the query of GET /api/series and /api/series/facets (lists comma-joined, tags repeated). */
export function filtersToQuery(f: Filters, project: string): Query {
  return {
    project,
    q: f.q.trim(),
    dataset: f.dataset,
    modality: f.modality.join(','),
    body_part: f.body_part.join(','),
    manufacturer: f.manufacturer.join(','),
    study_date_from: f.study_date_from,
    study_date_to: f.study_date_to,
    tag: f.tags,
  };
}

/** The filters as a JSON body (`query` of POST /api/datasets): only what is set, tags as an object. */
export function filtersToBody(f: Filters): Record<string, unknown> {
  const tags: Record<string, string> = {};
  for (const t of f.tags) {
    const i = t.indexOf('=');
    tags[t.slice(0, i)] = t.slice(i + 1);
  }
  const body: Record<string, unknown> = {
    dataset: f.dataset || undefined,
    modality: f.modality.length ? f.modality : undefined,
    body_part: f.body_part.length ? f.body_part : undefined,
    manufacturer: f.manufacturer.length ? f.manufacturer : undefined,
    study_date_from: f.study_date_from || undefined,
    study_date_to: f.study_date_to || undefined,
    q: f.q.trim() || undefined,
    tags: f.tags.length ? tags : undefined,
  };
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined));
}

/** The Sort select's value as the `sort` and `order` parameters of GET /api/series. */
export function sortParams(sort: string): { sort: string | undefined; order: string | undefined } {
  const [column, order] = sort.split(':');
  return { sort: column, order };
}

/** The filters with `value` ticked in facet `key` when it was not, unticked when it was. */
export function withFacetToggled(f: Filters, key: FacetKey, value: string): Filters {
  return { ...f, [key]: f[key].includes(value) ? f[key].filter((x) => x !== value) : [...f[key], value] };
}

/** Whether a typed tag filter has the `Keyword=value` shape the server takes. */
export function isTagFilter(text: string): boolean {
  return /^[A-Za-z0-9]+=.+/.test(text);
}

/** Whether a query narrows the project's series at all (the empty gallery says which of the two it is). */
export function isFiltered(query: Query, project: string): boolean {
  return Object.values(query).some((v) => v && (Array.isArray(v) ? v.length : v !== project));
}

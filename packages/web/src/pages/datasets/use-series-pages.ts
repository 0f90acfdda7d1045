import { useCallback, useEffect, useRef, useState } from 'react';
import { get, qs, type Answer, type Query, type Series } from '../../api.ts';
import { useLive } from '../../live.ts';
import { sortParams } from './dataset-filters.ts';

/** Series per request; index.html prefetches the first page with the same limit. */
export const SERIES_PAGE_SIZE = 200;
const PAGE = SERIES_PAGE_SIZE;
/** A page of GET /api/series. */
type SeriesPage = Answer<'data', 'list'>;

/** index.html asks for the first page of the default view while the code loads; taken once, when the URL is the same. */
function takePrefetched(path: string): Promise<SeriesPage | null> {
  const w = window as unknown as { __tesseraPrefetch?: { url: string; body: Promise<SeriesPage | null> } };
  const p = w.__tesseraPrefetch;
  if (!p || p.url !== path) return Promise.resolve(null);
  w.__tesseraPrefetch = undefined;
  return p.body;
}

export interface SeriesPages {
  /** How many series match; undefined until the first page of the query is in. */
  total: number | undefined;
  /** Why the last page could not be loaded, until one loads. */
  error: string | undefined;
  /** The series at gallery position `i`, or undefined while its page is not loaded. */
  itemAt: (i: number) => Series | undefined;
  /** The UIDs of every series loaded so far (what Ctrl+A selects). */
  loadedUids: () => Set<string>;
  /** The grid's range in view changed: loads the pages it needs (VirtualGrid's onRange). */
  ensureRange: (first: number, last: number) => void;
  /** Fetches the pages in view again, keeping the old ones on screen meanwhile. */
  refresh: () => void;
}

/**
 * The series matching `query`, loaded lazily a page at a time as the grid scrolls.
 * A generation number drops answers to a query (or a refresh) that is no longer current.
 */
export function useSeriesPages({ query, sort, queryKey }: { query: Query; sort: string; queryKey: string }): SeriesPages {
  const [total, setTotal] = useState<number | undefined>(undefined);
  const [error, setError] = useState<string | undefined>(undefined);
  const pages = useRef(new Map<number, Series[]>());
  const requested = useRef(new Map<number, number>());
  const generation = useRef(0);
  const [, setTick] = useState(0);
  const range = useRef<[number, number]>([0, 0]);

  const loadPage = useCallback(
    (page: number, gen: number) => {
      requested.current.set(page, gen);
      const path = `/api/series${qs({ ...query, ...sortParams(sort), limit: PAGE, offset: page * PAGE })}`;
      takePrefetched(path).then(
        (hit) => hit ?? get<SeriesPage>(path),
      ).then(
        (r) => {
          if (gen !== generation.current) return;
          pages.current.set(page, r.items);
          setTotal(r.total);
          setError(undefined);
          setTick((t) => t + 1);
        },
        (err: unknown) => {
          if (gen !== generation.current) return;
          requested.current.delete(page);
          setError(err instanceof Error ? err.message : String(err));
        },
      );
    },
    [query, sort],
  );

  const ensureRange = useCallback(
    (first: number, last: number, gen = generation.current) => {
      range.current = [first, last];
      for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) if (requested.current.get(p) !== gen) loadPage(p, gen);
    },
    [loadPage],
  );

  // A new query: start over (the old items stay until the first page of the new one comes).
  useEffect(() => {
    const gen = ++generation.current;
    pages.current = new Map();
    requested.current = new Map();
    setTotal(undefined);
    loadPage(0, gen);
  }, [queryKey, loadPage]);

  // Something changed in the store: fetch the pages in view again, keep showing the old ones meanwhile.
  const refresh = useCallback(() => {
    const gen = ++generation.current;
    const keep = new Set<number>();
    const [first, last] = range.current;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) keep.add(p);
    for (const p of [...pages.current.keys()]) if (!keep.has(p)) pages.current.delete(p);
    requested.current = new Map();
    if (keep.size === 0) keep.add(0);
    for (const p of keep) loadPage(p, gen);
  }, [loadPage]);
  useLive(['series', 'datasets'], refresh);

  const itemAt = (i: number): Series | undefined => pages.current.get(Math.floor(i / PAGE))?.[i % PAGE];
  const loadedUids = () => {
    const all = new Set<string>();
    for (const page of pages.current.values()) for (const x of page) all.add(x.series_instance_uid);
    return all;
  };

  return { total, error, itemAt, loadedUids, ensureRange, refresh };
}

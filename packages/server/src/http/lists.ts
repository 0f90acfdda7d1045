import type { Order } from '@tessera/api';

export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

/**
 * A `sort` value to a field and an order: `-field` is descending; a bare field takes
 * `order`, else `bareOrder` (ascending, except where a list kept an older default).
 */
export function parseSort<F extends string>(sort: string | undefined, order: Order | undefined, dflt: string, bareOrder: Order = 'asc'): { field: F; order: Order } {
  const s = sort ?? dflt;
  if (s.startsWith('-')) return { field: s.slice(1) as F, order: 'desc' };
  return { field: s as F, order: order ?? bareOrder };
}

/** Sorts in memory by one field: strings by locale, numbers and ISO dates by value, nulls last; ties keep their order. */
export function sortBy<T>(items: T[], value: (item: T) => string | number | null | undefined, order: Order): T[] {
  const sign = order === 'asc' ? 1 : -1;
  return items
    .map((item, i) => ({ item, i, v: value(item) }))
    .sort((a, b) => {
      if (a.v === b.v) return a.i - b.i;
      if (a.v === null || a.v === undefined) return 1;
      if (b.v === null || b.v === undefined) return -1;
      const c = typeof a.v === 'number' && typeof b.v === 'number' ? a.v - b.v : String(a.v).localeCompare(String(b.v));
      return c === 0 ? a.i - b.i : sign * c;
    })
    .map((x) => x.item);
}

/** One page of a list held in memory, as every list answers: `{items, total, limit, offset}`. */
export function pageOf<T>(all: T[], limit: number, offset: number): { items: T[]; total: number; limit: number; offset: number } {
  return { items: all.slice(offset, offset + limit), total: all.length, limit, offset };
}

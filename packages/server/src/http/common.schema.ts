import { Type } from '@sinclair/typebox';

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'Stable error code, see docs/reference/errors.md' }),
      message: Type.String(),
      details: Type.Array(Type.Object({ where: Type.String(), message: Type.String() })),
    }),
  },
  { $id: 'ErrorResponse' },
);

export const Paging = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
});

export const ProjectQuery = Type.Object({
  project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
});

export const errorResponses = {
  400: { $ref: 'ErrorResponse#' },
  404: { $ref: 'ErrorResponse#' },
  409: { $ref: 'ErrorResponse#' },
  422: { $ref: 'ErrorResponse#' },
};

export function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(ms).toISOString();
}

export type Order = 'asc' | 'desc';

/**
 * The `sort` parameter of a list: one of `fields`, or `-field` for descending. Validated
 * at the boundary: anything else is a 400 that names the value and the fields.
 */
export function SortParam(fields: readonly string[], dflt: string) {
  return Type.Optional(
    Type.Unsafe<string>({
      type: 'string',
      enum: [...fields, ...fields.map((f) => `-${f}`)],
      description: `Sort by ${fields.join(', ')}; \`-field\` for descending. Default \`${dflt}\`.`,
    }),
  );
}

/** `order` (asc or desc): how a `sort` field without `-` is ordered. */
export const OrderParam = Type.Optional(Type.Unsafe<Order>({ type: 'string', enum: ['asc', 'desc'], description: 'Order of a `sort` field given without `-`.' }));

/** `limit` and `offset` of a list. */
export function PageParams(defaultLimit: number, maxLimit: number) {
  return {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: maxLimit, default: defaultLimit, description: `At most ${maxLimit}; default ${defaultLimit}.` })),
    offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
  };
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

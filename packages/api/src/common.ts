import { Type, type ObjectOptions, type Static, type TObject, type TProperties, type TSchema } from '@sinclair/typebox';

/**
 * An answer object: only the declared properties. The server serializes answers through
 * their schemas, so a property that is not declared here does not reach a client; in
 * tests every answer is also validated against its schema, so a handler that returns an
 * undeclared property fails loudly instead of losing it.
 */
export function Obj<T extends TProperties>(properties: T, options: ObjectOptions = {}): TObject<T> {
  return Type.Object(properties, { additionalProperties: false, ...options });
}

/** A free-form JSON object (a workflow's form values, a DICOM JSON dataset). */
export const AnyObject = (description: string) => Type.Record(Type.String(), Type.Unknown(), { description });

/** `T` or `null`. */
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** An ISO 8601 date-time in UTC (e.g. `2026-12-06T14:27:58.000Z`). */
export const DateTime = (description?: string) => Type.String({ format: 'date-time', ...(description ? { description } : {}) });

export const ErrorDetail = Obj({
  where: Type.String({ description: 'The field, parameter, task or file at fault (e.g. `workflow_form.threshold`).' }),
  message: Type.String(),
});

/** The body of every error answer. */
export const ErrorResponse = Obj(
  {
    error: Obj({
      code: Type.String({ description: 'Stable error code, see docs/reference/errors.md' }),
      message: Type.String({ description: 'What happened, why, and what to do, in words for a person.' }),
      details: Type.Array(ErrorDetail),
    }),
  },
  { $id: 'ErrorResponse', description: 'An error: `{ error: { code, message, details } }`.' },
);

export type ErrorResponse = Static<typeof ErrorResponse>;
export type ErrorDetail = Static<typeof ErrorDetail>;

/** The error answers of the given statuses. */
export function errors<const S extends readonly number[]>(...statuses: S): { [K in S[number]]: typeof ErrorResponse } {
  return Object.fromEntries(statuses.map((s) => [s, ErrorResponse])) as { [K in S[number]]: typeof ErrorResponse };
}

/** A list's page: `{items, total, limit, offset}`. */
export function PageOf<T extends TSchema>(item: T, description?: string) {
  return Obj(
    {
      items: Type.Array(item),
      total: Type.Integer({ description: 'How many match the filters, before paging.' }),
      limit: Type.Integer(),
      offset: Type.Integer(),
    },
    description ? { description } : {},
  );
}

export const ProjectQuery = Type.Object({
  project: Type.Optional(Type.String({ description: 'Project name (default "admin").' })),
});

export const Paging = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  offset: Type.Optional(Type.Integer({ minimum: 0, default: 0 })),
});

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

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

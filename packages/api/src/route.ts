import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { ErrorResponse } from './common.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * How a route names the project it acts in, so that access control finds it before the
 * handler runs (packages/server/src/auth/access-control.ts):
 * - `path`: a path parameter (`/projects/:project/dicom-web/...`, `/api/projects/:name`);
 * - `query`: a query parameter; when absent, the default project, or with `absent: 'all'`
 *   every project the caller may see (lists: runs, jobs, instances, events);
 * - `body`: a property of the JSON body, the default project when absent;
 * - `resource`: the resource the path names belongs to one (a run, a job): the server
 *   looks it up;
 * - `default`: acts in the default project, always (`/dicom-web/...`);
 * - `none`: the route is not about one project (health, the catalog, the platform).
 */
export type ProjectScope =
  | { in: 'path'; name: string }
  | { in: 'query'; name: string; absent?: 'default' | 'all' }
  | { in: 'body'; name: string }
  | { in: 'resource'; resource: string }
  | { in: 'default' }
  | { in: 'none' };

/** A member's role in a project, named as in Kaapana: a principal investigator may do all a scientist may, and more. */
export type ProjectRole = 'scientist' | 'principal-investigator';

/** Project roles from least to most rights. */
export const PROJECT_ROLES: readonly ProjectRole[] = ['scientist', 'principal-investigator'];

/**
 * Who may call a route. Access control enforces it for every route in one place, from this
 * field, before the handler runs:
 * - `public`: anyone, signed in or not (health, this document, signing in);
 * - `signed-in`: any signed-in user (their own account and tokens, the catalog);
 * - `admin`: a platform admin (users, projects, installing extensions, settings);
 * - `member`: a member of the route's project (its {@link ProjectScope}) with at least
 *   this role; a platform admin counts as a principal investigator of every project. A
 *   caller who is not a member gets 404, as if the project or resource did not exist.
 */
export type Access = { who: 'public' } | { who: 'signed-in' } | { who: 'admin' } | { who: 'member'; role: ProjectRole };

export const PUBLIC = { who: 'public' } as const satisfies Access;
export const SIGNED_IN = { who: 'signed-in' } as const satisfies Access;
export const ADMIN = { who: 'admin' } as const satisfies Access;
/** Members of the route's project: read data, upload, run workflows, launch and open applications, read results. */
export const SCIENTIST = { who: 'member', role: 'scientist' } as const satisfies Access;
/** Principal investigators of the route's project: members, datasets, enabled extensions, deleting data. */
export const PRINCIPAL_INVESTIGATOR = { who: 'member', role: 'principal-investigator' } as const satisfies Access;

declare const mediaBrand: unique symbol;
/** The type of an answer that is not JSON (a file, a stream, a DICOM part): what a handler sends is not checked by TypeScript. */
export interface MediaBody {
  readonly [mediaBrand]: true;
}

/** The marker on a schema that stands for a non-JSON answer, with its media types. */
export const MEDIA_KEY = 'x-tessera-media';

/**
 * A non-JSON answer: its media types (e.g. `application/zip`, `text/plain`) and what it
 * is. An empty list of types means no body (204, or a HEAD answer).
 */
export function Media(types: readonly string[], description: string): TUnsafe<MediaBody> {
  return Type.Unsafe<MediaBody>({ [MEDIA_KEY]: [...types], description });
}

/** No body at all (204 No Content). */
export function NoContent(description: string): TUnsafe<MediaBody> {
  return Media([], description);
}

/** True when the schema stands for a non-JSON answer or no body. */
export function isMedia(schema: TSchema): boolean {
  return Array.isArray((schema as Record<string, unknown>)[MEDIA_KEY]);
}

/** The media types of a non-JSON answer. */
export function mediaTypes(schema: TSchema): string[] {
  return ((schema as Record<string, unknown>)[MEDIA_KEY] as string[] | undefined) ?? [];
}

/** One route of the HTTP API: what it takes, every answer it can give, its project scope and who may call it. */
export interface RouteContract {
  method: HttpMethod;
  /** Fastify's path syntax: `/api/runs/:id`, `/api/results/:run/files/*`. */
  url: string;
  /** Unique and stable: the name a generated client gives the call. */
  operationId: string;
  tags: readonly string[];
  summary: string;
  description?: string;
  project: ProjectScope;
  access: Access;
  params?: TSchema;
  querystring?: TSchema;
  body?: TSchema;
  headers?: TSchema;
  /** Body media types other than JSON that the route reads itself (uploads, STOW-RS); the body is then not parsed by the server. */
  consumes?: readonly string[];
  /** Every status the route answers, with its body: a JSON Schema, or {@link Media} for a non-JSON body. */
  response: Readonly<Record<number, TSchema>>;
}

/**
 * Declares a route; `const` keeps the literal types that the server's handler typing and
 * the clients' types need. The answers access control gives are added from the route's
 * rule, so that no route forgets them: 401 (not signed in) and 403 (role too low, or a
 * password to change first) to every route that is not public, 404 (a project the caller
 * is not a member of) to project members' routes.
 */
export function defineRoute<const R extends RouteContract>(route: R): R {
  if (route.access.who === 'public') return route;
  const added: Record<number, TSchema> = { 401: ErrorResponse, 403: ErrorResponse };
  if (route.access.who === 'member') added[404] = ErrorResponse;
  return { ...route, response: { ...added, ...route.response } };
}

/** The JSON body of a route's answer with this status. */
export type AnswerOf<R extends RouteContract, S extends keyof R['response']> = R['response'][S] extends TSchema ? Static<R['response'][S]> : never;

/** The JSON body a route takes. */
export type BodyOf<R extends RouteContract> = R['body'] extends TSchema ? Static<R['body']> : never;

/** The query parameters a route takes. */
export type QueryOf<R extends RouteContract> = R['querystring'] extends TSchema ? Static<R['querystring']> : never;

import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/**
 * How a route names the project it acts in, so that access control can find it before
 * the handler runs:
 * - `path`: a path parameter (`/projects/:project/dicom-web/...`, `/api/projects/:name`);
 * - `query`: a query parameter, the default project when absent;
 * - `body`: a property of the JSON body, the default project when absent;
 * - `resource`: the resource the path names belongs to one (a run, a job, an instance);
 * - `default`: acts in the default project, always (`/dicom-web/...`);
 * - `none`: the route is not about one project (health, the catalog, the platform).
 */
export type ProjectScope =
  | { in: 'path'; name: string }
  | { in: 'query'; name: string }
  | { in: 'body'; name: string }
  | { in: 'resource'; resource: string }
  | { in: 'default' }
  | { in: 'none' };

/**
 * Who may call a route. Access control (users, projects and roles) refines this per
 * route; until it exists, `unrestricted` says what is true today: anyone who reaches the
 * server's port. `public` routes stay open when sign-in arrives (health, the sign-in page).
 */
export type Access = { who: 'public' } | { who: 'unrestricted' };

/** What every route of this release carries until access control decides per route. */
export const UNRESTRICTED: Access = { who: 'unrestricted' };
export const PUBLIC: Access = { who: 'public' };

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

/** Declares a route; `const` keeps the literal types that the server's handler typing and the clients' types need. */
export function defineRoute<const R extends RouteContract>(route: R): R {
  return route;
}

/** The JSON body of a route's answer with this status. */
export type AnswerOf<R extends RouteContract, S extends keyof R['response']> = R['response'][S] extends TSchema ? Static<R['response'][S]> : never;

/** The JSON body a route takes. */
export type BodyOf<R extends RouteContract> = R['body'] extends TSchema ? Static<R['body']> : never;

/** The query parameters a route takes. */
export type QueryOf<R extends RouteContract> = R['querystring'] extends TSchema ? Static<R['querystring']> : never;

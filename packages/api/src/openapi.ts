import type { TSchema } from '@sinclair/typebox';
import { isMedia, mediaTypes, type RouteContract } from './route.ts';

type Json = Record<string, unknown>;

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content', 400: 'Bad request: the message names what is wrong',
  404: 'Not found', 406: 'Not acceptable', 409: 'Conflict with the current state', 413: 'Too large', 415: 'Unsupported media type',
  422: 'Unprocessable', 500: 'Internal error', 503: 'A component the server needs is not available (Docker engine, disk); retrying later may help',
};

/** Fastify's `:name` and `*` path syntax to OpenAPI's `{name}`; `*` becomes `{path}`. */
export function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{path}');
}

/** The properties of an object schema, following `allOf` (TypeBox's Intersect). */
function objectProperties(schema: Json | undefined): { props: Record<string, Json>; required: Set<string> } {
  const props: Record<string, Json> = {};
  const required = new Set<string>();
  if (!schema) return { props, required };
  for (const part of (schema.allOf as Json[] | undefined) ?? [schema]) {
    Object.assign(props, (part.properties as Record<string, Json> | undefined) ?? {});
    for (const r of (part.required as string[] | undefined) ?? []) required.add(r);
  }
  return { props, required };
}

/** A schema as plain JSON (TypeBox keeps its own markers under symbols, which this drops). */
function plain(schema: TSchema | undefined): Json | undefined {
  return schema === undefined ? undefined : (JSON.parse(JSON.stringify(schema)) as Json);
}

/**
 * Hoists every schema with an `$id` into `components.schemas` and puts a `$ref` where it
 * was, so that each entity has one name in the document and in generated clients.
 */
function hoist(value: unknown, components: Record<string, Json>): unknown {
  if (Array.isArray(value)) return value.map((v) => hoist(v, components));
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Json;
  const out: Json = {};
  for (const [k, v] of Object.entries(obj)) if (k !== '$id') out[k] = hoist(v, components);
  const id = obj.$id;
  if (typeof id === 'string') {
    const name = id.replace(/[^A-Za-z0-9._-]/g, '_');
    const known = components[name];
    if (known && JSON.stringify(known) !== JSON.stringify(out)) throw new Error(`two different schemas have the $id "${id}"; give one of them another name`);
    components[name] = out;
    return { $ref: `#/components/schemas/${name}` };
  }
  return out;
}

export interface OpenApiOptions {
  title: string;
  version: string;
  description: string;
  tags: readonly { name: string; description?: string }[];
}

/** The OpenAPI 3.1 document of a set of routes. */
export function openApiDocument(routes: readonly RouteContract[], options: OpenApiOptions): Json {
  const components: Record<string, Json> = {};
  const paths: Record<string, Record<string, Json>> = {};
  const ids = new Set<string>();
  for (const r of routes) {
    if (ids.has(r.operationId)) throw new Error(`operationId "${r.operationId}" is used twice`);
    ids.add(r.operationId);
    const path = openApiPath(r.url);
    const parameters: Json[] = [];
    const pathParams = objectProperties(plain(r.params));
    for (const [name, schema] of Object.entries(pathParams.props)) {
      const { description, ...rest } = schema;
      parameters.push({ name: name === '*' ? 'path' : name, in: 'path', required: true, schema: hoist(rest, components), ...(description ? { description } : {}) });
    }
    for (const [where, schema] of [['query', r.querystring], ['header', r.headers]] as const) {
      const { props, required } = objectProperties(plain(schema));
      for (const [name, s] of Object.entries(props)) {
        const { description, ...rest } = s;
        parameters.push({ name, in: where, required: required.has(name), schema: hoist(rest, components), ...(description ? { description } : {}) });
      }
    }
    const responses: Json = {};
    for (const [status, schema] of Object.entries(r.response)) {
      const s = plain(schema)!;
      const description = (typeof s.description === 'string' ? s.description : undefined) ?? STATUS_TEXT[Number(status)] ?? `HTTP ${status}`;
      if (isMedia(schema)) {
        const types = mediaTypes(schema);
        responses[status] = types.length === 0 ? { description } : { description, content: Object.fromEntries(types.map((t) => [t, {}])) };
      } else {
        responses[status] = { description, content: { 'application/json': { schema: hoist(s, components) } } };
      }
    }
    const content: Json = {};
    if (r.body) content['application/json'] = { schema: hoist(plain(r.body), components) };
    for (const t of r.consumes ?? []) content[t] = {};
    const op: Json = {
      operationId: r.operationId,
      tags: [...r.tags],
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(Object.keys(content).length ? { requestBody: { required: true, content } } : {}),
      responses,
      'x-tessera-project': r.project,
      'x-tessera-access': r.access,
    };
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: options.title, version: options.version, description: options.description },
    tags: options.tags.map((t) => ({ ...t })),
    paths,
    components: { schemas: components },
  };
}

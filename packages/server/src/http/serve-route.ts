import type { TSchema } from '@sinclair/typebox';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  ContextConfigDefault,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteGenericInterface,
  RouteHandlerMethod,
  RouteShorthandOptions,
} from 'fastify';
import { isMedia, type MediaBody, type RouteContract } from '@tessera/api';

/** The route's JSON answers, for typing what a handler returns; none when an answer is a file or a stream. */
type JsonAnswers<R extends RouteContract> = { [K in keyof R['response']]: R['response'][K] extends { static: MediaBody } ? 'media' : 'json' }[keyof R['response']] extends 'json'
  ? R['response']
  : undefined;

/** The Fastify schema a contract stands for, at the type level: request parts and JSON answers. */
export interface SchemaOf<R extends RouteContract> {
  params: R['params'];
  querystring: R['querystring'];
  body: R['body'];
  headers: R['headers'];
  response: JsonAnswers<R>;
}

/** A handler of a contract's route: its request is typed from the contract, and so is what it returns when every answer is JSON. */
export type ContractHandler<R extends RouteContract> = RouteHandlerMethod<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  RouteGenericInterface,
  ContextConfigDefault,
  SchemaOf<R>,
  TypeBoxTypeProvider
>;

/** Where a route's contract is kept on its Fastify route (`routeOptions.config`). */
export interface ContractConfig {
  contract?: RouteContract;
}

/** Options of a route that are not part of the contract: how the server reads it. */
export type ServeOptions = Pick<RouteShorthandOptions, 'bodyLimit' | 'onRequest' | 'preHandler' | 'preValidation'> & {
  /** Also answer HEAD from this GET route (Fastify's default for GET routes). */
  exposeHeadRoute?: boolean;
};

/** Copies a schema without `$id`s: named schemas appear in many routes, and Fastify compiles each route on its own. */
function anonymous(schema: TSchema | undefined): unknown {
  if (schema === undefined) return undefined;
  return JSON.parse(JSON.stringify(schema), (key, value: unknown) => (key === '$id' ? undefined : value));
}

/**
 * Declares a route from its contract: Fastify validates the request against the
 * contract's schemas and serializes JSON answers through them (what a schema does not
 * declare is not sent). Non-JSON answers (files, streams) are declared in the contract
 * for the OpenAPI document and sent as they are.
 */
export function serve<const R extends RouteContract>(app: FastifyInstance, contract: R, handler: ContractHandler<R>, options: ServeOptions = {}): void {
  const response: Record<number, unknown> = {};
  for (const [status, schema] of Object.entries(contract.response)) {
    if (!isMedia(schema)) response[Number(status)] = anonymous(schema);
  }
  app.route({
    method: contract.method,
    url: contract.url,
    schema: {
      ...(contract.params ? { params: anonymous(contract.params) } : {}),
      ...(contract.querystring ? { querystring: anonymous(contract.querystring) } : {}),
      ...(contract.body ? { body: anonymous(contract.body) } : {}),
      ...(contract.headers ? { headers: anonymous(contract.headers) } : {}),
      response,
    },
    config: { contract } satisfies ContractConfig as object,
    handler: handler as RouteHandlerMethod,
    ...options,
  });
}

/** Paths that belong to the HTTP API; everything else is the web UI's or the application proxy's. */
const API_PATH = /^\/(api|dicom-web|projects\/[^/]+\/dicom-web)(\/|$)/;

/**
 * Refuses, at start, an API route that is not declared from the contract: a new route
 * cannot ship without its schemas and a decision on who may call it.
 */
export function requireContracts(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const urls = [route.url, route.path].filter((u): u is string => typeof u === 'string');
    if (urls.some((u) => API_PATH.test(u)) && !(route.config as ContractConfig | undefined)?.contract) {
      throw new Error(`${String(route.method)} ${route.url} is an API route without a contract: declare it in packages/api and serve it with serve()`);
    }
  });
}

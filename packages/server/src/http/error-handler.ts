import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';
import { TesseraError } from '@tessera/model';

/** At most this much of a client's path is quoted back in an error. */
const QUOTED_PATH = 200;

function quotePath(url: string): string {
  const path = url.split('?')[0] ?? '';
  return path.length > QUOTED_PATH ? `${path.slice(0, QUOTED_PATH)}... (${path.length} characters)` : path;
}

/**
 * Fastify's router refusals, in Tessera's error format (Fastify's own is `{error, code,
 * message, statusCode}`): a path whose percent-encoding is broken (`%ZZ`, `%C0%AE`) and a
 * path parameter longer than the router takes are 400 `TESSERA_INVALID_REQUEST`.
 */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
  const path = quotePath(request.raw.url ?? '');
  const message =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? `the path ${path} has a component longer than ${MAX_PARAM_LENGTH} characters, which no name, id or UID of the API is; check the URL`
      : err.code === 'FST_ERR_BAD_URL'
        ? `the path ${path} is not a valid URL: a % must start a percent-encoded UTF-8 byte (%2F); encode the path's components with encodeURIComponent`
        : `the request was refused: ${err.message}`;
  void reply.status(400).send({ error: { code: 'TESSERA_INVALID_REQUEST', message, details: [{ where: 'path', message }] } });
};

/** The router's limit on one path parameter (Fastify's default). */
export const MAX_PARAM_LENGTH = 100;

/**
 * What a connection gets when Node's HTTP parser refuses a request before Fastify sees it
 * (headers over 16 KB, a request line that is not HTTP, a request timeout): an answer in
 * Tessera's error format, then the connection is closed.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let code = 'TESSERA_INVALID_REQUEST';
  let message = `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'}); it was not read`;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    message = 'the request line and headers are over 16 KB (a very long URL or query); send long values in a JSON body, or in several requests';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    code = 'TESSERA_REQUEST_TIMEOUT';
    message = 'the request line and headers did not arrive in time (TESSERA_HTTP_HEADERS_TIMEOUT_SECONDS); the connection is closed';
  }
  if (socket.writable) {
    const body = JSON.stringify({ error: { code, message, details: [] } });
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(err);
}

/** Answers every error with `{ error: { code, message, details } }` and the right status. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | TesseraError | Error, request, reply) => {
    // An upload refused before its body was read whole: the rest of the body is still on the
    // socket, so the connection cannot carry another request.
    if (!request.raw.complete) reply.header('connection', 'close');
    // An error is JSON, whatever the handler had set for its answer (an image, a multipart stream).
    reply.type('application/json; charset=utf-8');
    if (err instanceof TesseraError) {
      if (err.kind !== 'user') request.log.error({ err, route: `${request.method} ${request.routeOptions.url ?? request.url}` }, err.message);
      return reply.status(err.status).send(err.toJSON());
    }
    const fe = err as FastifyError;
    if (fe.validation) {
      const details = fe.validation.map((v) => {
        const segments = (v.instancePath || '').split('/').filter(Boolean);
        const path = segments.join('.');
        const missing = (v.params as { missingProperty?: string }).missingProperty;
        const extra = (v.params as { additionalProperty?: string }).additionalProperty;
        const allowed = (v.params as { allowedValues?: unknown[] }).allowedValues;
        const where = [fe.validationContext, path, missing ?? extra].filter(Boolean).join('.');
        let message = extra ? 'is not a known property' : allowed ? `must be one of ${allowed.join(', ')}` : (v.message ?? 'is invalid');
        // A query or path parameter's bad value is named (bodies can be large).
        if (!missing && !extra && (fe.validationContext === 'querystring' || fe.validationContext === 'params')) {
          const got = valueAt(fe.validationContext === 'querystring' ? request.query : request.params, segments);
          if (got !== undefined) message += ` (got ${JSON.stringify(got)})`;
        }
        return { where, message };
      });
      return reply.status(400).send({
        error: {
          code: 'TESSERA_INVALID_REQUEST',
          message: `invalid request: ${details.map((d) => `${d.where} ${d.message}`).join('; ')}`,
          details,
        },
      });
    }
    if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) {
      // Fastify's own refusals (a body of a type no parser takes, a body over the limit) keep their meaning in the code.
      const code = fe.statusCode === 415 ? 'TESSERA_UNSUPPORTED_MEDIA_TYPE' : fe.statusCode === 413 ? 'TESSERA_PAYLOAD_TOO_LARGE' : 'TESSERA_INVALID_REQUEST';
      return reply.status(fe.statusCode).send({ error: { code, message: fe.message, details: [] } });
    }
    request.log.error({ err, route: `${request.method} ${request.routeOptions.url ?? request.url}` }, `unexpected error: ${err.message}`);
    return reply.status(500).send({ error: { code: 'TESSERA_INTERNAL', message: `internal error: ${err.message}`, details: [] } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      error: { code: 'TESSERA_NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}; see /api/openapi.json`, details: [] },
    }),
  );
}

function valueAt(root: unknown, segments: string[]): unknown {
  let v = root;
  for (const k of segments) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : undefined;
}

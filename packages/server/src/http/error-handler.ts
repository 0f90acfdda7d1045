import type { FastifyError, FastifyInstance } from 'fastify';
import { TesseraError } from '@tessera/model';

/** Answers every error with `{ error: { code, message, details } }` and the right status. */
export function installErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | TesseraError | Error, request, reply) => {
    // An upload refused before its body was read whole: the rest of the body is still on the
    // socket, so the connection cannot carry another request.
    if (!request.raw.complete) reply.header('connection', 'close');
    if (err instanceof TesseraError) {
      if (err.kind !== 'user') request.log.error({ err }, err.message);
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
    request.log.error({ err }, 'unexpected error');
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

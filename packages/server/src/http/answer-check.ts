import type { TSchema } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isMedia, mediaTypes, type RouteContract } from '@tessera/api';
import { ajvErrorsToDetails, createAjv, TesseraError } from '@tessera/model';
import type { ContractConfig } from './serve-route.ts';

function contractOf(request: FastifyRequest): RouteContract | undefined {
  return (request.routeOptions.config as ContractConfig | undefined)?.contract;
}

/** Any route with a body may answer 408: the HTTP limits cut off a stalled or trickling body (http-limits.ts). */
const REQUEST_TIMEOUT = 408;

function broken(contract: RouteContract, message: string): TesseraError {
  return new TesseraError('TESSERA_INTERNAL', `${contract.method} ${contract.url} broke its contract (packages/api): ${message}`);
}

/**
 * Checks every answer against the route's contract: its status is declared, and a JSON
 * body matches the status's schema exactly (no undeclared property, which the serializer
 * would silently drop). A broken contract answers 500 naming the route and the field.
 * On in tests (TESSERA_CHECK_ANSWERS=1), where the whole suite then proves the contract
 * against what the handlers really return; off in production, where it would cost a
 * validation per answer.
 */
export function checkAnswersAgainstContracts(app: FastifyInstance): void {
  const ajv = createAjv();
  const compiled = new WeakMap<TSchema, ReturnType<typeof ajv.compile>>();
  const validator = (schema: TSchema) => {
    let v = compiled.get(schema);
    if (!v) {
      v = ajv.compile(JSON.parse(JSON.stringify(schema), (key, value: unknown) => (key === '$id' ? undefined : value)) as object);
      compiled.set(schema, v);
    }
    return v;
  };

  app.addHook('preSerialization', async (request, reply, payload) => {
    const contract = contractOf(request);
    if (!contract || reply.statusCode === REQUEST_TIMEOUT) return payload;
    const schema = contract.response[reply.statusCode];
    if (!schema) throw broken(contract, `it answered ${reply.statusCode}, which its contract does not declare`);
    if (isMedia(schema)) {
      if (reply.statusCode >= 400) return payload;
      throw broken(contract, `it answered ${reply.statusCode} with JSON, where its contract says ${mediaTypes(schema).join(', ') || 'no body'}`);
    }
    const validate = validator(schema);
    if (!validate(payload)) {
      const details = ajvErrorsToDetails(validate.errors, 'answer');
      throw broken(contract, `its ${reply.statusCode} answer does not match the schema: ${details.map((d) => `${d.where} ${d.message}`).join('; ')}`);
    }
    return payload;
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const contract = contractOf(request);
    if (contract && contract.response[reply.statusCode] === undefined && reply.statusCode !== REQUEST_TIMEOUT && !(request.method === 'HEAD' && contract.method === 'GET')) {
      throw broken(contract, `it answered ${reply.statusCode}, which its contract does not declare`);
    }
    return payload;
  });
}

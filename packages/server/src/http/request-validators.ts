import type { FastifyInstance } from 'fastify';
import { createAjv } from '@tessera/model';

/**
 * How requests are validated against their contract. Path and query parameters arrive
 * as text, so they are coerced to the types their schema says (`limit=10` is a number,
 * a single `tag=` is a list of one). A JSON body is never coerced: `{"workflow":
 * ["hello-world"]}` is refused for what it is, not turned into a string and acted on.
 */
export function installRequestValidators(app: FastifyInstance): void {
  const forBodies = createAjv({ useDefaults: true, coerceTypes: false });
  const forText = createAjv({ useDefaults: true, coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? forBodies : forText).compile(schema));
}

import type { FastifyInstance } from 'fastify';
import { createAjv } from '@tessera/model';

/**
 * How requests are validated against their contract. Path and query parameters arrive
 * as text, so they are coerced to the types their schema says (`limit=10` is a number,
 * a single `tag=` is a list of one). A JSON body is never coerced: `{"workflow":
 * ["hello-world"]}` is refused for what it is, not turned into a string and acted on.
 * A number coerced from text must be finite and, when whole, exact (at most 2^53 - 1):
 * `offset=Infinity` or `limit=1e999` is a 400 naming the parameter, not a database error.
 */
export function installRequestValidators(app: FastifyInstance): void {
  const forBodies = createAjv({ useDefaults: true, coerceTypes: false });
  const forText = createAjv({ useDefaults: true, coerceTypes: 'array' });
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (httpPart === 'body') return forBodies.compile(schema);
    const validate = forText.compile(schema);
    const checked = Object.assign(
      (data: unknown, ctx?: object) => {
        if (!(validate as (d: unknown, c?: object) => boolean)(data, ctx)) {
          checked.errors = validate.errors;
          return false;
        }
        const bad = inexactNumber(data, '');
        checked.errors = bad === undefined ? null : [{ instancePath: bad, keyword: 'maximum', schemaPath: '', params: {}, message: `must be a finite number, a whole one at most ${Number.MAX_SAFE_INTEGER}` }];
        return bad === undefined;
      },
      // Fastify passes the parent of the data to Ajv's validators (that is how a coerced root value is kept).
      { schemaEnv: validate.schemaEnv, errors: null as typeof validate.errors },
    );
    return checked;
  });
}

/** The JSON pointer of the first number in `data` that text cannot mean exactly (Infinity, 1e23), or undefined. */
function inexactNumber(data: unknown, at: string): string | undefined {
  if (typeof data === 'number') return !Number.isFinite(data) || (Number.isInteger(data) && !Number.isSafeInteger(data)) ? at : undefined;
  if (data === null || typeof data !== 'object') return undefined;
  for (const [k, v] of Object.entries(data)) {
    const bad = inexactNumber(v, `${at}/${k}`);
    if (bad !== undefined) return bad;
  }
  return undefined;
}

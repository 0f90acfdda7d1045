import type { RouteContract } from '@tessera/api';

/** A deterministic pseudo-random generator (mulberry32): the same seed gives the same inputs. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One malformed request: raw path (already encoded as sent), headers and body, and what was done to it. */
export interface FuzzInput {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  what: string;
}

type Schema = Record<string, unknown> & {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  const?: unknown;
  minimum?: number;
  minLength?: number;
  default?: unknown;
};

/** Bad values for a path parameter, as they go on the wire (percent-encoded where needed). */
export const BAD_PATH_VALUES: readonly string[] = [
  '..',
  '%2e%2e',
  '..%2f..%2fetc%2fpasswd',
  '%00',
  'a%00b',
  '%ZZ',
  '%',
  '%C0%AE',
  '%FF%FE',
  '%E2%80%AE',
  '%20',
  '-1',
  '0',
  '1e999',
  '99999999999999999999999',
  '1.5',
  '01.2.3',
  '1..2',
  '1.2.',
  '.1.2',
  '1.2.3',
  'x'.repeat(300),
  '9'.repeat(5000),
  'a,b,c',
  '1,0,-1',
  ',',
  '%2C%2C',
  'null',
  'undefined',
  '__proto__',
  'constructor',
  '%7B%7D',
  'a%2Fb',
  '%5C..%5C',
];

/** Bad values for a query parameter (encoded). */
const BAD_QUERY_VALUES: readonly string[] = [
  '',
  'abc',
  '-1',
  '0',
  '1.5',
  '1e999',
  'NaN',
  'Infinity',
  '99999999999999999999999',
  '-99999999999999999999',
  '%00',
  'a%00b',
  '%ZZ',
  'true',
  'null',
  '%5B%5D',
  '01.2.3',
  'x'.repeat(20_000),
  ',,,',
  '1,2,3,4,5',
  '-,-',
  '*',
  '%E2%80%AE',
  '__proto__',
];

/** Bad values put where a schema wants a value of some type. */
function wrongValues(schema: Schema, rnd: () => number): unknown[] {
  const huge = 'x'.repeat(200_000);
  const all: unknown[] = [null, true, 0, -1, 1.5, 2 ** 53 + 2, -1e308, 'a\u0000b', '', huge, [], [1, 'a'], {}, { a: { b: { c: [] } } }, '01.2.3', '../../etc/passwd', '\u202e'];
  // Keep the wrong ones for this type, in a seeded order.
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  const wrong = all.filter((v) => {
    if (type === 'string') return typeof v !== 'string' || v === '' || v === huge || v.includes('\u0000') || v.includes('..');
    if (type === 'integer' || type === 'number') return typeof v !== 'number' || v < 0 || !Number.isInteger(v) || v > 2 ** 53;
    if (type === 'boolean') return typeof v !== 'boolean';
    if (type === 'array') return !Array.isArray(v) || v.length > 0;
    return true;
  });
  return shuffle(wrong, rnd).slice(0, 4);
}

export function shuffle<T>(list: readonly T[], rnd: () => number): T[] {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A value that matches the schema, simply (the least a validator takes), so that one field at a time can be made bad. */
export function validValue(schema: Schema | undefined, depth = 0): unknown {
  if (!schema || depth > 6) return undefined;
  if ('const' in schema) return schema.const;
  if (schema.default !== undefined) return schema.default;
  if (schema.enum) return schema.enum[0];
  const alt = schema.anyOf ?? schema.oneOf;
  if (alt) return validValue(alt.find((s) => s.type !== 'null') ?? alt[0], depth + 1);
  if (Array.isArray(schema.allOf)) return Object.assign({}, ...(schema.allOf as Schema[]).map((s) => validValue(s, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const name of schema.required ?? []) out[name] = validValue(schema.properties?.[name], depth + 1) ?? 'x';
      return out;
    }
    case 'array':
      return [];
    case 'string':
      return 'x'.repeat(Math.max(1, schema.minLength ?? 1));
    case 'integer':
    case 'number':
      return Math.max(1, schema.minimum ?? 1);
    case 'boolean':
      return false;
    case 'null':
      return null;
    default:
      return {};
  }
}

/** The properties of an object schema, of an intersection's members too. */
function propertiesOf(schema: Schema | undefined): Record<string, Schema> {
  if (!schema) return {};
  const all = (schema.allOf as Schema[] | undefined) ?? [];
  return Object.assign({}, schema.properties ?? {}, ...all.map(propertiesOf));
}

function paramNames(url: string): string[] {
  return [...url.matchAll(/:([A-Za-z_]+)|\*/g)].map((m) => m[1] ?? '*');
}

function fillPath(url: string, values: Record<string, string>): string {
  return url.replace(/:([A-Za-z_]+)|\*/g, (_m, name: string | undefined) => values[name ?? '*'] ?? 'x');
}

function query(entries: [string, string][]): string {
  return entries.length ? `?${entries.map(([k, v]) => `${encodeURIComponent(k)}=${v}`).join('&')}` : '';
}

/** Bodies that are not JSON, or not what JSON routes take. */
const RAW_BODIES: { what: string; type: string; body: string | Buffer }[] = [
  { what: 'truncated JSON', type: 'application/json', body: '{"name": "a' },
  { what: 'JSON null', type: 'application/json', body: 'null' },
  { what: 'a JSON array', type: 'application/json', body: '[1,2,3]' },
  { what: 'a JSON string', type: 'application/json', body: '"text"' },
  { what: 'a JSON number too large', type: 'application/json', body: '1e999' },
  { what: 'an empty JSON body', type: 'application/json', body: '' },
  { what: 'JSON nested 100,000 deep', type: 'application/json', body: `${'['.repeat(100_000)}${']'.repeat(100_000)}` },
  { what: 'an object nested 10,000 deep', type: 'application/json', body: `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}` },
  { what: 'a __proto__ key', type: 'application/json', body: '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"x": 1}}}' },
  { what: 'bytes that are not UTF-8', type: 'application/json', body: Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x7d]) },
  { what: 'JSON as UTF-16', type: 'application/json; charset=utf-16', body: Buffer.from('{"a":1}', 'utf16le') },
  { what: 'text/plain', type: 'text/plain', body: 'hello' },
  { what: 'a form body', type: 'application/x-www-form-urlencoded', body: 'a=1&b=2' },
  { what: 'multipart without a boundary', type: 'multipart/form-data', body: 'xx' },
  { what: 'multipart with a bad body', type: 'multipart/form-data; boundary=ZZ', body: '--ZZ\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc' },
  { what: 'multipart/related cut short', type: 'multipart/related; type="application/dicom"; boundary=b0', body: '--b0\r\nContent-Type: application/dicom\r\n\r\nDICM' },
  { what: 'multipart/related of an empty part', type: 'multipart/related; type="application/dicom"; boundary=b0', body: '--b0\r\n\r\n\r\n--b0--\r\n' },
  { what: 'multipart/related with a huge part header', type: 'multipart/related; boundary=b0', body: `--b0\r\nContent-Type: ${'a'.repeat(100_000)}\r\n\r\nx\r\n--b0--\r\n` },
  { what: 'multipart/related with no parts', type: 'multipart/related; boundary=b0', body: '--b0--\r\n' },
  { what: 'application/dicom garbage', type: 'application/dicom', body: Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from([2, 0, 0, 0, 0x55, 0x4c, 0xff, 0xff])]) },
  { what: 'application/dicom of 3 bytes', type: 'application/dicom', body: 'abc' },
  { what: 'a zip that is not one', type: 'application/zip', body: 'PK\u0003\u0004garbage' },
  { what: 'an empty zip end record', type: 'application/zip', body: Buffer.from([0x50, 0x4b, 0x05, 0x06, ...Array<number>(18).fill(0xff)]) },
  { what: 'a gzip that is not one', type: 'application/gzip', body: Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff]) },
  { what: 'a tar of garbage', type: 'application/x-tar', body: Buffer.alloc(1024, 0x41) },
  { what: 'octet-stream garbage', type: 'application/octet-stream', body: Buffer.from('not a package') },
  { what: 'a content type with no subtype', type: 'application', body: '{}' },
  { what: 'a content type with junk parameters', type: 'application/json; ;;=; boundary', body: '{}' },
];

/** Accept headers a client may get wrong. */
const BAD_ACCEPTS = [
  'image/png;q=abc',
  'multipart/related; type=',
  'multipart/related; type="application/dicom"; transfer-syntax=01.2.3',
  'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.4.50',
  'text/html',
  ',,,;;;',
  `image/${'x'.repeat(5000)}`,
  'image/jpeg;q=0, image/png;q=0',
];

/**
 * The malformed requests of one route, generated from its contract: bad path parameters
 * (one at a time, the others valid), bad and extra query parameters, bodies with a field
 * missing, of the wrong type, extra or huge, bodies that are not JSON or not of the
 * type the route takes, and bad Accept headers.
 */
export function inputsFor(route: RouteContract, valid: Record<string, string>, rnd: () => number, perKind = 4): FuzzInput[] {
  const out: FuzzInput[] = [];
  const names = paramNames(route.url);
  const goodParams = Object.fromEntries(names.map((n) => [n, valid[n] ?? 'x']));
  const goodPath = fillPath(route.url, goodParams);
  const isJsonBody = route.body !== undefined;
  const takes = route.consumes ?? (isJsonBody ? ['application/json'] : []);
  const goodBody = isJsonBody ? JSON.stringify(validValue(route.body as Schema)) : undefined;
  const base = (): Omit<FuzzInput, 'what' | 'path'> => ({
    method: route.method,
    headers: goodBody !== undefined ? { 'content-type': 'application/json' } : {},
    ...(goodBody !== undefined ? { body: Buffer.from(goodBody) } : {}),
  });

  // Path parameters, one bad at a time.
  for (const name of names) {
    for (const bad of shuffle(BAD_PATH_VALUES, rnd).slice(0, perKind + 2)) {
      out.push({ ...base(), path: fillPath(route.url, { ...goodParams, [name]: bad }), what: `path parameter ${name} = ${bad.slice(0, 40)}` });
    }
  }

  // Query parameters: each declared one with bad values, and an unknown one.
  for (const [name, schema] of Object.entries(propertiesOf(route.querystring as Schema | undefined))) {
    // The values that found bugs, always; then a seeded choice of the others.
    const always = ['a%00b', 'Infinity', '99999999999999999999999'];
    const values = [...always, ...shuffle(BAD_QUERY_VALUES.filter((v) => !always.includes(v)), rnd).slice(0, perKind)];
    if (schema.enum) values.push('not-one-of-them');
    for (const v of values) out.push({ ...base(), path: goodPath + query([[name, v]]), what: `query ${name} = ${v.slice(0, 40)}` });
    out.push({ ...base(), path: goodPath + query([[name, '1'], [name, '2']]), what: `query ${name} given twice` });
  }
  out.push({ ...base(), path: goodPath + query([['no_such_parameter', '1']]), what: 'an unknown query parameter' });
  out.push({ ...base(), path: goodPath + '?%ZZ=%ZZ&&=&a', what: 'a query that is not percent-encoded right' });

  // JSON bodies: each field missing, of a wrong type, plus an extra field.
  const body = route.body as Schema | undefined;
  if (body) {
    const good = (validValue(body) ?? {}) as Record<string, unknown>;
    for (const [name, schema] of Object.entries(propertiesOf(body))) {
      if (body.required?.includes(name)) {
        const { [name]: _gone, ...rest } = good;
        out.push({ ...base(), body: Buffer.from(JSON.stringify(rest)), path: goodPath, what: `body without required ${name}` });
      }
      for (const v of wrongValues(schema, rnd)) {
        const text = JSON.stringify({ ...good, [name]: v });
        out.push({ ...base(), body: Buffer.from(text), path: goodPath, what: `body.${name} = ${text.slice(0, 60)}` });
      }
    }
    // One level down: each field of an object field, of a wrong type.
    for (const [name, schema] of Object.entries(propertiesOf(body))) {
      for (const [sub, subSchema] of Object.entries(propertiesOf(schema))) {
        for (const v of wrongValues(subSchema, rnd).slice(0, 2)) {
          const text = JSON.stringify({ ...good, [name]: { ...((validValue(schema) ?? {}) as object), [sub]: v } });
          out.push({ ...base(), body: Buffer.from(text), path: goodPath, what: `body.${name}.${sub} = ${text.slice(0, 60)}` });
        }
      }
    }
    out.push({ ...base(), body: Buffer.from(JSON.stringify({ ...good, no_such_field: 1 })), path: goodPath, what: 'a body with an extra field' });
  }

  // Bodies that are not JSON or not of a type the route takes (for every route: a GET with a body too).
  const raws = shuffle(RAW_BODIES, rnd).slice(0, takes.length > 0 ? RAW_BODIES.length : perKind);
  for (const r of raws) {
    out.push({ method: route.method, path: goodPath, headers: { 'content-type': r.type }, body: Buffer.from(r.body), what: `a body of ${r.what} (${r.type.slice(0, 60)})` });
  }
  if (takes.length > 0) out.push({ method: route.method, path: goodPath, headers: {}, body: Buffer.from('{}'), what: 'a body without a content type' });

  // Another method on the same path (a route may have none for it), and HEAD.
  for (const method of ['PUT', 'OPTIONS', route.method === 'GET' ? 'HEAD' : 'GET']) out.push({ method, path: goodPath, headers: {}, what: `${method} instead of ${route.method}` });

  // Accept headers.
  for (const accept of shuffle(BAD_ACCEPTS, rnd).slice(0, route.url.includes('dicom-web') ? BAD_ACCEPTS.length : 2)) {
    out.push({ ...base(), path: goodPath, headers: { ...base().headers, accept }, what: `Accept: ${accept.slice(0, 60)}` });
  }
  return out;
}

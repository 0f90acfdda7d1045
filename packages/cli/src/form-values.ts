import { CliError } from './api-client.ts';

/**
 * Turns `--form key=value` pairs into a workflow_form object, typed by the
 * workflow's JSON Schema: integers and numbers parsed, booleans from
 * true/false/yes/no/1/0, arrays from comma lists or JSON, strings kept as typed.
 * Unknown keys and unparsable values are rejected here, naming the key.
 */
export function parseFormValues(pairs: string[], schema: Record<string, unknown>): Record<string, unknown> {
  const properties = (schema.properties ?? {}) as Record<string, { type?: string | string[]; items?: { type?: string } }>;
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new CliError(`--form "${pair}" must look like key=value`, { exitCode: 2 });
    const key = pair.slice(0, eq);
    const raw = pair.slice(eq + 1);
    const prop = properties[key];
    if (!prop) {
      if (key === 'single_execution') {
        out[key] = parseBoolean(key, raw);
        continue;
      }
      const known = Object.keys(properties);
      if (schema.additionalProperties === false) {
        throw new CliError(`--form ${key}: the workflow has no parameter "${key}"${known.length ? `; its parameters are ${known.join(', ')}` : ''}`, { exitCode: 2 });
      }
      out[key] = guess(raw);
      continue;
    }
    const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== 'null') : prop.type;
    out[key] = convert(key, raw, type, prop.items?.type);
  }
  return out;
}

function convert(key: string, raw: string, type: string | undefined, itemType: string | undefined): unknown {
  switch (type) {
    case 'string':
      return raw;
    case 'integer':
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || (type === 'integer' && !Number.isInteger(n))) {
        throw new CliError(`--form ${key}=${raw}: "${key}" must be ${type === 'integer' ? 'an integer' : 'a number'}`, { exitCode: 2 });
      }
      return n;
    }
    case 'boolean':
      return parseBoolean(key, raw);
    case 'array':
      if (raw.trim().startsWith('[')) return parseJson(key, raw);
      return raw === '' ? [] : raw.split(',').map((v) => convert(key, v.trim(), itemType ?? 'string', undefined));
    case 'object':
      return parseJson(key, raw);
    default:
      return guess(raw);
  }
}

function parseBoolean(key: string, raw: string): boolean {
  const v = raw.toLowerCase();
  if (['true', 'yes', '1', 'on'].includes(v)) return true;
  if (['false', 'no', '0', 'off'].includes(v)) return false;
  throw new CliError(`--form ${key}=${raw}: "${key}" must be true or false`, { exitCode: 2 });
}

function parseJson(key: string, raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new CliError(`--form ${key}=${raw}: not valid JSON`, { exitCode: 2 });
  }
}

function guess(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

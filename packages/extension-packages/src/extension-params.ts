import { TesseraError, type ErrorDetail } from '@tessera/model';
import type { ExtensionManifest } from './extension-manifest.schema.ts';

type Parameters = NonNullable<ExtensionManifest['parameters']>;

/**
 * Checks install parameter values against the manifest's `parameters` and fills in
 * defaults. Values may come as strings (from a command line): "true"/"false" for a
 * boolean, "a,b" for a list_multi.
 */
export function validateParams(declared: Parameters, given: Record<string, unknown>): Record<string, unknown> {
  const details: ErrorDetail[] = [];
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(given)) {
    if (!Object.hasOwn(declared, key)) {
      const known = Object.keys(declared);
      details.push({ where: `params.${key}`, message: `is not a parameter of this extension${known.length ? ` (it has ${known.join(', ')})` : ' (it has none)'}` });
    }
  }
  for (const [key, p] of Object.entries(declared)) {
    const where = `params.${key}`;
    let value = given[key];
    if (value === undefined || value === '') {
      if (p.default !== undefined) out[key] = p.default;
      else if (p.required) details.push({ where, message: `is required${p.description ? ` (${p.description})` : ''}` });
      continue;
    }
    switch (p.type) {
      case 'string':
        if (typeof value !== 'string') details.push({ where, message: `must be a text, not ${JSON.stringify(value)}` });
        else out[key] = value;
        break;
      case 'boolean':
        if (value === 'true' || value === 'false') value = value === 'true';
        if (typeof value !== 'boolean') details.push({ where, message: `must be true or false, not ${JSON.stringify(value)}` });
        else out[key] = value;
        break;
      case 'list_single':
        if (typeof value !== 'string' || !p.options!.includes(value)) details.push({ where, message: `must be one of ${p.options!.join(', ')}, not ${JSON.stringify(value)}` });
        else out[key] = value;
        break;
      case 'list_multi': {
        const list = typeof value === 'string' ? value.split(',').map((v) => v.trim()).filter(Boolean) : value;
        if (!Array.isArray(list) || list.some((v) => typeof v !== 'string' || !p.options!.includes(v))) {
          details.push({ where, message: `must be a list of ${p.options!.join(', ')}, not ${JSON.stringify(value)}` });
        } else {
          out[key] = list;
        }
        break;
      }
    }
  }
  if (details.length > 0) {
    throw new TesseraError('TESSERA_INVALID_REQUEST', `invalid parameters: ${details.map((d) => `${d.where} ${d.message}`).join('; ')}`, { details });
  }
  return out;
}

import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { ErrorDetail } from './errors.ts';

// ajv and ajv-formats are CommonJS with a default export.
const Ajv = AjvModule.default ?? AjvModule;
const addFormats = addFormatsModule.default ?? addFormatsModule;
const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;

/** Creates an Ajv instance configured the way every Tessera boundary validates JSON. */
export function createAjv(options: { useDefaults?: boolean; coerceTypes?: false | 'array' } = {}): InstanceType<typeof Ajv> {
  const ajv = new Ajv({
    allErrors: true,
    strict: false,
    useDefaults: options.useDefaults ?? false,
    coerceTypes: options.coerceTypes ?? false,
  });
  addFormats(ajv);
  return ajv;
}

/** Turns Ajv errors into details that name the field at fault, e.g. `workflow_form.threshold`. */
export function ajvErrorsToDetails(
  errors: ErrorObject[] | null | undefined,
  root: string,
  describePath: (pointer: string) => string = (p) => p,
): ErrorDetail[] {
  return collapseConstChoices(errors ?? []).map((e) => {
    let pointer = e.instancePath;
    let message = e.message ?? 'is invalid';
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperty: string }).additionalProperty;
      pointer = `${pointer}/${extra}`;
      message = 'is not a known property';
    } else if (e.keyword === 'required') {
      const missing = (e.params as { missingProperty: string }).missingProperty;
      pointer = `${pointer}/${missing}`;
      message = 'is required';
    } else if (e.keyword === 'enum') {
      message = `must be one of ${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)}`;
    }
    const dotted = describePath(pointer)
      .split('/')
      .filter((s) => s !== '')
      .map((s) => (/^\d+$/.test(s) ? `[${s}]` : `.${s}`))
      .join('')
      .replace(/^\./, '');
    const where = dotted === '' ? root : root === '' ? dotted : `${root}.${dotted}`.replace('.[', '[');
    return { where, message };
  });
}

/**
 * A value that matches none of an anyOf of constants (TypeBox's union of literals) gets
 * one error per constant plus the anyOf's; they become one "must be one of [...]".
 */
function collapseConstChoices(errors: ErrorObject[]): ErrorObject[] {
  const dropped = new Set<ErrorObject>();
  const replaced = new Map<ErrorObject, ErrorObject>();
  for (const e of errors) {
    if (e.keyword !== 'anyOf') continue;
    const branches = errors.filter((b) => b !== e && b.instancePath === e.instancePath && b.schemaPath.startsWith(`${e.schemaPath}/`));
    if (branches.length === 0 || !branches.every((b) => b.keyword === 'const')) continue;
    for (const b of branches) dropped.add(b);
    const allowed = branches.map((b) => (b.params as { allowedValue: unknown }).allowedValue);
    replaced.set(e, { ...e, keyword: 'enum', params: { allowedValues: allowed }, message: 'must be one of the allowed values' });
  }
  return errors.filter((e) => !dropped.has(e)).map((e) => replaced.get(e) ?? e);
}

export type { ValidateFunction };

const formAjvs = new Map<string, InstanceType<typeof Ajv>>();
const formCache = new WeakMap<object, Map<string, ValidateFunction>>();

/**
 * Compiles a form's JSON Schema (draft-07 by default; draft 2020-12 when its
 * `$schema` says so), cached per schema object. A schema with an `$id` can be
 * compiled again (after a reload) without Ajv's "already exists" error.
 */
export function compileFormSchema(schema: Record<string, unknown>, options: { useDefaults: boolean }): ValidateFunction {
  const draft = typeof schema.$schema === 'string' && schema.$schema.includes('2020-12') ? '2020' : '07';
  const key = `${draft}:${options.useDefaults}`;
  let perSchema = formCache.get(schema);
  const cached = perSchema?.get(key);
  if (cached) return cached;
  let ajv = formAjvs.get(key);
  if (!ajv) {
    ajv = draft === '2020' ? new Ajv2020({ allErrors: true, strict: false, useDefaults: options.useDefaults }) : createAjv({ useDefaults: options.useDefaults });
    if (draft === '2020') addFormats(ajv);
    formAjvs.set(key, ajv);
  }
  if (typeof schema.$id === 'string') ajv.removeSchema(schema.$id);
  const fn = ajv.compile(schema);
  if (!perSchema) {
    perSchema = new Map();
    formCache.set(schema, perSchema);
  }
  perSchema.set(key, fn);
  return fn;
}

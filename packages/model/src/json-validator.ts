import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { ErrorDetail } from './errors.ts';

// ajv and ajv-formats are CommonJS with a default export.
const Ajv = AjvModule.default ?? AjvModule;
const addFormats = addFormatsModule.default ?? addFormatsModule;

/** Creates an Ajv instance configured the way every Tessera boundary validates JSON. */
export function createAjv(options: { useDefaults?: boolean } = {}): InstanceType<typeof Ajv> {
  const ajv = new Ajv({
    allErrors: true,
    strict: false,
    useDefaults: options.useDefaults ?? false,
    coerceTypes: false,
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
  return (errors ?? []).map((e) => {
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

export type { ValidateFunction };

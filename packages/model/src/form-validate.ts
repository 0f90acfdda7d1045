import type { DagSpec } from './dag-spec.schema.ts';
import { TesseraError } from './errors.ts';
import { ajvErrorsToDetails, compileFormSchema } from './json-validator.ts';

/** The task_form of a workflow without Task API tasks: nothing to set. */
const NO_TASK_FORM: Record<string, unknown> = { type: 'object', properties: {}, additionalProperties: false };

/**
 * Validates form values against a workflow's form schema, filling defaults.
 * Throws TESSERA_INVALID_FORM naming each field at fault, e.g. `workflow_form.threshold: must be <= 1`.
 */
export function validateForm(
  spec: Pick<DagSpec, 'id' | 'workflow_form' | 'data_form' | 'task_form'>,
  form: 'workflow_form' | 'data_form' | 'task_form',
  value: unknown,
): Record<string, unknown> {
  const v = structuredClone(value ?? {}) as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new TesseraError('TESSERA_INVALID_FORM', `${form} of workflow "${spec.id}" must be a JSON object`, {
      details: [{ where: form, message: 'must be an object' }],
    });
  }
  let fn;
  try {
    fn = compileFormSchema(spec[form] ?? NO_TASK_FORM, { useDefaults: true });
  } catch (err) {
    throw new TesseraError('TESSERA_INVALID_SPEC', `${form} of workflow "${spec.id}" is not a valid JSON Schema: ${(err as Error).message}`, { cause: err });
  }
  if (!fn(v)) {
    const details = ajvErrorsToDetails(fn.errors, form);
    throw new TesseraError(
      'TESSERA_INVALID_FORM',
      `invalid ${form} for workflow "${spec.id}": ${details.map((d) => `${d.where} ${d.message}`).join('; ')}`,
      { details },
    );
  }
  return v;
}

import { describe, expect, it } from 'vitest';
import { TesseraError } from './errors.ts';
import { validateForm } from './form-validate.ts';

const spec = {
  id: 'liver-seg',
  workflow_form: {
    type: 'object',
    properties: {
      model: { type: 'string', enum: ['nnunet', 'totalseg'] },
      threshold: { type: 'number', minimum: 0, maximum: 1, default: 0.5 },
      label: { type: 'string', default: 'liver' },
      options: {
        type: 'object',
        properties: { level: { type: 'integer', default: 2 } },
        default: {},
      },
    },
    required: ['model'],
    additionalProperties: false,
  },
  data_form: {
    type: 'object',
    properties: {
      dataset_name: { type: 'string' },
      dataset_limit: { type: 'integer', minimum: 1 },
      identifiers: { type: 'array', items: { type: 'string', minLength: 1 } },
    },
    additionalProperties: false,
  },
};

function rejection(form: 'workflow_form' | 'data_form', value: unknown): TesseraError {
  try {
    validateForm(spec, form, value);
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    const e = err as TesseraError;
    expect(e.code).toBe('TESSERA_INVALID_FORM');
    expect(e.status).toBe(400);
    return e;
  }
  throw new Error('expected validateForm to reject the value');
}

describe('validateForm: workflow_form', () => {
  it('fills defaults, including nested ones, and keeps given values', () => {
    expect(validateForm(spec, 'workflow_form', { model: 'nnunet' })).toEqual({
      model: 'nnunet',
      threshold: 0.5,
      label: 'liver',
      options: { level: 2 },
    });
    expect(validateForm(spec, 'workflow_form', { model: 'totalseg', threshold: 0.9, options: { level: 5 } })).toMatchObject({
      threshold: 0.9,
      options: { level: 5 },
    });
  });

  it('does not modify the value it is given', () => {
    const value = { model: 'nnunet' };
    validateForm(spec, 'workflow_form', value);
    expect(value).toEqual({ model: 'nnunet' });
  });

  it('names a field of the wrong type as workflow_form.<field>', () => {
    const e = rejection('workflow_form', { model: 'nnunet', threshold: 'high' });
    expect(e.details).toEqual([{ where: 'workflow_form.threshold', message: 'must be number' }]);
    expect(e.message).toContain('workflow "liver-seg"');
    expect(e.message).toContain('workflow_form.threshold must be number');
  });

  it('names a field above its maximum', () => {
    const e = rejection('workflow_form', { model: 'nnunet', threshold: 2 });
    expect(e.details).toEqual([{ where: 'workflow_form.threshold', message: 'must be <= 1' }]);
  });

  it('names a nested field', () => {
    const e = rejection('workflow_form', { model: 'nnunet', options: { level: 'high' } });
    expect(e.details).toEqual([{ where: 'workflow_form.options.level', message: 'must be integer' }]);
  });

  it('names a missing required field', () => {
    const e = rejection('workflow_form', {});
    expect(e.details).toEqual([{ where: 'workflow_form.model', message: 'is required' }]);
  });

  it('names an unknown field when additionalProperties is false', () => {
    const e = rejection('workflow_form', { model: 'nnunet', treshold: 0.2 });
    expect(e.details).toEqual([{ where: 'workflow_form.treshold', message: 'is not a known property' }]);
  });

  it('lists the allowed values of an enum', () => {
    const e = rejection('workflow_form', { model: 'unet' });
    expect(e.details).toEqual([{ where: 'workflow_form.model', message: 'must be one of ["nnunet","totalseg"]' }]);
  });

  it('reports every problem at once', () => {
    const e = rejection('workflow_form', { threshold: -1, extra: true });
    expect(e.details.map((d) => d.where).sort()).toEqual(['workflow_form.extra', 'workflow_form.model', 'workflow_form.threshold']);
  });

  it('treats a missing value as an empty object and rejects a value that is not an object', () => {
    const e = rejection('workflow_form', undefined);
    expect(e.details).toEqual([{ where: 'workflow_form.model', message: 'is required' }]);
    for (const bad of ['nnunet', 3, ['nnunet']]) {
      const notObject = rejection('workflow_form', bad);
      expect(notObject.details).toEqual([{ where: 'workflow_form', message: 'must be an object' }]);
    }
  });
});

describe('validateForm: data_form', () => {
  it('accepts a dataset or a list of series UIDs', () => {
    expect(validateForm(spec, 'data_form', { dataset_name: 'lungs', dataset_limit: 3 })).toEqual({ dataset_name: 'lungs', dataset_limit: 3 });
    expect(validateForm(spec, 'data_form', { identifiers: ['1.2.3'] })).toEqual({ identifiers: ['1.2.3'] });
    expect(validateForm(spec, 'data_form', null)).toEqual({});
  });

  it('names the field at fault as data_form.<field>, with array indexes', () => {
    const limit = rejection('data_form', { dataset_limit: 0 });
    expect(limit.details).toEqual([{ where: 'data_form.dataset_limit', message: 'must be >= 1' }]);
    expect(limit.message).toContain('invalid data_form');
    const uid = rejection('data_form', { identifiers: ['1.2.3', ''] });
    expect(uid.details).toEqual([{ where: 'data_form.identifiers[1]', message: expect.stringContaining('fewer than 1 characters') }]);
  });

  it('validates data_form against data_form, not workflow_form', () => {
    // A valid data_form value would fail workflow_form (no "model"); and the reverse.
    expect(() => validateForm(spec, 'data_form', { dataset_name: 'x' })).not.toThrow();
    expect(rejection('data_form', { model: 'nnunet' }).details).toEqual([{ where: 'data_form.model', message: 'is not a known property' }]);
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, TesseraError } from './errors.ts';

describe('error codes', () => {
  it('documents every code, with its status and kind, in docs/reference/errors.md', () => {
    const doc = readFileSync(join(import.meta.dirname, '../../../docs/reference/errors.md'), 'utf8');
    for (const [code, { status, kind }] of Object.entries(ERROR_CODES)) {
      expect(doc, `${code} is missing from docs/reference/errors.md`).toContain(`| \`${code}\` | ${status} | ${kind} |`);
    }
  });

  it('serializes to the API error body', () => {
    const err = new TesseraError('TESSERA_INVALID_FORM', 'bad', { details: [{ where: 'workflow_form.x', message: 'must be number' }] });
    expect(err.status).toBe(400);
    expect(err.toJSON()).toEqual({ error: { code: 'TESSERA_INVALID_FORM', message: 'bad', details: [{ where: 'workflow_form.x', message: 'must be number' }] } });
  });
});

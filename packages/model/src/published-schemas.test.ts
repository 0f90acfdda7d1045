import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JSON_SCHEMA_DIALECT, REPO_ROOT, renderSchemas } from '../../../scripts/gen-schemas.ts';
import { createAjv } from './json-validator.ts';

const REGENERATE = 'run `npx tsx scripts/gen-schemas.ts` and commit the result';

async function published(path: string): Promise<string | undefined> {
  return readFile(join(REPO_ROOT, path), 'utf8').catch(() => undefined);
}

describe('published JSON Schemas (docs/reference)', () => {
  const schemas = renderSchemas();

  it('publishes the DAG spec and the extension manifest', () => {
    expect(schemas.map((s) => s.path)).toEqual(['docs/reference/dag-spec.schema.json', 'docs/reference/extension-manifest.schema.json']);
  });

  it.each(schemas.map((s) => [s.path, s.text] as const))('%s matches its TypeBox schema', async (path, expected) => {
    const current = await published(path);
    if (current === undefined) expect.fail(`${path} is missing: ${REGENERATE}`);
    // Compare the text (formatting and trailing newline included), with an actionable message.
    if (current !== expected) {
      expect(JSON.parse(current), `${path} differs from its TypeBox schema: ${REGENERATE}`).toEqual(JSON.parse(expected));
      expect.fail(`${path} has the right content but not the generated formatting: ${REGENERATE}`);
    }
  });

  it('declares the dialect Ajv validates by default, with a title and description', () => {
    for (const { text } of schemas) {
      expect(text.endsWith('}\n')).toBe(true);
      const schema = JSON.parse(text) as Record<string, unknown>;
      expect(Object.keys(schema).slice(0, 4)).toEqual(['$schema', '$id', 'title', 'description']);
      expect(schema.$schema).toBe(JSON_SCHEMA_DIALECT);
      expect(typeof schema.title).toBe('string');
      expect(typeof schema.description).toBe('string');
      const ajv = createAjv();
      expect(ajv.validateSchema(schema), JSON.stringify(ajv.errors)).toBe(true);
    }
  });

  it('lets a third-party validator check a DAG spec with the published file alone', async () => {
    const text = await published('docs/reference/dag-spec.schema.json');
    expect(text, REGENERATE).toBeDefined();
    const validate = createAjv().compile(JSON.parse(text!));
    const spec = {
      spec_version: 1,
      id: 'convert',
      workflow_form: { type: 'object' },
      data_form: { type: 'object' },
      clean_workflow_dir: false,
      tasks: [
        {
          id: 'dcm2nii',
          operator: 'dcm2nii',
          upstream: [],
          trigger_rule: 'all_done',
          level: 'batch_element',
          output_dir: 'nifti',
          container: { image: 'dcm2nii:1' },
          env: {},
          retries: 1,
          retry_delay_s: 0,
          retry_backoff: 'fixed',
        },
      ],
    };
    expect(validate(spec), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...spec, tasks: [{ ...spec.tasks[0], retrys: 1 }] })).toBe(false);
    expect(validate({ ...spec, tasks: [{ ...spec.tasks[0], trigger_rule: 'sometimes' }] })).toBe(false);
  });

  it('lets a third-party validator check a manifest with the published file alone', async () => {
    const text = await published('docs/reference/extension-manifest.schema.json');
    expect(text, REGENERATE).toBeDefined();
    const validate = createAjv().compile(JSON.parse(text!));
    const hello = JSON.parse(await readFile(join(REPO_ROOT, 'extensions/hello-world/tessera-extension.json'), 'utf8'));
    expect(validate(hello), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...hello, version: 'latest' })).toBe(false);
    expect(validate({ ...hello, kind: 'plugin' })).toBe(false);
  });
});

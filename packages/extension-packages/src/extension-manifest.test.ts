import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PLATFORM_VERSION, TesseraError } from '@tessera/model';
import { loadExtensionFolder } from './extension-loader.ts';
import { WorkflowRegistry } from './workflow-registry.ts';

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const SPEC = (id: string) => ({ spec_version: 1, id, workflow_form: { type: 'object' }, data_form: { type: 'object' }, tasks: [{ id: 'a', operator: 'a', output_dir: 'a', builtin: 'empty' }] });

/** An extension folder with one JSON workflow and the manifest fields given. */
async function extension(root: string, name: string, fields: Record<string, unknown> = {}): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'w.json'), JSON.stringify(SPEC(`${name}-flow`)));
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'workflow', workflows: ['w.json'], ...fields }));
  return dir;
}

async function refusal(dir: string): Promise<string> {
  try {
    await loadExtensionFolder(dir);
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe('TESSERA_INVALID_MANIFEST');
    return (err as TesseraError).message;
  }
  throw new Error(`expected ${dir} to be refused`);
}

describe('the extension manifest', () => {
  it('takes the full set of fields: documentation, keywords, platform range, dependencies, parameters, images', async () => {
    const root = await mkdtemp(join(tmpdir(), 'tessera-manifest-'));
    temps.push(root);
    const dir = await extension(root, 'full', {
      title: 'Full',
      description: 'Everything a manifest can say',
      documentation: 'https://example.org/docs',
      keywords: ['experimental', 'gpu-required'],
      platform: `>=${PLATFORM_VERSION} <99`,
      dependencies: { 'other-ext': '^1.0.0' },
      parameters: {
        threshold: { type: 'string', default: '0.5', description: 'Otsu offset' },
        fast: { type: 'boolean', default: true },
        model: { type: 'list_single', options: ['small', 'large'], default: 'small' },
        organs: { type: 'list_multi', options: ['liver', 'spleen', 'kidney'], default: ['liver'] },
      },
      images: [{ name: 'tessera/full:1.0', context: 'processing' }],
    });
    await mkdir(join(dir, 'processing'));
    const ext = await loadExtensionFolder(dir);
    expect(ext.manifest.keywords).toEqual(['experimental', 'gpu-required']);
    expect(Object.keys(ext.manifest.parameters ?? {})).toEqual(['threshold', 'fast', 'model', 'organs']);
  });

  it.each([
    ['an unknown kind', { kind: 'plugin' }, /kind/],
    ['a workflow extension without workflows', { workflows: undefined }, /workflows is required for a workflow extension/],
    ['an application without its app spec', { kind: 'application', workflows: undefined }, /app is required for an application extension/],
    ['an incompatible platform version', { platform: '>=99.0.0' }, new RegExp(`asks for Tessera >=99\\.0\\.0, and this is Tessera ${PLATFORM_VERSION.replace(/\./g, '\\.')}`)],
    ['a platform that is not a range', { platform: 'soon' }, /"soon" is not a semver range/],
    ['an unknown keyword', { keywords: ['fast'] }, /keywords/],
    ['a list parameter without options', { parameters: { m: { type: 'list_single' } } }, /parameters\.m is a list_single and needs "options"/],
    ['a default outside the options', { parameters: { m: { type: 'list_multi', options: ['a'], default: ['b'] } } }, /parameters\.m\.default \["b"\] does not fit a list_multi of a/],
    ['an image context outside the folder', { images: [{ name: 'x/y:1', context: '../elsewhere' }] }, /must stay inside the extension folder/],
    ['an image context that does not exist', { images: [{ name: 'x/y:1', context: 'nope' }] }, /"nope" does not exist/],
    ['a documentation link that is not a URL', { documentation: 'see the wiki' }, /documentation/],
    ['a parameter that would replace a variable of the operator contract', { parameters: { workflow_dir: { type: 'string' } } }, /parameters\.workflow_dir would become the environment variable WORKFLOW_DIR, which the operator contract sets/],
  ])('refuses %s, saying what is wrong', async (_what, fields, message) => {
    const root = await mkdtemp(join(tmpdir(), 'tessera-manifest-'));
    temps.push(root);
    expect(await refusal(await extension(root, 'bad', fields))).toMatch(message);
  });

  it('names the allowed keywords when one is unknown, once', async () => {
    const root = await mkdtemp(join(tmpdir(), 'tessera-manifest-'));
    temps.push(root);
    const message = await refusal(await extension(root, 'kw', { keywords: ['viewer'] }));
    expect(message).toContain('keywords[0] must be one of ["experimental","multi-installable","gpu-required"]');
    expect(message).not.toContain('constant');
    expect(message.match(/keywords\[0\]/g)).toHaveLength(1);
  });

  it('does not load an extension whose dependencies are missing or in a version out of range, nor one that needs such an extension', async () => {
    const root = await mkdtemp(join(tmpdir(), 'tessera-deps-'));
    temps.push(root);
    await extension(root, 'base', { version: '1.0.0' });
    await extension(root, 'needs-base', { dependencies: { base: '^1.0.0' } });
    await extension(root, 'needs-base-2', { dependencies: { base: '^2.0.0' } });
    await extension(root, 'needs-needs-base-2', { dependencies: { 'needs-base-2': '*' } });
    await extension(root, 'needs-ghost', { dependencies: { ghost: '*' } });
    const registry = new WorkflowRegistry({ roots: [root] });
    const r = await registry.reload();
    expect(registry.list().map((w) => w.spec.id).sort()).toEqual(['base-flow', 'needs-base-flow']);
    const messages = r.problems.map((p) => p.message).join('\n');
    expect(messages).toMatch(/"needs-base-2" needs "base" \^2\.0\.0/);
    expect(messages).toMatch(/"needs-needs-base-2" needs "needs-base-2" \*/);
    expect(messages).toMatch(/"needs-ghost" needs "ghost" \*/);
  });
});

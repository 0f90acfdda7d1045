import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { findExtensionFolders, loadExtensionFolder, loadWorkflowFile } from './extension-loader.ts';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '__fixtures__');
const folder = (name: string) => join(fixtures, 'folders', name);
const helloWorldDir = resolve(here, '../../../extensions/hello-world');

async function loadError(dir: string): Promise<TesseraError> {
  try {
    await loadExtensionFolder(dir);
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    return err as TesseraError;
  }
  throw new Error(`expected loading ${dir} to fail`);
}

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('loadExtensionFolder', () => {
  it('loads the hello-world extension and compiles its workflow', async () => {
    const ext = await loadExtensionFolder(helloWorldDir);
    expect(ext.manifest).toMatchObject({ name: 'hello-world', version: '0.1.0', kind: 'workflow' });
    expect(ext.dir).toBe(helloWorldDir);
    expect(ext.workflows).toHaveLength(1);
    const wf = ext.workflows[0]!;
    expect(wf.file).toBe(join(helloWorldDir, 'workflows/hello-world.ts'));
    expect(wf.extension).toEqual({ name: 'hello-world', version: '0.1.0', dir: helloWorldDir });
    expect(wf.spec.id).toBe('hello-world');
    expect(wf.spec.tasks.map((t) => t.id)).toEqual(['greet', 'transform-upper', 'transform-reverse', 'summarize']);
  });

  it('loads a workflow given as a compiled JSON DAG spec, with defaults filled', async () => {
    const ext = await loadExtensionFolder(folder('json-spec'));
    expect(ext.workflows.map((w) => w.spec.id)).toEqual(['convert']);
    const spec = ext.workflows[0]!.spec;
    expect(spec.tasks[1]).toMatchObject({ id: 'dcm2nii', upstream: ['get-input'], trigger_rule: 'all_success', retries: 0, env: {} });
    expect(spec.clean_workflow_dir).toBe(false);
  });

  it('rejects a manifest without a version, naming the field', async () => {
    const e = await loadError(folder('missing-version'));
    expect(e.code).toBe('TESSERA_INVALID_MANIFEST');
    expect(e.details).toEqual([{ where: 'tessera-extension.json.version', message: 'is required' }]);
    expect(e.message).toContain(join(folder('missing-version'), 'tessera-extension.json'));
    expect(e.message).toContain('version is required');
  });

  it('rejects a manifest with an unknown kind, naming the field', async () => {
    const e = await loadError(folder('bad-kind'));
    expect(e.code).toBe('TESSERA_INVALID_MANIFEST');
    expect(e.details.length).toBeGreaterThan(0);
    for (const d of e.details) expect(d.where).toBe('tessera-extension.json.kind');
  });

  it('rejects a folder without a manifest or with a manifest that is not JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-ext-'));
    temps.push(dir);
    const missing = await loadError(dir);
    expect(missing.code).toBe('TESSERA_INVALID_MANIFEST');
    expect(missing.message).toContain('cannot read the manifest');
    await writeFile(join(dir, 'tessera-extension.json'), '{ "name": "x", ');
    const garbled = await loadError(dir);
    expect(garbled.code).toBe('TESSERA_INVALID_MANIFEST');
    expect(garbled.message).toContain(join(dir, 'tessera-extension.json'));
  });

  it('refuses a workflow path that leaves the extension folder, even if the file exists', async () => {
    // ../outside.ts is a valid workflow module next to the folder.
    await expect(loadWorkflowFile(join(folder('.'), 'outside.ts'))).resolves.toMatchObject({ id: 'outside' });
    const e = await loadError(folder('escaping-path'));
    expect(e.code).toBe('TESSERA_INVALID_MANIFEST');
    expect(e.message).toContain('"../outside.ts"');
    expect(e.message).toContain('must stay inside the extension folder');
  });

  it('refuses an absolute workflow path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-ext-'));
    temps.push(dir);
    const abs = join(folder('json-spec'), 'workflows/convert.json');
    await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name: 'abs', version: '1.0.0', kind: 'workflow', workflows: [abs] }));
    const e = await loadError(dir);
    expect(e.code).toBe('TESSERA_INVALID_MANIFEST');
    expect(e.message).toContain('must stay inside the extension folder');
  });

  it('explains a workflow module without a default export', async () => {
    const e = await loadError(folder('no-default-export'));
    expect(e.code).toBe('TESSERA_INVALID_SPEC');
    expect(e.message).toBe('no-default-export: workflows/named.ts: the module has no default export; export default defineWorkflow(...)');
  });

  it('rejects a module whose default export is not a workflow', async () => {
    const e = await loadError(folder('default-not-workflow'));
    expect(e.code).toBe('TESSERA_INVALID_SPEC');
    expect(e.message).toContain('default-not-workflow: workflows/factory.ts');
  });

  it('names the extension and file of a workflow that is not a valid DAG spec, keeping the details', async () => {
    const e = await loadError(join(fixtures, 'roots/mixed/broken'));
    expect(e.code).toBe('TESSERA_INVALID_SPEC');
    expect(e.message).toContain('broken: workflows/cycle.json');
    expect(e.message).toMatch(/a -> b -> a|b -> a -> b/);
    expect(e.details).toHaveLength(1);
  });

  it('reports a workflow file that does not exist', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-ext-'));
    temps.push(dir);
    await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name: 'gone', version: '1.0.0', kind: 'workflow', workflows: ['wf.json'] }));
    const e = await loadError(dir);
    expect(e.message).toContain('gone: wf.json: file not found');
  });
});

describe('findExtensionFolders', () => {
  it('lists the folders holding a manifest, sorted, and nothing for a missing root', async () => {
    expect(await findExtensionFolders(join(fixtures, 'roots/mixed'))).toEqual([
      join(fixtures, 'roots/mixed/broken'),
      join(fixtures, 'roots/mixed/good'),
    ]);
    expect(await findExtensionFolders(join(fixtures, 'does-not-exist'))).toEqual([]);
  });

  it('ignores files and nested folders', async () => {
    const root = await mkdtemp(join(tmpdir(), 'tessera-root-'));
    temps.push(root);
    await writeFile(join(root, 'tessera-extension.json'), '{}');
    await mkdir(join(root, 'group/deeper'), { recursive: true });
    await writeFile(join(root, 'group/deeper/tessera-extension.json'), '{}');
    expect(await findExtensionFolders(root)).toEqual([]);
  });
});

import { mkdtemp, mkdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { WorkflowRegistry } from './workflow-registry.ts';

const here = dirname(fileURLToPath(import.meta.url));
const roots = join(here, '__fixtures__', 'roots');
const extensionsRoot = resolve(here, '../../../extensions');
const sdkUrl = pathToFileURL(resolve(here, '../../sdk/src/index.ts')).href;

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A workflow module, as an extension author writes it, whose only task gets `image`. */
function workflowModule(id: string, image: string): string {
  return [
    `import { defineOperator, defineWorkflow } from ${JSON.stringify(sdkUrl)};`,
    `const workflow = defineWorkflow({ id: ${JSON.stringify(id)} });`,
    `workflow.task(defineOperator({ name: 'step', container: { image: ${JSON.stringify(image)} } }));`,
    'export default workflow;',
    '',
  ].join('\n');
}

async function writeExtension(root: string, name: string, files: Record<string, string>): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const workflows = Object.keys(files);
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'workflow', workflows }));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), text);
  }
  return dir;
}

async function tempRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'tessera-registry-'));
  temps.push(root);
  return root;
}

describe('WorkflowRegistry', () => {
  it('loads hello-world from the extensions root', async () => {
    const registry = new WorkflowRegistry({ roots: [extensionsRoot] });
    const result = await registry.reload();
    expect(result.problems).toEqual([]);
    expect(registry.get('hello-world').spec.tasks).toHaveLength(4);
    expect(registry.extensions().map((e) => e.manifest.name)).toContain('hello-world');
  });

  it('knows nothing before the first reload', () => {
    const registry = new WorkflowRegistry({ roots: [extensionsRoot] });
    expect(registry.list()).toEqual([]);
    expect(() => registry.get('hello-world')).toThrow('no workflows are installed');
  });

  it('reports a broken extension and keeps the good one', async () => {
    const registry = new WorkflowRegistry({ roots: [join(roots, 'mixed')] });
    const result = await registry.reload();
    expect(result).toMatchObject({ extensions: 1, workflows: 1 });
    expect(result.problems).toHaveLength(1);
    expect(result.problems[0]!.dir).toBe(join(roots, 'mixed/broken'));
    expect(result.problems[0]!.message).toContain('broken: workflows/cycle.json');
    expect(result.problems[0]!.message).toContain('cycle');
    expect(registry.problems()).toEqual(result.problems);
    expect(registry.list().map((w) => w.spec.id)).toEqual(['good-workflow']);
    expect(registry.get('good-workflow').extension.name).toBe('good');
  });

  it('reports a workflow id defined by two extensions and keeps the first', async () => {
    const registry = new WorkflowRegistry({ roots: [join(roots, 'duplicate')] });
    const result = await registry.reload();
    expect(result.workflows).toBe(1);
    expect(result.problems).toEqual([
      {
        dir: join(roots, 'duplicate/beta'),
        message: expect.stringMatching(/workflow "shared" is also defined by extension "alpha".*ignored/),
      },
    ]);
    expect(registry.get('shared').spec.title).toBe('Shared by alpha');
  });

  it('reports a duplicate across two roots, keeping the one of the first root', async () => {
    const other = await tempRoot();
    const gamma = await writeExtension(other, 'gamma', {
      'shared.json': JSON.stringify({
        spec_version: 1,
        id: 'shared',
        title: 'Shared by gamma',
        workflow_form: { type: 'object' },
        data_form: { type: 'object' },
        tasks: [{ id: 'g', operator: 'g', output_dir: 'g', builtin: 'noop' }],
      }),
    });
    const registry = new WorkflowRegistry({ roots: [other, join(roots, 'duplicate')] });
    const result = await registry.reload();
    expect(result.problems.map((p) => p.dir)).toEqual([join(roots, 'duplicate/alpha'), join(roots, 'duplicate/beta')]);
    expect(result.problems[0]!.message).toContain(`also defined by extension "gamma" (${gamma})`);
    expect(registry.get('shared').spec.title).toBe('Shared by gamma');
  });

  it('answers get() of an unknown id with TESSERA_NOT_FOUND listing the known workflows', async () => {
    const registry = new WorkflowRegistry({ roots: [join(roots, 'mixed'), join(roots, 'duplicate')] });
    await registry.reload();
    let error: unknown;
    try {
      registry.get('hello-wrld');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('TESSERA_NOT_FOUND');
    expect((error as TesseraError).message).toBe('workflow "hello-wrld" does not exist; known workflows: good-workflow, shared. Install the extension that provides it: tessera ext list shows the catalog');
  });

  it('picks up a changed workflow module on reload', async () => {
    const root = await tempRoot();
    const dir = await writeExtension(root, 'live', { 'workflows/live.ts': workflowModule('live', 'registry.example/step:1') });
    const registry = new WorkflowRegistry({ roots: [root] });
    expect((await registry.reload()).problems).toEqual([]);
    expect(registry.get('live').spec.tasks[0]!.container!.image).toBe('registry.example/step:1');

    const file = join(dir, 'workflows/live.ts');
    const before = await stat(file);
    await writeFile(file, workflowModule('live', 'registry.example/step:2'));
    // An edit by hand comes later than the file system clock tick of the first write.
    const later = new Date(before.mtimeMs + 2000);
    await utimes(file, later, later);
    expect((await registry.reload()).problems).toEqual([]);
    expect(registry.get('live').spec.tasks[0]!.container!.image).toBe('registry.example/step:2');
  });

  it('picks up new, changed and removed extensions on reload', async () => {
    const root = await tempRoot();
    const spec = (id: string, title: string) =>
      JSON.stringify({
        spec_version: 1,
        id,
        title,
        workflow_form: { type: 'object' },
        data_form: { type: 'object' },
        tasks: [{ id: 'only', operator: 'only', output_dir: 'only', builtin: 'noop' }],
      });
    const first = await writeExtension(root, 'first', { 'wf.json': spec('first', 'v1') });
    const registry = new WorkflowRegistry({ roots: [root] });
    await registry.reload();
    expect(registry.list().map((w) => w.spec.id)).toEqual(['first']);

    await writeFile(join(first, 'wf.json'), spec('first', 'v2'));
    await writeExtension(root, 'second', { 'wf.json': spec('second', 'new') });
    const result = await registry.reload();
    expect(result).toMatchObject({ extensions: 2, workflows: 2, problems: [] });
    expect(registry.get('first').spec.title).toBe('v2');

    await rm(first, { recursive: true });
    await registry.reload();
    expect(registry.list().map((w) => w.spec.id)).toEqual(['second']);
    expect(() => registry.get('first')).toThrow('known workflows: second');
  });

  it('reports an extension that breaks after an edit, and recovers when fixed', async () => {
    const root = await tempRoot();
    const valid = JSON.stringify({
      spec_version: 1,
      id: 'fragile',
      workflow_form: { type: 'object' },
      data_form: { type: 'object' },
      tasks: [{ id: 'a', operator: 'a', output_dir: 'a', builtin: 'noop' }],
    });
    const dir = await writeExtension(root, 'fragile', { 'wf.json': valid });
    const registry = new WorkflowRegistry({ roots: [root] });
    await registry.reload();

    await writeFile(join(dir, 'wf.json'), valid.replace('"builtin":"noop"', '"builtin":"noop","retries":-1'));
    const broken = await registry.reload();
    expect(broken.problems).toEqual([{ dir, message: expect.stringContaining('tasks[0] (id "a").retries must be >= 0') }]);
    expect(registry.list()).toEqual([]);

    await writeFile(join(dir, 'wf.json'), valid);
    expect((await registry.reload()).problems).toEqual([]);
    expect(registry.get('fragile').spec.id).toBe('fragile');
  });
});

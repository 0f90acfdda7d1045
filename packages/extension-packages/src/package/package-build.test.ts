import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { PLATFORM_VERSION, TesseraError } from '@tessera/model';
import { entriesOf, removeTemps, sha, temp, tree, unpack, writeJsonExtension } from './__fixtures__/package-archives.ts';
import { buildPackage, type BuiltPackage } from './package-build.ts';
import { PACKAGE_META_FILE } from './package-format.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../../..');

afterEach(removeTemps);

describe('buildPackage', () => {
  it('builds a folder with a JSON DAG spec into a package that unpacks to compiled workflows with matching checksums', async () => {
    const dir = await writeJsonExtension(await temp(), { title: 'Convert' });
    await writeFile(join(dir, 'README.md'), '# convert\n');
    const built = await buildPackage(dir);
    expect(built.file).toBe(join(dir, 'dist/convert-ext-1.2.3.tgz'));
    expect(built.workflows).toEqual(['convert']);
    expect(built.meta).toMatchObject({ format: 1, name: 'convert-ext', version: '1.2.3', kind: 'workflow', tessera: PLATFORM_VERSION, images: [] });
    expect(Object.keys(built.meta.files).sort()).toEqual([
      'extension/.compiled/convert.json',
      'extension/README.md',
      'extension/tessera-extension.json',
      'extension/workflows/convert.json',
    ]);
    // The archive: meta first, then the files in the order it lists them.
    const entries = await entriesOf(await readFile(built.file));
    expect(entries.map((e) => e.name)).toEqual([PACKAGE_META_FILE, ...Object.keys(built.meta.files)]);
    expect(sha(await readFile(built.file))).toBe(built.sha256);

    const { dest, result } = await unpack(built.file);
    const unpacked = await result;
    expect(unpacked.sha256).toBe(built.sha256);
    expect(unpacked.bytes).toBe(built.bytes);
    expect(unpacked.meta).toEqual(built.meta);
    expect(await tree(dest)).toEqual([
      'extension/.compiled/convert.json',
      'extension/README.md',
      'extension/tessera-extension.json',
      'extension/workflows/convert.json',
      PACKAGE_META_FILE,
    ]);
    for (const [path, f] of Object.entries(built.meta.files)) {
      const data = await readFile(join(dest, path));
      expect({ path, sha256: sha(data), size: data.length }).toEqual({ path, ...f });
    }
    // The packed manifest names the compiled specs; the loaded workflow comes from there.
    const manifest = JSON.parse(await readFile(join(dest, 'extension/tessera-extension.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ name: 'convert-ext', title: 'Convert', workflows: ['.compiled/convert.json'] });
    expect(unpacked.extension.manifest.workflows).toEqual(['.compiled/convert.json']);
    expect(unpacked.extension.workflows.map((w) => w.file)).toEqual([join(dest, 'extension/.compiled/convert.json')]);
    expect(unpacked.extension.workflows[0]!.spec.tasks.map((t) => [t.id, t.upstream])).toEqual([['first', []], ['second', ['first']]]);
    expect(JSON.parse(await readFile(join(dest, PACKAGE_META_FILE), 'utf8'))).toEqual(built.meta);
  });

  it('compiles a .ts workflow from a folder outside the repository (no package.json) that imports @tessera/sdk', async () => {
    const dir = await temp('tessera-outside-');
    await mkdir(join(dir, 'workflows'));
    await writeFile(
      join(dir, 'workflows/outside.ts'),
      [
        "import { defineOperator, defineWorkflow } from '@tessera/sdk';",
        '',
        "const workflow = defineWorkflow({ id: 'outside-wf', title: 'Outside' });",
        "const first = workflow.task(defineOperator({ name: 'say', level: 'batch', process: { command: ['echo', 'hi'] } }));",
        "workflow.task(defineOperator({ name: 'noop', builtin: 'noop' }), { upstream: [first] });",
        'export default workflow;',
        '',
      ].join('\n'),
    );
    await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name: 'outside', version: '0.0.1', kind: 'workflow', workflows: ['workflows/outside.ts'] }));
    expect(existsSync(join(dir, 'package.json'))).toBe(false);
    // Built the way `tessera ext build` runs it: plain Node with tsx, where the SDK resolution
    // hooks apply. (In-process, Vitest's module runner would resolve the module's imports itself.)
    const work = await temp();
    const out = join(work, 'outside.tgz');
    await writeFile(
      join(work, 'build.mjs'),
      `const { buildPackage } = await import(${JSON.stringify(pathToFileURL(join(here, 'package-build.ts')).href)});\n` +
        `const built = await buildPackage(${JSON.stringify(dir)}, { out: ${JSON.stringify(out)} });\n` +
        `process.stdout.write(JSON.stringify(built));\n`,
    );
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(work, 'build.mjs')], { cwd: repoRoot, timeout: 20_000 });
    const built = JSON.parse(stdout) as BuiltPackage;
    expect(built.file).toBe(out);
    expect(built.workflows).toEqual(['outside-wf']);
    expect(Object.keys(built.meta.files).sort()).toEqual(['extension/.compiled/outside-wf.json', 'extension/tessera-extension.json', 'extension/workflows/outside.ts']);

    const { result } = await unpack(out);
    const unpacked = await result;
    expect(unpacked.extension.manifest.workflows).toEqual(['.compiled/outside-wf.json']);
    const spec = unpacked.extension.workflows[0]!.spec;
    expect(spec.id).toBe('outside-wf');
    expect(spec.tasks.map((t) => [t.id, t.upstream])).toEqual([['say', []], ['noop', ['say']]]);
  });

  it('gives the same files the same checksums (only built_at and the archive differ)', async () => {
    const a = await writeJsonExtension(await temp());
    await writeFile(join(a, 'notes.txt'), 'same\n');
    const b = join(await temp(), 'copy');
    await cp(a, b, { recursive: true });
    const first = await buildPackage(a, { out: join(await temp(), 'a.tgz') });
    const again = await buildPackage(a, { out: join(await temp(), 'a.tgz') });
    const copy = await buildPackage(b, { out: join(await temp(), 'b.tgz') });
    expect(again.meta.files).toEqual(first.meta.files);
    expect(copy.meta.files).toEqual(first.meta.files);
    expect(JSON.stringify(Object.keys(copy.meta.files))).toBe(JSON.stringify(Object.keys(first.meta.files)));
    const { built_at: _a, ...restFirst } = first.meta;
    const { built_at: _c, ...restCopy } = copy.meta;
    expect(restCopy).toEqual(restFirst);
    // A changed file changes its checksum and nothing else's.
    await writeFile(join(b, 'notes.txt'), 'different\n');
    const changed = await buildPackage(b, { out: join(await temp(), 'c.tgz') });
    for (const path of Object.keys(first.meta.files)) {
      if (path === 'extension/notes.txt') expect(changed.meta.files[path]).not.toEqual(first.meta.files[path]);
      else expect(changed.meta.files[path]).toEqual(first.meta.files[path]);
    }
  });

  it('refuses a symlink that points out of the extension folder, naming it', async () => {
    const outside = await temp('tessera-secret-');
    await writeFile(join(outside, 'secret.txt'), 'not yours\n');
    const dir = await writeJsonExtension(await temp());
    await mkdir(join(dir, 'data'));
    await symlink(join(outside, 'secret.txt'), join(dir, 'data/secret.txt'));
    const out = join(await temp(), 'x.tgz');
    const err = await buildPackage(dir, { out }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe('TESSERA_INVALID_PACKAGE');
    expect((err as TesseraError).message).toContain('data/secret.txt is a link out of the extension folder');
    expect(existsSync(out)).toBe(false);
    expect(await readdir(join(out, '..'))).toEqual([]); // no temporary build folder left either

    // A link to a folder outside is refused the same way.
    await rm(join(dir, 'data/secret.txt'));
    await symlink(outside, join(dir, 'data/elsewhere'));
    await expect(buildPackage(dir, { out })).rejects.toThrow('data/elsewhere is a link out of the extension folder');
  });

  it('follows symlinks that stay inside the extension folder, packing their content', async () => {
    const dir = await writeJsonExtension(await temp());
    await mkdir(join(dir, 'shared'));
    await writeFile(join(dir, 'shared/lib.sh'), 'echo lib\n');
    await symlink('../shared/lib.sh', join(dir, 'workflows/lib.sh'));
    await symlink('shared', join(dir, 'linked-dir'));
    const built = await buildPackage(dir, { out: join(await temp(), 'x.tgz') });
    const lib = { sha256: sha('echo lib\n'), size: 9 };
    expect(built.meta.files['extension/shared/lib.sh']).toEqual(lib);
    expect(built.meta.files['extension/workflows/lib.sh']).toEqual(lib);
    expect(built.meta.files['extension/linked-dir/lib.sh']).toEqual(lib);
    // They go in as plain files, so the package unpacks.
    const entries = await entriesOf(await readFile(built.file));
    expect(new Set(entries.map((e) => e.type))).toEqual(new Set(['file']));
    const { dest, result } = await unpack(built.file);
    await result;
    expect(await readFile(join(dest, 'extension/linked-dir/lib.sh'), 'utf8')).toBe('echo lib\n');
  });

  it('leaves dist/, node_modules/, .git/ (and stale .compiled/) of the folder out of the package', async () => {
    const dir = await writeJsonExtension(await temp());
    for (const skipped of ['dist', 'node_modules/some-lib', '.git/objects', '.compiled']) {
      await mkdir(join(dir, skipped), { recursive: true });
      await writeFile(join(dir, skipped, 'file.txt'), 'skip me\n');
    }
    await writeFile(join(dir, '.compiled/convert.json'), '{"stale": true}');
    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src/keep.txt'), 'keep me\n');
    const built = await buildPackage(dir);
    expect(Object.keys(built.meta.files).sort()).toEqual([
      'extension/.compiled/convert.json',
      'extension/src/keep.txt',
      'extension/tessera-extension.json',
      'extension/workflows/convert.json',
    ]);
    const entries = await entriesOf(await readFile(built.file));
    expect(entries.map((e) => e.name).filter((n) => /dist|node_modules|\.git\b|skip/.test(n))).toEqual([]);
    const compiled = entries.find((e) => e.name === 'extension/.compiled/convert.json')!;
    expect(JSON.parse(compiled.data!.toString('utf8'))).toMatchObject({ id: 'convert' });
  });
});

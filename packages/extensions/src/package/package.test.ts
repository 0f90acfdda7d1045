import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_VERSION, TesseraError, type ErrorCode } from '@tessera/model';
import { buildPackage, type BuiltPackage } from './package-build.ts';
import { PACKAGE_FORMAT, PACKAGE_META_FILE, type PackageMeta } from './package-format.ts';
import { unpackPackage } from './package-read.ts';

const MB = 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../../../..');
const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

const temps: string[] = [];
async function temp(prefix = 'tessera-pkg-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** A JSON DAG spec of two process tasks (the shape writeShellExtension writes). */
function dagSpec(id: string, tasks: { id: string; upstream?: string[] }[] = [{ id: 'first' }, { id: 'second', upstream: ['first'] }]) {
  return {
    spec_version: 1,
    id,
    workflow_form: { type: 'object' },
    data_form: { type: 'object' },
    tasks: tasks.map((t) => ({ id: t.id, operator: t.id, output_dir: t.id, upstream: t.upstream ?? [], process: { command: ['sh', '-c', `echo ${t.id}`] } })),
  };
}

/** Writes an extension folder with a manifest and one JSON DAG spec at workflows/<id>.json. */
async function writeJsonExtension(dir: string, manifest: Record<string, unknown> = {}, spec: unknown = dagSpec('convert')): Promise<string> {
  await mkdir(join(dir, 'workflows'), { recursive: true });
  await writeFile(join(dir, 'workflows/convert.json'), JSON.stringify(spec, null, 2));
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name: 'convert-ext', version: '1.2.3', kind: 'workflow', workflows: ['workflows/convert.json'], ...manifest }, null, 2));
  return dir;
}

interface Entry {
  name: string;
  data?: Buffer;
  type?: Header['type'];
  linkname?: string;
}

/** A gzipped tar of exactly these entries, in this order (tar-stream computes the header checksums). */
async function tgz(entries: Entry[]): Promise<Buffer> {
  const pack = tarPack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((done, fail) => {
    pack.on('end', done);
    pack.on('error', fail);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    await new Promise<void>((done, fail) => {
      const header = { name: e.name, type, mode: type === 'directory' ? 0o755 : 0o644, mtime: new Date(0), ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) };
      const callback = (err?: Error | null) => (err ? fail(err) : done());
      if (type === 'file') pack.entry(header, e.data ?? Buffer.alloc(0), callback);
      else pack.entry(header, callback);
    });
  }
  pack.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks));
}

/** The entries of a package, in order. */
async function entriesOf(archive: Buffer): Promise<Entry[]> {
  const out: Entry[] = [];
  const extract = tarExtract();
  const reading = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      out.push({ name: entry.header.name, type: entry.header.type ?? 'file', data: Buffer.concat(chunks) });
    }
  })();
  extract.end(gunzipSync(archive));
  await reading;
  return out;
}

/** The meta that describes `files` correctly (a fresh, hand-made tessera-package.json). */
function metaFor(files: Entry[], overrides: Partial<PackageMeta> = {}): PackageMeta {
  return {
    format: PACKAGE_FORMAT,
    name: 'convert-ext',
    version: '1.2.3',
    kind: 'workflow',
    built_at: new Date(0).toISOString(),
    tessera: PLATFORM_VERSION,
    files: Object.fromEntries(files.map((f) => [f.name, { sha256: sha(f.data ?? Buffer.alloc(0)), size: (f.data ?? Buffer.alloc(0)).length }])),
    images: [],
    ...overrides,
  };
}

const metaEntry = (meta: unknown): Entry => ({ name: PACKAGE_META_FILE, data: Buffer.from(JSON.stringify(meta)) });

/** The extension files of a valid compiled package: the manifest (workflows -> .compiled) and the compiled spec. */
function extensionFiles(manifest: Record<string, unknown> = {}, spec: unknown = dagSpec('convert')): Entry[] {
  return [
    { name: 'extension/tessera-extension.json', data: Buffer.from(JSON.stringify({ name: 'convert-ext', version: '1.2.3', kind: 'workflow', workflows: ['.compiled/convert.json'], ...manifest })) },
    { name: 'extension/.compiled/convert.json', data: Buffer.from(JSON.stringify(spec)) },
  ];
}

/** A package crafted by hand: correct meta first, then the files. */
const crafted = (files: Entry[], overrides: Partial<PackageMeta> = {}) => tgz([metaEntry(metaFor(files, overrides)), ...files]);

/** Unpacks into a fresh `dest` (which does not exist yet). */
async function unpack(archive: Buffer | string, maxBytes = 16 * MB) {
  const dest = join(await temp(), 'dest');
  const source = typeof archive === 'string' ? createReadStream(archive) : Readable.from([archive]);
  return { dest, result: unpackPackage(source, dest, { maxBytes }) };
}

/** Unpacks a package that must be refused: checks the code, that the message names the problem, and that nothing of it was kept. */
async function refused(archive: Buffer, code: ErrorCode, ...mentions: (string | RegExp)[]): Promise<TesseraError> {
  return refusedWith(archive, 16 * MB, code, ...mentions);
}

async function refusedWith(archive: Buffer, maxBytes: number, code: ErrorCode, ...mentions: (string | RegExp)[]): Promise<TesseraError> {
  const { dest, result } = await unpack(archive, maxBytes);
  const err = await result.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the package was accepted').toBeInstanceOf(TesseraError);
  const e = err as TesseraError;
  expect(e.code, e.message).toBe(code);
  for (const m of mentions) {
    if (typeof m === 'string') expect(e.message).toContain(m);
    else expect(e.message).toMatch(m);
  }
  expect(e.message).toContain('nothing of it was kept');
  expect(existsSync(dest), `${dest} was left behind`).toBe(false);
  return e;
}

/** Every file under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

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

describe('unpackPackage', () => {
  let built: BuiltPackage;
  let archive: Buffer;
  let entries: Entry[];
  let buildDir: string;

  beforeAll(async () => {
    buildDir = await mkdtemp(join(tmpdir(), 'tessera-pkg-base-'));
    await writeJsonExtension(join(buildDir, 'ext'));
    built = await buildPackage(join(buildDir, 'ext'), { out: join(buildDir, 'convert.tgz') });
    archive = await readFile(built.file);
    entries = await entriesOf(archive);
  });
  afterAll(async () => {
    await rm(buildDir, { recursive: true, force: true });
  });

  /** The built package's meta (parsed anew) and its other entries. */
  const parts = () => ({
    meta: JSON.parse(entries[0]!.data!.toString('utf8')) as PackageMeta,
    files: entries.slice(1).map((e) => ({ ...e })),
  });

  it('accepts a hand-made package like the built one (the crafting helpers make valid packages)', async () => {
    const { meta, files } = parts();
    const { dest, result } = await unpack(await tgz([metaEntry(meta), ...files]));
    expect((await result).meta).toEqual(built.meta);
    expect(await tree(dest)).toContain('extension/.compiled/convert.json');
    const { result: small } = await unpack(await crafted(extensionFiles()));
    expect((await small).extension.workflows.map((w) => w.spec.id)).toEqual(['convert']);
  });

  it('refuses an entry with an absolute path', async () => {
    const files = [...extensionFiles(), { name: '/etc/evil.sh', data: Buffer.from('rm -rf /') }];
    await refused(await crafted(files), 'TESSERA_INVALID_PACKAGE', 'entry "/etc/evil.sh" has an absolute path');
  });

  it('refuses an entry that climbs out with ".."', async () => {
    const files = [...extensionFiles(), { name: 'extension/../../evil.sh', data: Buffer.from('x') }];
    await refused(await tgz([metaEntry(metaFor(extensionFiles())), ...files]), 'TESSERA_INVALID_PACKAGE', 'entry "extension/../../evil.sh" climbs out of the archive with ".."');
  });

  it('refuses a symlink entry', async () => {
    const archive = await tgz([metaEntry(metaFor(extensionFiles())), ...extensionFiles(), { name: 'extension/passwd', type: 'symlink', linkname: '/etc/passwd' }]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', 'entry "extension/passwd" is a link (to "/etc/passwd")');
  });

  it('refuses a hardlink entry', async () => {
    const archive = await tgz([metaEntry(metaFor(extensionFiles())), ...extensionFiles(), { name: 'extension/copy.json', type: 'link', linkname: 'extension/tessera-extension.json' }]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', 'entry "extension/copy.json" is a link (to "extension/tessera-extension.json")');
  });

  it('refuses a file whose content was altered after its checksum was written', async () => {
    const { meta, files } = parts();
    const spec = files.find((f) => f.name === 'extension/workflows/convert.json')!;
    const altered = Buffer.from(spec.data!.toString('utf8').replace('echo first', 'echo FIRST'));
    expect(altered.length).toBe(spec.data!.length);
    spec.data = altered;
    await refused(await tgz([metaEntry(meta), ...files]), 'TESSERA_INVALID_PACKAGE', 'checksum mismatch for "extension/workflows/convert.json"', 'altered');
  });

  it('refuses a file whose size differs from tessera-package.json', async () => {
    const files = extensionFiles();
    const meta = metaFor(files);
    meta.files['extension/.compiled/convert.json']!.size += 1;
    await refused(await tgz([metaEntry(meta), ...files]), 'TESSERA_INVALID_PACKAGE', 'checksum mismatch for "extension/.compiled/convert.json"', `(${files[1]!.data!.length + 1} bytes)`, `holds ${sha(files[1]!.data!).slice(0, 12)}`);
  });

  it('refuses an entry that tessera-package.json does not list', async () => {
    const files = extensionFiles();
    const archive = await tgz([metaEntry(metaFor(files)), ...files, { name: 'extension/stowaway.sh', data: Buffer.from('echo hi') }]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', 'entry "extension/stowaway.sh" is not listed in tessera-package.json');
  });

  it('refuses a listed entry outside extension/ and images/', async () => {
    const files = [...extensionFiles(), { name: 'elsewhere/x.txt', data: Buffer.from('x') }];
    await refused(await crafted(files), 'TESSERA_INVALID_PACKAGE', 'entry "elsewhere/x.txt" is outside extension/ and images/');
  });

  it('refuses a package missing a file that tessera-package.json lists', async () => {
    const { meta, files } = parts();
    const archive = await tgz([metaEntry(meta), ...files.filter((f) => f.name !== 'extension/workflows/convert.json')]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', '1 file listed in tessera-package.json is missing: extension/workflows/convert.json');
  });

  it('refuses an entry that is in the archive twice', async () => {
    const files = extensionFiles();
    await refused(await tgz([metaEntry(metaFor(files)), ...files, files[0]!]), 'TESSERA_INVALID_PACKAGE', 'entry "extension/tessera-extension.json" is in the archive twice');
  });

  it('refuses an archive whose first entry is not tessera-package.json', async () => {
    const files = extensionFiles();
    await refused(await tgz([...files, metaEntry(metaFor(files))]), 'TESSERA_INVALID_PACKAGE', 'its first entry is "extension/tessera-extension.json", not tessera-package.json');
  });

  it('refuses a tessera-package.json that is not JSON', async () => {
    await refused(await tgz([{ name: PACKAGE_META_FILE, data: Buffer.from('{"format": 1, ') }, ...extensionFiles()]), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json is not JSON');
    await refused(await tgz([{ name: PACKAGE_META_FILE, data: Buffer.from('null') }, ...extensionFiles()]), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json is not an object');
  });

  it('refuses a tessera-package.json of another format', async () => {
    await refused(await crafted(extensionFiles(), { format: 2 as 1 }), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json has format 2; this Tessera reads format 1');
  });

  it('refuses a tessera-package.json that lacks a field (name, version, kind, files, images) or has a bad files entry', async () => {
    const files = extensionFiles();
    const without = (field: keyof PackageMeta) => {
      const meta: Partial<PackageMeta> = metaFor(files);
      delete meta[field];
      return tgz([metaEntry(meta), ...files]);
    };
    await refused(await without('name'), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json lacks name or version');
    await refused(await without('version'), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json lacks name or version');
    await refused(await without('files'), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json lacks its list of files');
    await refused(await without('images'), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json lacks its list of images');
    await refused(await without('kind'), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json has kind undefined');
    const badEntry = metaFor(files);
    badEntry.files['extension/tessera-extension.json'] = { size: 3 } as never;
    await refused(await tgz([metaEntry(badEntry), ...files]), 'TESSERA_INVALID_PACKAGE', 'files["extension/tessera-extension.json"] needs a sha256 and a size');
  });

  it('refuses bytes that are not gzip', async () => {
    const random = createHash('sha512').update('not a package').digest();
    await refused(Buffer.concat([random, random, random]), 'TESSERA_INVALID_PACKAGE', 'it is not a gzipped tar archive', 'incorrect header check');
  });

  it('refuses a gzip that holds no tar', async () => {
    await refused(gzipSync(Buffer.from('just some text, not a tar archive at all\n'.repeat(20))), 'TESSERA_INVALID_PACKAGE', /not a gzipped tar archive|empty/);
  });

  it('refuses a truncated archive (the package cut in half)', async () => {
    await refused(archive.subarray(0, Math.floor(archive.length / 2)), 'TESSERA_INVALID_PACKAGE', 'it is not a gzipped tar archive, or it is cut short', 'unexpected end of file');
  });

  it('refuses an archive larger than maxBytes', async () => {
    const big = randomBytes(64 * 1024); // does not compress
    const files = [...extensionFiles(), { name: 'extension/big.bin', data: big }];
    const a = await crafted(files);
    expect(a.length).toBeGreaterThan(32 * 1024);
    await refusedWith(a, 32 * 1024, 'TESSERA_PAYLOAD_TOO_LARGE', 'it is larger than the limit of', 'TESSERA_EXTENSION_MAX_PACKAGE_MB');
  });

  it('refuses an archive that unpacks to more than maxBytes (a gzip bomb)', async () => {
    const zeros = Buffer.alloc(8 * MB);
    const bomb = await crafted([...extensionFiles(), { name: 'extension/zeros.bin', data: zeros }]);
    expect(bomb.length).toBeLessThan(64 * 1024);
    await refusedWith(bomb, 1 * MB, 'TESSERA_PAYLOAD_TOO_LARGE', 'it unpacks to more than the limit of 1 MB');
  });

  it('refuses a package whose manifest is invalid (a bad name), naming the field and not the staging folder', async () => {
    const e = await refused(await crafted(extensionFiles({ name: 'Bad_Name' }), { name: 'Bad_Name' }), 'TESSERA_INVALID_MANIFEST', 'tessera-extension.json.name', '<package>');
    expect(e.message).not.toContain(tmpdir());
    expect(e.details.map((d) => d.where)).toContain('tessera-extension.json.name');
  });

  it('refuses a package whose manifest has an unknown kind', async () => {
    const e = await refused(await crafted(extensionFiles({ kind: 'plugin' })), 'TESSERA_INVALID_MANIFEST', 'tessera-extension.json.kind');
    expect(e.details.every((d) => d.where === 'tessera-extension.json.kind')).toBe(true);
  });

  it('refuses a tessera-package.json whose kind is unknown or differs from the manifest', async () => {
    await refused(await crafted(extensionFiles(), { kind: 'plugin' as 'workflow' }), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json has kind "plugin"; a package is of kind "workflow" or "application"');
    await refused(await crafted(extensionFiles(), { kind: 'application' }), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json says kind "application", its manifest says kind "workflow"');
  });

  it('refuses a package made for another Tessera (platform range)', async () => {
    await refused(await crafted(extensionFiles({ platform: '>=99' })), 'TESSERA_INVALID_MANIFEST', 'platform asks for Tessera >=99', `this is Tessera ${PLATFORM_VERSION}`);
  });

  it('refuses a compiled DAG spec with a cycle', async () => {
    const spec = dagSpec('convert', [{ id: 'a', upstream: ['b'] }, { id: 'b', upstream: ['a'] }]);
    await refused(await crafted(extensionFiles({}, spec)), 'TESSERA_INVALID_SPEC', 'convert-ext: .compiled/convert.json', /is part of a cycle: (a -> b -> a|b -> a -> b)/);
  });

  it('refuses a compiled DAG spec with an unknown upstream', async () => {
    const spec = dagSpec('convert', [{ id: 'a' }, { id: 'b', upstream: ['ghost'] }]);
    await refused(await crafted(extensionFiles({}, spec)), 'TESSERA_INVALID_SPEC', '.compiled/convert.json', 'tasks[1] (id "b"): unknown upstream task "ghost"');
  });

  it('refuses a workflow left as a module without running it', async () => {
    const marker = join(await temp(), 'ran.txt');
    const files: Entry[] = [
      { name: 'extension/tessera-extension.json', data: Buffer.from(JSON.stringify({ name: 'convert-ext', version: '1.2.3', kind: 'workflow', workflows: ['workflows/wf.mjs'] })) },
      { name: 'extension/workflows/wf.mjs', data: Buffer.from(`import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(marker)}, 'ran');\nexport default ${JSON.stringify(dagSpec('from-module'))};\n`) },
    ];
    await refused(await crafted(files), 'TESSERA_INVALID_PACKAGE', 'workflow "workflows/wf.mjs" is a module, not a compiled DAG spec', 'tessera ext build');
    expect(existsSync(marker), 'the module of an uploaded package was executed').toBe(false);
  });

  it('refuses a version that is not semver (which would break sorting the catalog)', async () => {
    const files = extensionFiles({ version: '1.0.0-01' });
    await refused(await crafted(files, { version: '1.0.0-01' }), 'TESSERA_INVALID_MANIFEST', '"1.0.0-01" is not a semantic version');
  });

  it('refuses an entry that is both a file and a folder with 400, not a server error', async () => {
    const files: Entry[] = [...extensionFiles(), { name: 'extension/a', data: Buffer.from('file') }, { name: 'extension/a/b', data: Buffer.from('below a file') }];
    await refused(await crafted(files), 'TESSERA_INVALID_PACKAGE', 'both a file and a folder');
  });

  it('refuses gzip data that goes on inflating after the end of the tar', async () => {
    const good = gunzipSync(await crafted(extensionFiles()));
    const archive = gzipSync(Buffer.concat([good, Buffer.alloc(4 * MB)]));
    expect(archive.length).toBeLessThan(MB);
    await refusedWith(archive, MB / 2, 'TESSERA_PAYLOAD_TOO_LARGE', 'unpacks to more than the limit');
  });

  it.each([
    ['tagged with another name', { RepoTags: ['tessera/base-python:bookworm'] }, undefined, 'it is tagged tessera/base-python:bookworm, not tessera-ext/convert:1.2.3'],
    ['tagged with two names', { RepoTags: ['tessera-ext/convert:1.2.3', 'victim:1'] }, undefined, 'it is tagged tessera-ext/convert:1.2.3, victim:1'],
    ['of another id', { RepoTags: ['tessera-ext/convert:1.2.3'], Config: `${'b'.repeat(64)}.json` }, undefined, `its id is sha256:${'b'.repeat(64)}`],
    ['naming another image in its repositories file', { RepoTags: ['tessera-ext/convert:1.2.3'] }, { victim: { '1': 'x' } }, 'its repositories file also names victim:1'],
  ])('refuses an image archive %s (docker load would move that tag)', async (_what, manifestEntry, repositories, message) => {
    const id = `sha256:${'a'.repeat(64)}`;
    const imageTar = await tgz([
      { name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: `${'a'.repeat(64)}.json`, Layers: [], ...manifestEntry }])) },
      ...(repositories ? [{ name: 'repositories', data: Buffer.from(JSON.stringify(repositories)) }] : []),
    ]);
    const files: Entry[] = [...extensionFiles({ images: [{ name: 'tessera-ext/convert:1.2.3', context: '.compiled' }] }), { name: 'images/0.tar', data: gunzipSync(imageTar) }];
    await refused(await crafted(files, { images: [{ name: 'tessera-ext/convert:1.2.3', id, file: 'images/0.tar' }] }), 'TESSERA_INVALID_PACKAGE', `image tessera-ext/convert:1.2.3: ${message}`);
  });

  it('refuses a tessera-package.json whose name or version differs from the manifest', async () => {
    await refused(await crafted(extensionFiles(), { name: 'other-ext' }), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json says other-ext@1.2.3, its manifest says convert-ext@1.2.3');
    await refused(await crafted(extensionFiles(), { version: '9.9.9' }), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json says convert-ext@9.9.9, its manifest says convert-ext@1.2.3');
  });

  it('refuses an image listed in tessera-package.json that the manifest does not list', async () => {
    const images = [{ name: 'registry.example/sneaky:1.0', id: `sha256:${'a'.repeat(64)}` }];
    await refused(await crafted(extensionFiles(), { images }), 'TESSERA_INVALID_PACKAGE', 'tessera-package.json carries image registry.example/sneaky:1.0, which the manifest does not list');
  });

  it('refuses a dest that exists, and leaves it and its content alone', async () => {
    const dest = join(await temp(), 'existing');
    await mkdir(dest);
    await writeFile(join(dest, 'keep.txt'), 'precious\n');
    await expect(unpackPackage(Readable.from([archive]), dest, { maxBytes: 16 * MB })).rejects.toThrow(/exists|EEXIST/);
    expect(await readFile(join(dest, 'keep.txt'), 'utf8')).toBe('precious\n');
  });
});

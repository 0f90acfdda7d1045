import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_VERSION } from '@tessera/model';
import { MB, crafted, dagSpec, entriesOf, extensionFiles, metaEntry, metaFor, refused, removeTemps, sha, temp, tgz, tree, unpack, writeJsonExtension, type Entry } from './__fixtures__/package-archives.ts';
import { buildPackage, type BuiltPackage } from './package-build.ts';
import { PACKAGE_META_FILE, type PackageMeta } from './package-format.ts';
import { unpackPackage } from './package-read.ts';

afterEach(removeTemps);

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

  it('refuses a package missing a file that tessera-package.json lists', async () => {
    const { meta, files } = parts();
    const archive = await tgz([metaEntry(meta), ...files.filter((f) => f.name !== 'extension/workflows/convert.json')]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', '1 file listed in tessera-package.json is missing: extension/workflows/convert.json');
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

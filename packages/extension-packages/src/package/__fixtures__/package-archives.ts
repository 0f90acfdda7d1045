/** Packages for the package tests: built from a folder, or crafted entry by entry (bad ones included), and the checks on a refusal. */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';
import { expect } from 'vitest';
import { PLATFORM_VERSION, TesseraError, type ErrorCode } from '@tessera/model';
import { PACKAGE_FORMAT, PACKAGE_META_FILE, type PackageMeta } from '../package-format.ts';
import { unpackPackage } from '../package-read.ts';

export const MB = 1024 * 1024;
export const sha = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

const temps: string[] = [];
export async function temp(prefix = 'tessera-pkg-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
/** Removes the folders temp() made; each test file calls it in afterEach. */
export async function removeTemps(): Promise<void> {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** A JSON DAG spec of two process tasks (the shape writeShellExtension writes). */
export function dagSpec(id: string, tasks: { id: string; upstream?: string[] }[] = [{ id: 'first' }, { id: 'second', upstream: ['first'] }]) {
  return {
    spec_version: 1,
    id,
    workflow_form: { type: 'object' },
    data_form: { type: 'object' },
    tasks: tasks.map((t) => ({ id: t.id, operator: t.id, output_dir: t.id, upstream: t.upstream ?? [], process: { command: ['sh', '-c', `echo ${t.id}`] } })),
  };
}

/** Writes an extension folder with a manifest and one JSON DAG spec at workflows/<id>.json. */
export async function writeJsonExtension(dir: string, manifest: Record<string, unknown> = {}, spec: unknown = dagSpec('convert')): Promise<string> {
  await mkdir(join(dir, 'workflows'), { recursive: true });
  await writeFile(join(dir, 'workflows/convert.json'), JSON.stringify(spec, null, 2));
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name: 'convert-ext', version: '1.2.3', kind: 'workflow', workflows: ['workflows/convert.json'], ...manifest }, null, 2));
  return dir;
}

export interface Entry {
  name: string;
  data?: Buffer;
  type?: Header['type'];
  linkname?: string;
}

/** A gzipped tar of exactly these entries, in this order (tar-stream computes the header checksums). */
export async function tgz(entries: Entry[]): Promise<Buffer> {
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
export async function entriesOf(archive: Buffer): Promise<Entry[]> {
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
export function metaFor(files: Entry[], overrides: Partial<PackageMeta> = {}): PackageMeta {
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

export const metaEntry = (meta: unknown): Entry => ({ name: PACKAGE_META_FILE, data: Buffer.from(JSON.stringify(meta)) });

/** The extension files of a valid compiled package: the manifest (workflows -> .compiled) and the compiled spec. */
export function extensionFiles(manifest: Record<string, unknown> = {}, spec: unknown = dagSpec('convert')): Entry[] {
  return [
    { name: 'extension/tessera-extension.json', data: Buffer.from(JSON.stringify({ name: 'convert-ext', version: '1.2.3', kind: 'workflow', workflows: ['.compiled/convert.json'], ...manifest })) },
    { name: 'extension/.compiled/convert.json', data: Buffer.from(JSON.stringify(spec)) },
  ];
}

/** A package crafted by hand: correct meta first, then the files. */
export const crafted = (files: Entry[], overrides: Partial<PackageMeta> = {}) => tgz([metaEntry(metaFor(files, overrides)), ...files]);

/** Unpacks into a fresh `dest` (which does not exist yet). */
export async function unpack(archive: Buffer | string, maxBytes = 16 * MB) {
  const dest = join(await temp(), 'dest');
  const source = typeof archive === 'string' ? createReadStream(archive) : Readable.from([archive]);
  return { dest, result: unpackPackage(source, dest, { maxBytes }) };
}

/** Unpacks a package that must be refused: checks the code, that the message names the problem, and that nothing of it was kept. */
export async function refused(archive: Buffer, code: ErrorCode, ...mentions: (string | RegExp)[]): Promise<TesseraError> {
  return refusedWith(archive, 16 * MB, code, ...mentions);
}

export async function refusedWith(archive: Buffer, maxBytes: number, code: ErrorCode, ...mentions: (string | RegExp)[]): Promise<TesseraError> {
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
export async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

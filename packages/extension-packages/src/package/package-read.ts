import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import { TesseraError, type ErrorCode } from '@tessera/model';
import { loadExtensionFolder, type LoadedExtension } from '../extension-loader.ts';
import { PACKAGE_EXTENSION_DIR, PACKAGE_FORMAT, PACKAGE_IMAGES_DIR, PACKAGE_META_FILE, type PackageMeta } from './package-format.ts';

export interface UnpackedPackage {
  meta: PackageMeta;
  extension: LoadedExtension;
  /** SHA-256 of the archive as received. */
  sha256: string;
  bytes: number;
}

function refuse(message: string, code: ErrorCode = 'TESSERA_INVALID_PACKAGE'): TesseraError {
  return new TesseraError(code, `the extension package was refused: ${message}; nothing of it was kept`);
}

const MAX_NAME_BYTES = 255;
const MAX_PATH_BYTES = 4096;

/** An archive path is taken only as a plain relative path: no absolute paths, no `..`, no empty or odd segments. */
function checkPath(name: string): string {
  const clean = name.replace(/\/+$/, '');
  if (clean.startsWith('/') || /^[A-Za-z]:/.test(clean) || clean.includes('\\') || clean.includes('\0')) {
    throw refuse(`entry "${name}" has an absolute path; a package holds only paths relative to its root`);
  }
  const parts = clean.split('/');
  if (parts.some((p) => p === '..')) throw refuse(`entry "${name}" climbs out of the archive with ".."`);
  if (parts.some((p) => p === '' || p === '.')) throw refuse(`entry "${name}" has an empty or "." path segment`);
  // The file systems a package is unpacked on take names of 255 bytes and paths of 4,096.
  const long = parts.find((p) => Buffer.byteLength(p) > MAX_NAME_BYTES);
  if (long !== undefined || Buffer.byteLength(clean) > MAX_PATH_BYTES) {
    throw refuse(`entry "${clean.slice(0, 80)}…" has a ${long !== undefined ? `name of ${Buffer.byteLength(long)} bytes (at most ${MAX_NAME_BYTES})` : `path of ${Buffer.byteLength(clean)} bytes (at most ${MAX_PATH_BYTES})`}`);
  }
  return clean;
}

/**
 * Reads a package from a stream into `dest` (which must not exist), checking as it
 * goes: gzip + tar, entry paths and types, the size limit (of the archive and of what
 * it unpacks to), every checksum, then the manifest and the DAG specs. Any failure
 * removes `dest` and throws TESSERA_INVALID_PACKAGE (or TESSERA_PAYLOAD_TOO_LARGE).
 */
export async function unpackPackage(source: Readable, dest: string, options: { maxBytes: number }): Promise<UnpackedPackage> {
  // Made before the clean-up below takes over: a `dest` that already exists is not ours to remove.
  try {
    await mkdir(dest, { recursive: false });
  } catch (err) {
    source.resume();
    throw err;
  }
  try {
    return await unpack(source, dest, options.maxBytes);
  } catch (err) {
    await rm(dest, { recursive: true, force: true });
    // The rest of an HTTP upload is read and dropped, not cut off: a client still
    // sending would otherwise see a broken connection instead of the answer.
    source.resume();
    if (err instanceof TesseraError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') {
      throw refuse(`an entry is both a file and a folder (${code}); build it with \`tessera ext build\``);
    }
    const message = (err as Error).message;
    if (/incorrect header check|unexpected end of file|invalid (tar|block)|Unexpected end of data|invalid distance|too far back/i.test(message)) {
      throw refuse(`it is not a gzipped tar archive, or it is cut short (${message}); build it with \`tessera ext build\``);
    }
    // zlib's own errors (Z_DATA_ERROR, Z_BUF_ERROR): the gzip stream is damaged.
    if (typeof code === 'string' && code.startsWith('Z_')) {
      throw refuse(`its gzip data is damaged (${message}); build it again with \`tessera ext build\` and upload it whole`);
    }
    throw err;
  }
}

async function unpack(source: Readable, dest: string, maxBytes: number): Promise<UnpackedPackage> {
  const limitMb = Math.round(maxBytes / 1024 / 1024);
  const archiveHash = createHash('sha256');
  let archiveBytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, next) {
      archiveBytes += chunk.length;
      if (archiveBytes > maxBytes) {
        next(new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', `the extension package was refused: it is larger than the limit of ${limitMb} MB (TESSERA_EXTENSION_MAX_PACKAGE_MB); nothing of it was kept`));
        return;
      }
      archiveHash.update(chunk);
      next(null, chunk);
    },
  });
  const extract = tarExtract();
  let meta: PackageMeta | undefined;
  let unpackedBytes = 0;
  const seen = new Map<string, string>();
  const reading = (async () => {
    for await (const entry of extract) {
      const header = entry.header;
      const path = checkPath(header.name);
      if (header.type === 'symlink' || header.type === 'link') {
        throw refuse(`entry "${path}" is a link (to "${header.linkname}"); a package holds only files and folders`);
      }
      if (header.type === 'directory') {
        entry.resume();
        continue;
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file') throw refuse(`entry "${path}" is a ${header.type}; a package holds only files and folders`);
      unpackedBytes += header.size ?? 0;
      if (unpackedBytes > maxBytes) {
        throw new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', `the extension package was refused: it unpacks to more than the limit of ${limitMb} MB (TESSERA_EXTENSION_MAX_PACKAGE_MB); nothing of it was kept`);
      }
      if (meta === undefined) {
        if (path !== PACKAGE_META_FILE) throw refuse(`its first entry is "${path}", not ${PACKAGE_META_FILE}; build it with \`tessera ext build\``);
        if ((header.size ?? 0) > 4 * 1024 * 1024) throw refuse(`${PACKAGE_META_FILE} is larger than 4 MB`);
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        meta = parseMeta(Buffer.concat(chunks));
        continue;
      }
      if (seen.has(path)) throw refuse(`entry "${path}" is in the archive twice`);
      const expected = meta.files[path];
      if (!expected) throw refuse(`entry "${path}" is not listed in ${PACKAGE_META_FILE}`);
      if (!path.startsWith(`${PACKAGE_EXTENSION_DIR}/`) && !path.startsWith(`${PACKAGE_IMAGES_DIR}/`)) throw refuse(`entry "${path}" is outside ${PACKAGE_EXTENSION_DIR}/ and ${PACKAGE_IMAGES_DIR}/`);
      const target = join(dest, path);
      await mkdir(dirname(target), { recursive: true });
      const hash = createHash('sha256');
      let size = 0;
      await pipeline(
        entry,
        new Transform({
          transform(chunk: Buffer, _enc, next) {
            hash.update(chunk);
            size += chunk.length;
            next(null, chunk);
          },
        }),
        createWriteStream(target, { flags: 'wx', mode: 0o644 }),
      );
      const sum = hash.digest('hex');
      if (sum !== expected.sha256 || size !== expected.size) {
        throw refuse(`checksum mismatch for "${path}": ${PACKAGE_META_FILE} says sha256 ${expected.sha256.slice(0, 12)}... (${expected.size} bytes), the archive holds ${sum.slice(0, 12)}... (${size} bytes); the package is damaged or was altered`);
      }
      seen.set(path, sum);
    }
  })();
  // What gunzip yields is counted too: a small archive must not inflate without end
  // (after the tar's end, or in entries whose headers understate nothing but pad on).
  let inflated = 0;
  const inflatedLimit = maxBytes + Math.min(64 * 1024 * 1024, maxBytes / 8); // tar headers and padding on top of the files
  const inflateCounter = new Transform({
    transform(chunk: Buffer, _enc, next) {
      inflated += chunk.length;
      if (inflated > inflatedLimit) {
        next(new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', `the extension package was refused: it unpacks to more than the limit of ${limitMb} MB (TESSERA_EXTENSION_MAX_PACKAGE_MB); nothing of it was kept`));
        return;
      }
      next(null, chunk);
    },
  });
  // The source is piped, not part of the pipeline, so that a refusal does not destroy it (see unpackPackage).
  source.pipe(counter);
  source.once('error', (err) => counter.destroy(err));
  try {
    await Promise.all([pipeline(counter, createGunzip(), inflateCounter, extract), reading]);
  } finally {
    source.unpipe(counter);
  }
  if (!meta) throw refuse(`the archive is empty`);
  const missing = Object.keys(meta.files).filter((p) => !seen.has(p));
  if (missing.length > 0) throw refuse(`${missing.length} file${missing.length === 1 ? '' : 's'} listed in ${PACKAGE_META_FILE} ${missing.length === 1 ? 'is' : 'are'} missing: ${missing.slice(0, 5).join(', ')}`);
  for (const image of meta.images) {
    if (image.file !== undefined && !seen.has(image.file)) throw refuse(`image ${image.name} names ${image.file}, which is not in the archive`);
  }
  for (const image of meta.images) {
    if (image.file) await checkImageArchive(join(dest, image.file), image.name, image.id);
  }
  let extension: LoadedExtension;
  try {
    // compiledOnly: nothing of an uploaded package is executed here, not even to find out that it should not be.
    extension = await loadExtensionFolder(join(dest, PACKAGE_EXTENSION_DIR), { compiledOnly: true });
  } catch (err) {
    const e = err as TesseraError;
    throw new TesseraError(e.code ?? 'TESSERA_INVALID_PACKAGE', `the extension package was refused: ${e.message.replace(join(dest, PACKAGE_EXTENSION_DIR), '<package>')}; nothing of it was kept`, { details: e.details ?? [] });
  }
  const m = extension.manifest;
  if (m.name !== meta.name || m.version !== meta.version) {
    throw refuse(`${PACKAGE_META_FILE} says ${meta.name}@${meta.version}, its manifest says ${m.name}@${m.version}`);
  }
  if (m.kind !== meta.kind) throw refuse(`${PACKAGE_META_FILE} says kind "${meta.kind}", its manifest says kind "${m.kind}"`);
  for (const wf of extension.workflows) {
    if (!wf.file.endsWith('.json')) throw refuse(`workflow "${wf.spec.id}" is a module (${wf.file.split('/').pop()}), not a compiled DAG spec; build the package with \`tessera ext build\``);
  }
  const declared = new Set((m.images ?? []).map((i) => i.name));
  for (const image of meta.images) {
    if (!declared.has(image.name)) throw refuse(`${PACKAGE_META_FILE} carries image ${image.name}, which the manifest does not list`);
  }
  // Kept next to what it describes: installs read the images (and their ids) from it.
  await writeFile(join(dest, PACKAGE_META_FILE), `${JSON.stringify(meta, null, 2)}\n`);
  return { meta, extension, sha256: archiveHash.digest('hex'), bytes: archiveBytes };
}

/**
 * `docker load` tags what the archive says, whatever the package declares: an image
 * archive must name exactly the declared image, as the declared id, and nothing else,
 * or a package could move the tag of any image of the engine.
 */
async function checkImageArchive(file: string, name: string, id: string): Promise<void> {
  const wanted = new Set(['manifest.json', 'repositories', 'index.json']);
  const found = new Map<string, string>();
  const extract = tarExtract();
  const reading = (async () => {
    for await (const entry of extract) {
      const entryName = entry.header.name.replace(/^\.\//, '');
      if (wanted.has(entryName) && (entry.header.size ?? 0) < 1024 * 1024) {
        const chunks: Buffer[] = [];
        for await (const c of entry) chunks.push(c as Buffer);
        found.set(entryName, Buffer.concat(chunks).toString('utf8'));
      } else {
        entry.resume();
      }
    }
  })();
  await Promise.all([pipeline(createReadStream(file), extract), reading]).catch((err: Error) => {
    throw refuse(`image ${name}: its archive is not a docker image archive (${err.message})`);
  });
  const bad = (why: string): TesseraError => refuse(`image ${name}: ${why}; a package's image archive must carry exactly the image it declares`);
  const parse = (entry: string): unknown => {
    try {
      return JSON.parse(found.get(entry)!);
    } catch {
      throw bad(`its ${entry} is not JSON`);
    }
  };
  if (!found.has('manifest.json')) throw bad('its archive has no manifest.json');
  const manifest = parse('manifest.json') as { Config?: string; RepoTags?: string[] }[];
  if (!Array.isArray(manifest) || manifest.length !== 1) throw bad('its manifest.json must describe one image');
  const tags = manifest[0]!.RepoTags ?? [];
  if (tags.length !== 1 || tags[0] !== name) throw bad(`it is tagged ${tags.length ? tags.join(', ') : '(nothing)'}, not ${name}`);
  const config = /([0-9a-f]{64})(\.json)?$/.exec(manifest[0]!.Config ?? '')?.[1];
  if (`sha256:${config}` !== id) throw bad(`its id is sha256:${config ?? '?'}, not ${id}`);
  if (found.has('repositories')) {
    const repos = parse('repositories') as Record<string, Record<string, string>>;
    const named = Object.entries(repos ?? {}).flatMap(([repo, t]) => Object.keys(t ?? {}).map((tag) => `${repo}:${tag}`));
    if (named.some((n) => n !== name && `docker.io/library/${n}` !== name)) throw bad(`its repositories file also names ${named.filter((n) => n !== name).join(', ')}`);
  }
  if (found.has('index.json')) {
    const index = parse('index.json') as { manifests?: { annotations?: Record<string, string> }[] };
    const refs = (index.manifests ?? []).flatMap((m) => [m.annotations?.['io.containerd.image.name'], m.annotations?.['org.opencontainers.image.ref.name']]).filter((r): r is string => Boolean(r));
    const shortName = name.split(':').pop();
    if (refs.some((r) => r !== name && r !== shortName && !r.endsWith(`/${name}`))) throw bad(`its index.json also names ${refs.join(', ')}`);
  }
}

function parseMeta(data: Buffer): PackageMeta {
  let raw: unknown;
  try {
    raw = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw refuse(`${PACKAGE_META_FILE} is not JSON (${(err as Error).message})`);
  }
  const m = raw as Partial<PackageMeta>;
  if (typeof m !== 'object' || m === null) throw refuse(`${PACKAGE_META_FILE} is not an object`);
  if (m.format !== PACKAGE_FORMAT) throw refuse(`${PACKAGE_META_FILE} has format ${JSON.stringify(m.format)}; this Tessera reads format ${PACKAGE_FORMAT}`);
  if (typeof m.name !== 'string' || typeof m.version !== 'string') throw refuse(`${PACKAGE_META_FILE} lacks name or version`);
  if (m.kind !== 'workflow' && m.kind !== 'application') throw refuse(`${PACKAGE_META_FILE} has kind ${JSON.stringify(m.kind)}; a package is of kind "workflow" or "application"`);
  if (typeof m.files !== 'object' || m.files === null) throw refuse(`${PACKAGE_META_FILE} lacks its list of files`);
  for (const [path, f] of Object.entries(m.files)) {
    checkPath(path);
    if (typeof f?.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(f.sha256) || !Number.isInteger(f.size)) throw refuse(`${PACKAGE_META_FILE}: files["${path}"] needs a sha256 and a size`);
  }
  if (!Array.isArray(m.images)) throw refuse(`${PACKAGE_META_FILE} lacks its list of images`);
  for (const image of m.images) {
    if (typeof image?.name !== 'string' || typeof image.id !== 'string') throw refuse(`${PACKAGE_META_FILE}: each image needs a name and an id`);
    if (image.file !== undefined && (typeof image.file !== 'string' || !m.files[image.file])) throw refuse(`${PACKAGE_META_FILE}: image ${image.name} names a file that is not listed`);
  }
  return m as PackageMeta;
}

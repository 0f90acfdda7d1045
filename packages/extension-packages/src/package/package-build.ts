import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, realpath, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import { PLATFORM_VERSION, TesseraError } from '@tessera/model';
import { loadExtensionFolder } from '../extension-loader.ts';
import { MANIFEST_FILE, type ExtensionManifest } from '../extension-manifest.schema.ts';
import { registerSdkResolution } from '../sdk-resolve.ts';
import { ImageTool } from './docker-images.ts';
import { imagePlan, type ReferencedImage } from './image-plan.ts';
import { COMPILED_DIR, PACKAGE_EXTENSION_DIR, PACKAGE_FORMAT, PACKAGE_IMAGES_DIR, PACKAGE_META_FILE, type PackageImage, type PackageMeta } from './package-format.ts';

/** Folders of an extension that never go into its package. */
const SKIPPED = new Set(['dist', 'node_modules', '.git', COMPILED_DIR, '.tessera']);

export interface BuildOptions {
  /** Where the .tgz goes (default `<dir>/dist/<name>-<version>.tgz`). */
  out?: string;
  /**
   * `embed` (default): build each image and save it inside the package, installable
   * anywhere. `reference`: build the images but only record their ids; installs
   * where the same engine holds them (a development machine), in a fraction of the time.
   */
  images?: 'embed' | 'reference';
  /** Only these images are built again; the others must be in the engine already (ext dev, when only a DAG changed). */
  rebuild?: (image: string) => boolean;
  docker?: ImageTool;
  onProgress?: (message: string) => void;
}

export interface BuiltPackage {
  file: string;
  meta: PackageMeta;
  manifest: ExtensionManifest;
  /** Compiled DAG specs, by workflow id. */
  workflows: string[];
  bytes: number;
  sha256: string;
  /** Images saved inside the package. */
  embedded: string[];
  /** Registry images the package only names: pulled at install and run, per their policy. */
  referenced: ReferencedImage[];
}

/**
 * Builds an extension folder into its package: validates the manifest, compiles each
 * workflow to its DAG spec, builds the images, and writes the archive through a
 * temporary file (a failed build leaves no package behind).
 */
export async function buildPackage(dir: string, options: BuildOptions = {}): Promise<BuiltPackage> {
  const root = resolve(dir);
  const progress = options.onProgress ?? (() => {});
  registerSdkResolution();
  const loaded = await loadExtensionFolder(root);
  const manifest = loaded.manifest;
  const out = resolve(options.out ?? join(root, 'dist', `${manifest.name}-${manifest.version}.tgz`));
  await mkdir(dirname(out), { recursive: true });
  const work = await mkdtemp(join(dirname(out), '.build-'));
  try {
    // The extension's files, then the compiled specs and the rewritten manifest.
    const entries = new Map<string, { source?: string; data?: Buffer }>();
    for (const file of await listFiles(root, root, out)) {
      entries.set(`${PACKAGE_EXTENSION_DIR}/${file}`, { source: join(root, file) });
    }
    const compiled: string[] = [];
    for (const wf of loaded.workflows) {
      const path = `${COMPILED_DIR}/${wf.spec.id}.json`;
      compiled.push(path);
      entries.set(`${PACKAGE_EXTENSION_DIR}/${path}`, { data: Buffer.from(`${JSON.stringify(wf.spec, null, 2)}\n`) });
    }
    const packedManifest: ExtensionManifest = { ...manifest, ...(manifest.workflows ? { workflows: compiled } : {}) };
    entries.set(`${PACKAGE_EXTENSION_DIR}/${MANIFEST_FILE}`, { data: Buffer.from(`${JSON.stringify(packedManifest, null, 2)}\n`) });
    if (compiled.length > 0) progress(`compiled ${compiled.length} workflow${compiled.length === 1 ? '' : 's'}: ${loaded.workflows.map((w) => w.spec.id).join(', ')}`);

    const images: PackageImage[] = [];
    const plan = imagePlan(manifest, loaded.workflows.map((w) => w.spec));
    const embed = (options.images ?? 'embed') === 'embed';
    const toEmbed = embed ? plan.referenced.filter((r) => r.embed) : [];
    const referenced = plan.referenced.filter((r) => !toEmbed.includes(r));
    if (plan.built.length > 0 || toEmbed.length > 0) {
      const docker = options.docker ?? new ImageTool();
      await docker.ensureEngine(`extension ${manifest.name} has container images to ${plan.built.length > 0 ? 'build' : 'embed'}`);
      const saveInto = async (name: string, id: string): Promise<void> => {
        const file = `${PACKAGE_IMAGES_DIR}/${images.length}.tar`;
        progress(`saving ${name} into the package`);
        await mkdir(join(work, PACKAGE_IMAGES_DIR), { recursive: true });
        await docker.save(name, join(work, file));
        entries.set(file, { source: join(work, file) });
        images.push({ name, id, file });
      };
      for (const image of plan.built) {
        let id = options.rebuild && !options.rebuild(image.name) ? await docker.imageId(image.name) : undefined;
        if (id) {
          progress(`image ${image.name} unchanged`);
        } else {
          progress(`building image ${image.name} from ${image.context}`);
          const started = Date.now();
          id = await docker.build(image.name, join(root, image.context), image.dockerfile, (line) => {
            if (/^Step \d+\/\d+/.test(line)) progress(`  ${line}`);
          });
          progress(`built ${image.name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
        }
        if (embed) await saveInto(image.name, id);
        else images.push({ name: image.name, id });
      }
      for (const image of toEmbed) {
        // A registry image saved into the package: installs with no network.
        await docker.ensure(image.name, image.image_pull_policy, (line) => progress(`  ${line}`));
        const id = await docker.imageId(image.name);
        if (!id) throw new TesseraError('TESSERA_DOCKER', `image ${image.name} was pulled, but the engine has no image of that name`);
        await saveInto(image.name, id);
      }
    }
    const embedded = images.filter((i) => i.file).map((i) => i.name);
    progress(`embeds ${embedded.length} image${embedded.length === 1 ? '' : 's'}${embedded.length ? `: ${embedded.join(', ')}` : ''}`);
    const byId = images.filter((i) => !i.file).map((i) => i.name);
    if (byId.length > 0) progress(`references ${byId.length} image${byId.length === 1 ? '' : 's'} of this Docker engine by id (not embedded): ${byId.join(', ')}`);
    progress(`references ${referenced.length} registry image${referenced.length === 1 ? '' : 's'}${referenced.length ? ` (pulled at install and run, not in the package): ${referenced.map((r) => `${r.name} (${r.image_pull_policy})`).join(', ')}` : ''}`);

    const files: PackageMeta['files'] = {};
    for (const [path, e] of [...entries].sort(([a], [b]) => a.localeCompare(b))) {
      files[path] = e.data ? { sha256: sha256(e.data), size: e.data.length } : await hashFile(e.source!);
    }
    const meta: PackageMeta = {
      format: PACKAGE_FORMAT,
      name: manifest.name,
      version: manifest.version,
      kind: manifest.kind,
      built_at: new Date().toISOString(),
      tessera: PLATFORM_VERSION,
      files,
      images,
      ...(referenced.length ? { references: referenced.map((r) => ({ name: r.name, image_pull_policy: r.image_pull_policy })) } : {}),
    };
    const tmp = join(work, 'package.tgz');
    const tar = tarPack();
    const written = pipeline(tar, createGzip({ level: 6 }), createWriteStream(tmp));
    await addEntry(tar, PACKAGE_META_FILE, Buffer.from(`${JSON.stringify(meta, null, 2)}\n`));
    for (const path of Object.keys(files)) {
      const e = entries.get(path)!;
      await addEntry(tar, path, e.data ?? e.source!, files[path]!.size);
    }
    tar.finalize();
    await written;
    await rename(tmp, out);
    const summary = await hashFile(out);
    return { file: out, meta, manifest, workflows: loaded.workflows.map((w) => w.spec.id), bytes: summary.size, sha256: summary.sha256, embedded, referenced };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function addEntry(tar: ReturnType<typeof tarPack>, name: string, content: Buffer | string, size?: number): Promise<void> {
  return new Promise((done, fail) => {
    if (Buffer.isBuffer(content)) {
      tar.entry({ name, mode: 0o644, mtime: new Date(0) }, content, (err) => (err ? fail(err) : done()));
      return;
    }
    const entry = tar.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? fail(err) : done()));
    pipeline(createReadStream(content), entry).catch(fail);
  });
}

/** Files under `dir`, relative and with "/" separators; links are followed only when they stay inside the extension. */
async function listFiles(root: string, dir: string, out: string, seen = new Set<string>()): Promise<string[]> {
  const files: string[] = [];
  // A link to a folder above itself would be walked forever.
  const real = await realpath(dir);
  if (seen.has(real)) throw new TesseraError('TESSERA_INVALID_PACKAGE', `${relative(root, dir).split(sep).join('/')} links back to a folder that contains it; packages hold only what is inside the folder, once`);
  seen.add(real);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    const rel = relative(root, full).split(sep).join('/');
    if (dir === root && SKIPPED.has(e.name)) continue;
    if (full === out) continue;
    let isDir = e.isDirectory();
    if (e.isSymbolicLink()) {
      const target = await realpath(full).catch(() => undefined);
      if (!target || relative(await realpath(root), target).startsWith('..')) {
        throw new TesseraError('TESSERA_INVALID_PACKAGE', `${rel} is a link out of the extension folder (or a broken one); packages hold only what is inside the folder: copy the file in instead`);
      }
      isDir = (await stat(full)).isDirectory();
    } else if (!e.isFile() && !isDir) {
      continue; // sockets, fifos
    }
    if (isDir) files.push(...(await listFiles(root, full, out, new Set(seen))));
    else files.push(rel);
  }
  return files;
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest('hex'), size };
}

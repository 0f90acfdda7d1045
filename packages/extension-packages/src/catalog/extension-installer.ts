import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { TesseraError } from '@tessera/model';
import type { ExtensionManifest } from '../extension-manifest.schema.ts';
import { loadExtensionFolder, readManifest } from '../extension-loader.ts';
import { MANIFEST_FILE } from '../extension-manifest.schema.ts';
import type { ImageTool } from '../package/docker-images.ts';
import { imagePlan, type ReferencedImage } from '../package/image-plan.ts';
import { PACKAGE_META_FILE, type PackageMeta } from '../package/package-format.ts';
import type { WorkflowRegistry } from '../workflow-registry.ts';
import type { Available, PreviousInstall } from './extension-catalog.ts';
import type { ExtensionCatalogStore } from './extension-catalog-store.ts';
import type { ExtensionInstallsTable } from './extension-migrations.ts';

/** What installing needs: the catalog's store, the workflows, the Docker images, a log. */
export interface InstallerDeps {
  store: ExtensionCatalogStore;
  registry: WorkflowRegistry;
  /** Undefined when no Docker engine is reachable. */
  images: ImageTool | undefined;
  log: { info: (m: string) => void; warn: (m: string) => void };
}

/**
 * The manifests of the installed extensions other than `name`, to see which depend on
 * it. One that cannot be read refuses the change: whether it needs `name` is unknown,
 * and guessing "no" could leave it without what it needs.
 */
export async function installedManifests(store: ExtensionCatalogStore, name: string, change: string): Promise<{ row: ExtensionInstallsTable; manifest: ExtensionManifest }[]> {
  const out: { row: ExtensionInstallsTable; manifest: ExtensionManifest }[] = [];
  for (const row of await store.installs({ states: ['installed'], except: name })) {
    try {
      out.push({ row, manifest: await readManifest(row.dir) });
    } catch (err) {
      const message = (err as Error).message;
      throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE',
        `cannot ${change} "${name}": whether the installed extension "${row.name}"@${row.version} needs it is unknown, because its manifest cannot be read (${message}); ` +
        `uninstall ${row.name} first (tessera ext uninstall ${row.name}), or restore its files in ${row.dir}, then try again`,
        { cause: err, details: [{ where: join(row.dir, MANIFEST_FILE), message }] });
    }
  }
  return out;
}

/**
 * Refuses an install of `name` at `m.version` when an extension it needs is missing or
 * outside the range it asks for, or when an installed extension that needs it would be
 * left outside its range (upgrades and downgrades).
 */
export async function checkDependencies(
  deps: InstallerDeps,
  name: string,
  m: ExtensionManifest,
  availableOf: (name: string) => Promise<Available[]>,
): Promise<void> {
  const installed = await deps.store.installs({ states: ['installed'] });
  const versionOf = (dep: string): string | undefined =>
    deps.registry.linked().find((l) => l.manifest.name === dep)?.manifest.version ?? installed.find((i) => i.name === dep)?.version;
  for (const [dep, range] of Object.entries(m.dependencies ?? {})) {
    const have = versionOf(dep);
    if (have && semver.satisfies(have, range, { includePrerelease: true })) continue;
    const inCatalog = (await availableOf(dep)).find((a) => semver.satisfies(a.version, range, { includePrerelease: true }));
    throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE', `${name}@${m.version} needs extension "${dep}" ${range}, ` +
      `${have ? `and ${have} is installed` : 'which is not installed'}; ` +
      `${inCatalog ? `install it first: tessera ext install ${dep}@${inCatalog.version}` : `the catalog has no matching version of "${dep}": install its package first`}`);
  }
  // Upgrading or downgrading must keep what depends on this extension working. A first
  // install or a reinstall of the same version changes nothing for them, so another
  // extension's unreadable manifest does not stand in its way.
  const current = installed.find((i) => i.name === name);
  if (!current || current.version === m.version) return;
  for (const { row: other, manifest } of await installedManifests(deps.store, name, 'install')) {
    const range = manifest.dependencies?.[name];
    if (range && !semver.satisfies(m.version, range, { includePrerelease: true })) {
      throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE', `${other.name}@${other.version} needs "${name}" ${range}, and ${m.version} is outside that range; uninstall or upgrade ${other.name} first`);
    }
  }
}

/**
 * Installs `target` of `name`, whose row is committed in state `installing`: builds or
 * loads its images, loads its workflows, then commits state `installed` and hands the
 * workflows to the registry. On a failure it removes the images it brought, restores
 * the previous install (or records state error), and rethrows.
 */
export async function runInstall(
  deps: InstallerDeps,
  job: { name: string; target: Available; params: Record<string, unknown>; previous: PreviousInstall | null; progress: (p: string) => void },
): Promise<void> {
  const { name, target, params, previous, progress } = job;
  const { store } = deps;
  const started = Date.now();
  const loadedImages: string[] = [];
  /** Registry images this install pulled that the engine did not hold before: removed again when it fails. */
  const pulledImages: string[] = [];
  const previousImages = previous ? (JSON.parse(previous.images_json) as string[]) : [];
  const recordImages = (): Promise<void> => store.updateInstall(name, { images_json: JSON.stringify(loadedImages) });
  try {
    const images = target.manifest.images ?? [];
    let embedded = new Set<string>();
    if (images.length > 0) {
      const docker = deps.images!;
      if (target.source === 'builtin') {
        for (const image of imagePlan(target.manifest, []).built) {
          progress(`building image ${image.name}`);
          await docker.build(image.name, join(target.dir, image.context), image.dockerfile, (line) => {
            if (/^Step \d+\/\d+/.test(line)) progress(`building image ${image.name}: ${line}`);
          });
          loadedImages.push(image.name);
          await recordImages();
        }
      } else {
        const meta = JSON.parse(await readFile(join(target.packageDir!, PACKAGE_META_FILE), 'utf8')) as PackageMeta;
        embedded = new Set(meta.images.map((i) => i.name));
        for (const image of meta.images) {
          if (image.file) {
            progress(`loading image ${image.name}`);
            loadedImages.push(image.name);
            await recordImages();
            await docker.load(join(target.packageDir!, image.file));
          }
          const id = await docker.imageId(image.name);
          if (id !== image.id) {
            throw new TesseraError('TESSERA_INVALID_PACKAGE', image.file
              ? `image ${image.name} loaded from the package has id ${id ?? '(none)'}, not ${image.id} as the package says`
              : `image ${image.name} is not in the package, and this Docker engine does not hold it (as ${image.id.slice(0, 19)}): build the package with its images (tessera ext build) and install that`);
          }
        }
      }
    }
    progress(`loading the workflows of ${name}@${target.version}`);
    const extension = await loadExtensionFolder(target.dir, { compiledOnly: target.source === 'package' });
    for (const wf of extension.workflows) {
      const owner = deps.registry.list().find((w) => w.spec.id === wf.spec.id && w.extension.name !== name);
      if (owner) throw new TesseraError('TESSERA_CONFLICT', `workflow "${wf.spec.id}" is already provided by extension "${owner.extension.name}"; workflow ids are unique across extensions: rename it, or uninstall ${owner.extension.name}`);
    }
    await ensureReferencedImages(deps, name, imagePlan(target.manifest, extension.workflows.map((w) => w.spec)).referenced.filter((r) => !embedded.has(r.name)), progress, pulledImages);
    // Task API tasks that name only their template: read from the images, now on the engine.
    const resolved = await deps.registry.resolveTaskTemplates(extension, { strict: true });
    await store.transaction(async (trx) => {
      await trx.updateInstall(name, { state: 'installed', images_json: JSON.stringify(loadedImages.length ? loadedImages : sameImages(previous, target)), error: null, previous_json: null, updated_at: Date.now() });
      if (previous && (previous.dir !== target.dir || previousImages.some((i) => !loadedImages.includes(i)))) {
        await trx.addGarbage({ dir: null, run_dir: previous.dir, images: previousImages.filter((i) => !loadedImages.includes(i)) });
      }
    });
    deps.registry.install(name, { extension: resolved, params });
    deps.log.info(`installed ${name}@${target.version} (${target.source}) in ${Date.now() - started} ms`);
  } catch (err) {
    const message = (err as Error).message;
    const drop = [...loadedImages, ...pulledImages].filter((i) => !previousImages.includes(i));
    for (const image of drop) {
      const note = await deps.images?.remove(image);
      if (note) deps.log.warn(note);
    }
    await restoreImages(deps, previous);
    if (previous) {
      const { image_ids: _ids, ...restored } = previous;
      await store.updateInstall(name, { ...restored, state: 'installed', previous_json: null, error: `installing ${target.version} failed: ${message}`, updated_at: Date.now() });
    } else {
      await store.updateInstall(name, { state: 'error', images_json: '[]', error: message, updated_at: Date.now() });
    }
    deps.log.warn(`installing ${name}@${target.version} failed: ${message}`);
    throw err;
  }
}

/**
 * Makes sure the engine holds every registry image the extension references, per its pull
 * policy: pulls what is missing (IfNotPresent) or everything (Always), with the pull's
 * progress as the install's; an image that is absent under Never, or that its registry
 * refuses, fails the install. Without a Docker engine nothing is checked (tasks that also
 * have a process run that way).
 */
async function ensureReferencedImages(
  deps: InstallerDeps,
  name: string,
  referenced: ReferencedImage[],
  progress: (p: string) => void,
  pulled: string[],
): Promise<void> {
  if (referenced.length === 0) return;
  if (!deps.images) {
    deps.log.warn(`${name} references the registry images ${referenced.map((r) => r.name).join(', ')}; no Docker engine is reachable, so they were not checked`);
    return;
  }
  for (const image of referenced) {
    progress(`checking image ${image.name} (${image.image_pull_policy})`);
    let result;
    try {
      result = await deps.images.ensure(image.name, image.image_pull_policy, (line) => progress(`image ${image.name}: ${line}`));
    } catch (err) {
      const e = err as TesseraError;
      throw new TesseraError(e.code ?? 'TESSERA_DOCKER', `${name} uses image ${image.name} (${image.used_by.slice(0, 3).join(', ')}${image.used_by.length > 3 ? ', ...' : ''}): ${e.message}`, { cause: err });
    }
    if (result.pulled && result.wasAbsent) pulled.push(image.name);
  }
}

/** Points the previous version's image names back at the ids they had (a failed upgrade may have loaded others under them). */
export async function restoreImages(deps: Pick<InstallerDeps, 'images' | 'log'>, previous: PreviousInstall | null): Promise<void> {
  for (const [image, id] of Object.entries(previous?.image_ids ?? {})) {
    const now = await deps.images?.imageId(image).catch(() => undefined);
    if (now === id) continue;
    await deps.images?.tag(id, image).catch((err: Error) => deps.log.warn(`could not point ${image} back at ${id}: ${err.message}`));
  }
}

function sameImages(previous: PreviousInstall | null, target: Available): string[] {
  // Reinstalling the same version with new parameters keeps the images it had.
  return previous && previous.dir === target.dir ? (JSON.parse(previous.images_json) as string[]) : [];
}

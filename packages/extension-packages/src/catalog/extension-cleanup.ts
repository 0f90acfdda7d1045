import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageTool } from '../package/docker-images.ts';
import { PACKAGE_EXTENSION_DIR } from '../package/package-format.ts';
import type { ExtensionCatalogStore } from './extension-catalog-store.ts';

/** What cleaning up needs: the store, the Docker images, the package store's folder, the runs still going. */
export interface CleanupDeps {
  store: ExtensionCatalogStore;
  images: ImageTool | undefined;
  log: { warn: (m: string) => void };
  /** `<home>/extensions/store`: the unpacked packages. */
  storeDir: string;
  /** Extension folders of runs still queued or running (their version's files and images stay). */
  activeRunDirs: () => Promise<Set<string>>;
}

/** Removes package folders no row refers to: a crash between unpacking an upload and committing it. */
export async function removeOrphanPackages(deps: CleanupDeps): Promise<void> {
  const { store } = deps;
  const known = new Set([
    ...(await store.packages()).map((r) => r.dir),
    ...(await store.garbage()).map((r) => r.dir),
    ...(await store.installs()).map((r) => r.dir.replace(/\/extension$/, '')),
  ]);
  const active = await deps.activeRunDirs();
  for (const e of await readdir(deps.storeDir)) {
    const dir = join(deps.storeDir, e);
    if (!known.has(dir) && !active.has(join(dir, PACKAGE_EXTENSION_DIR))) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Removes what uninstalls, upgrades and replaced packages left, once no queued or
 * running run uses that version: its images (unless an installed extension still lists
 * them) and the folders of packages that are gone from the catalog.
 */
export async function sweepGarbage(deps: CleanupDeps): Promise<void> {
  const { store } = deps;
  const garbage = await store.garbage();
  if (garbage.length === 0) return;
  const active = await deps.activeRunDirs();
  const installs = await store.installs();
  const packages = await store.packages();
  const usedImages = new Set(installs.flatMap((i) => JSON.parse(i.images_json) as string[]));
  const usedDirs = new Set([...installs.map((i) => i.dir), ...packages.map((p) => p.dir), ...packages.map((p) => join(p.dir, PACKAGE_EXTENSION_DIR))]);
  for (const g of garbage) {
    if (active.has(g.run_dir)) continue;
    for (const image of JSON.parse(g.images_json) as string[]) {
      if (usedImages.has(image) || !deps.images) continue;
      const note = await deps.images.remove(image);
      if (note) deps.log.warn(note);
    }
    // A replaced package that is still the installed version stays until the install moves on.
    if (g.dir && (usedDirs.has(g.dir) || usedDirs.has(join(g.dir, PACKAGE_EXTENSION_DIR)))) continue;
    if (g.dir && g.dir.startsWith(deps.storeDir)) await rm(g.dir, { recursive: true, force: true });
    await store.deleteGarbage(g.id);
  }
}

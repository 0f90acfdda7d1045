import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Kysely } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import type { ExtensionManifest } from '../extension-manifest.schema.ts';
import { findExtensionFolders, loadExtensionFolder, readManifest } from '../extension-loader.ts';
import type { ImageTool } from '../package/docker-images.ts';
import { PACKAGE_EXTENSION_DIR } from '../package/package-format.ts';
import { unpackPackage } from '../package/package-read.ts';
import { validateParams } from '../extension-params.ts';
import type { WorkflowRegistry } from '../workflow-registry.ts';
import { catalogEntry, newestFirst, platformProblem, type Available, type Extension, type ExtensionPackage, type ExtensionState, type PreviousInstall } from './extension-catalog.ts';
import { ExtensionCatalogStore } from './extension-catalog-store.ts';
import { removeOrphanPackages, sweepGarbage, type CleanupDeps } from './extension-cleanup.ts';
import { checkDependencies, installedManifests, restoreImages, runInstall, type InstallerDeps } from './extension-installer.ts';
import type { ExtensionInstallsTable, ExtensionTables } from './extension-migrations.ts';

export interface ExtensionManagerOptions {
  db: Kysely<ExtensionTables>;
  home: string;
  builtinDir: string;
  registry: WorkflowRegistry;
  /** Undefined when no Docker engine is reachable. */
  images: ImageTool | undefined;
  maxPackageBytes: number;
  /** Built-in extensions installed at the first start. */
  defaults: string[];
  /** Extension folders of runs still queued or running (their version's files and images stay). */
  activeRunDirs: () => Promise<Set<string>>;
  log: { info: (m: string) => void; warn: (m: string) => void };
  /** Told of every change of an extension's state or install progress (the event stream), after it is committed. */
  changed?: (change: ExtensionChange) => void;
}

/** What `changed` is told: the entry's state now. */
export interface ExtensionChange {
  name: string;
  state: ExtensionState;
  /** The installed version (or the one being installed), else null. */
  version: string | null;
  progress: string | null;
  error: string | null;
}

/** A built-in extension folder that is not in the catalog, and why. */
export interface CatalogProblem {
  dir: string;
  message: string;
}

/**
 * The extension catalog (built-in collection and uploaded packages) and the install
 * lifecycle. Every state change is committed before it is acted on, so an install cut
 * short by a crash ends, at the next start, in its previous version or in state error,
 * never half-installed.
 */
export class ExtensionManager {
  readonly #o: ExtensionManagerOptions;
  readonly #store: ExtensionCatalogStore;
  readonly #deps: InstallerDeps;
  readonly #storeDir: string;
  readonly #stagingDir: string;
  #builtin = new Map<string, Available>();
  #builtinProblems: CatalogProblem[] = [];
  readonly #jobs = new Map<string, { progress: string; done: Promise<void> }>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  /** Serializes what changes the package store: upload commits and sweeps. */
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;
  #announcing: Promise<void> = Promise.resolve();

  constructor(options: ExtensionManagerOptions) {
    this.#o = options;
    this.#store = new ExtensionCatalogStore(options.db);
    this.#deps = { store: this.#store, registry: options.registry, images: options.images, log: options.log };
    this.#storeDir = join(options.home, 'extensions', 'store');
    this.#stagingDir = join(options.home, 'extensions', '.staging');
  }

  /** Recovers interrupted installs, installs the defaults at the first start, loads what is installed. */
  async start(): Promise<void> {
    await rm(this.#stagingDir, { recursive: true, force: true });
    await mkdir(this.#stagingDir, { recursive: true });
    await mkdir(this.#storeDir, { recursive: true });
    await this.#scanBuiltin();
    await this.#recover();
    for (const row of await this.#store.installs({ states: ['installed'] })) {
      try {
        const loaded = await loadExtensionFolder(row.dir, { compiledOnly: row.source === 'package' });
        // Its Task API templates are read again from its images (the install put them on the engine).
        const extension = await this.#o.registry.resolveTaskTemplates(loaded, { strict: false });
        this.#o.registry.install(row.name, { extension, params: JSON.parse(row.params_json) as Record<string, unknown> });
      } catch (err) {
        const message = `could not load installed ${row.name}@${row.version} from ${row.dir}: ${(err as Error).message}`;
        this.#o.log.warn(message);
        await this.#store.updateInstall(row.name, { state: 'error', error: message, updated_at: Date.now() });
      }
    }
    if (!(await this.#store.meta('defaults_installed'))) {
      for (const name of this.#o.defaults) {
        if (!this.#builtin.has(name)) {
          this.#o.log.warn(`default extension "${name}" is not in the built-in collection (${this.#o.builtinDir}); skipped`);
          continue;
        }
        try {
          const { done: installed } = await this.install(name, {});
          await installed;
        } catch (err) {
          this.#o.log.warn(`default extension "${name}" was not installed: ${(err as Error).message}`);
        }
      }
      await this.#store.setMeta('defaults_installed', new Date().toISOString());
    }
    await removeOrphanPackages(this.#cleanup());
    await this.sweep();
    this.#sweepTimer = setInterval(() => void this.sweep(), 30_000);
    this.#sweepTimer.unref();
  }

  /**
   * Stops the sweeps. An install still going (an image build can take minutes) is not
   * waited for: it stays `installing` in the DB, and the next start ends it cleanly.
   */
  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#closed = true;
    await this.#sweeping;
  }

  get maxPackageBytes(): number {
    return this.#o.maxPackageBytes;
  }

  /** The built-in extension folders that are not in the catalog, and why. */
  problems(): CatalogProblem[] {
    return this.#builtinProblems;
  }

  #cleanup(): CleanupDeps {
    return { store: this.#store, images: this.#o.images, log: this.#o.log, storeDir: this.#storeDir, activeRunDirs: this.#o.activeRunDirs };
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  async #scanBuiltin(): Promise<void> {
    this.#builtin.clear();
    this.#builtinProblems = [];
    for (const dir of await findExtensionFolders(this.#o.builtinDir)) {
      try {
        const manifest = await readManifest(dir);
        this.#builtin.set(manifest.name, { version: manifest.version, source: 'builtin', dir, manifest, sha256: '', bytes: null, uploadedAt: null });
      } catch (err) {
        this.#builtinProblems.push({ dir, message: (err as Error).message });
        this.#o.log.warn(`built-in extension ${dir} is not in the catalog: ${(err as Error).message}`);
      }
    }
  }

  async #recover(): Promise<void> {
    for (const row of await this.#store.installs({ states: ['installing', 'uninstalling'] })) {
      if (row.state === 'uninstalling') {
        await this.#finishUninstall(row);
        this.#o.log.info(`finished uninstalling ${row.name}, which the server stopped in the middle of`);
        continue;
      }
      const previous = row.previous_json ? (JSON.parse(row.previous_json) as PreviousInstall) : undefined;
      const images = JSON.parse(row.images_json) as string[];
      await this.#store.transaction(async (trx) => {
        if (previous) {
          const { image_ids: _ids, ...restored } = previous;
          await trx.updateInstall(row.name, {
            ...restored, state: 'installed', previous_json: null, updated_at: Date.now(),
            error: `installing ${row.version} was interrupted (the server stopped); ${previous.version} stays installed`,
          });
        } else {
          await trx.updateInstall(row.name, {
            state: 'error', updated_at: Date.now(),
            error: `installing ${row.version} was interrupted (the server stopped); install it again, or uninstall it`,
          });
        }
        const keep = previous ? (JSON.parse(previous.images_json) as string[]) : [];
        const drop = images.filter((i) => !keep.includes(i));
        if (drop.length > 0) await trx.addGarbage({ dir: null, run_dir: row.dir, images: drop });
      });
      await restoreImages(this.#deps, previous ?? null);
      this.#o.log.warn(`the install of ${row.name}@${row.version} was interrupted by a stop; ${previous ? `${previous.version} stays installed` : 'it is in state error'}`);
    }
  }

  async #packages(name?: string): Promise<Available[]> {
    const out: Available[] = [];
    for (const r of await this.#store.packages(name)) {
      const dir = join(r.dir, PACKAGE_EXTENSION_DIR);
      try {
        const manifest = await readManifest(dir).catch(async (err: TesseraError) => {
          // An incompatible platform still lists, with its problem; anything else is a broken store.
          if (!/platform/.test(err.message)) throw err;
          return JSON.parse(await readFile(join(dir, 'tessera-extension.json'), 'utf8')) as ExtensionManifest;
        });
        out.push({ version: r.version, source: 'package', dir, packageDir: r.dir, manifest, sha256: r.sha256, bytes: r.bytes, uploadedAt: r.uploaded_at });
      } catch (err) {
        this.#o.log.warn(`package ${r.name}@${r.version} in ${r.dir} is unreadable: ${(err as Error).message}`);
      }
    }
    return out;
  }

  async #available(name: string): Promise<Available[]> {
    const list = await this.#packages(name);
    const b = this.#builtin.get(name);
    if (b) list.push(b);
    return list.sort(newestFirst);
  }

  /** The whole catalog, by name. */
  async catalog(): Promise<Extension[]> {
    const packages = await this.#packages();
    const installs = await this.#store.installs();
    const names = new Set([...this.#builtin.keys(), ...packages.map((p) => p.manifest.name), ...installs.map((i) => i.name), ...this.#o.registry.linked().map((l) => l.manifest.name)]);
    const entries: Extension[] = [];
    for (const name of [...names].sort()) {
      const available = [...packages.filter((p) => p.manifest.name === name), ...(this.#builtin.has(name) ? [this.#builtin.get(name)!] : [])]
        .sort(newestFirst);
      entries.push(this.#entry(name, available, installs.find((i) => i.name === name)));
    }
    return entries;
  }

  /** One catalog entry; TESSERA_NOT_FOUND when the catalog does not know the name. */
  async get(name: string): Promise<Extension> {
    const available = await this.#available(name);
    const row = await this.#store.install(name);
    const linked = this.#o.registry.linked().some((l) => l.manifest.name === name);
    if (available.length === 0 && !row && !linked) {
      throw new TesseraError('TESSERA_NOT_FOUND', `extension "${name}" is not in the catalog; \`tessera ext list\` shows what is, and \`tessera ext install <folder|package.tgz>\` adds your own`);
    }
    return this.#entry(name, available, row);
  }

  #entry(name: string, available: Available[], row: ExtensionInstallsTable | undefined): Extension {
    return catalogEntry({
      name,
      available,
      row,
      linked: this.#o.registry.linked().find((l) => l.manifest.name === name),
      loaded: this.#o.registry.extensions().find((e) => e.manifest.name === name),
      progress: this.#jobs.get(name)?.progress,
    });
  }

  /**
   * Stores an uploaded package after checking all of it (paths, links, size, checksums,
   * manifest, DAG specs). Does not install it.
   */
  async uploadPackage(source: Readable): Promise<ExtensionPackage> {
    const staging = join(this.#stagingDir, randomUUID());
    const unpacked = await unpackPackage(source, staging, { maxBytes: this.#o.maxPackageBytes });
    const { meta } = unpacked;
    const builtin = this.#builtin.get(meta.name);
    if (builtin && builtin.version === meta.version) {
      await rm(staging, { recursive: true, force: true });
      throw new TesseraError('TESSERA_CONFLICT', `the package ${meta.name}@${meta.version} has the name and version of a built-in extension; give it another version (or another name) in tessera-extension.json`);
    }
    const target = join(this.#storeDir, `${meta.name}@${meta.version}+${unpacked.sha256.slice(0, 12)}`);
    return this.#exclusive(async () => {
      if (existsSync(target)) {
        await rm(staging, { recursive: true, force: true });
      } else {
        await rename(staging, target).catch(async (err: NodeJS.ErrnoException) => {
          await rm(staging, { recursive: true, force: true });
          if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err; // the same bytes, stored by a twin upload
        });
      }
      const old = await this.#store.packageOf(meta.name, meta.version);
      const replaced = Boolean(old && old.dir !== target);
      await this.#store.transaction(async (trx) => {
        // This folder is current (again): whatever marked it for removal no longer holds.
        await trx.keepDir(target);
        if (old && replaced) {
          await trx.deletePackage(meta.name, meta.version);
          await trx.addGarbage({ dir: old.dir, run_dir: join(old.dir, PACKAGE_EXTENSION_DIR), images: [] });
        }
        if (!old || replaced) {
          await trx.addPackage({ name: meta.name, version: meta.version, kind: meta.kind, sha256: unpacked.sha256, bytes: unpacked.bytes, dir: target, uploaded_at: Date.now() });
        }
      });
      if (replaced) void this.sweep();
      this.#announce(meta.name);
      return { name: meta.name, version: meta.version, kind: meta.kind, sha256: unpacked.sha256, bytes: unpacked.bytes, replaced };
    });
  }

  /**
   * Installs (or upgrades, downgrades, reconfigures) an extension. Checks everything
   * that can be checked first and throws on a problem, writing nothing; then commits
   * state `installing` and returns, with `done` settling when the install has ended
   * (its failure is recorded in the catalog, and rejects `done`).
   */
  async install(name: string, request: { version?: string; params?: Record<string, unknown> }): Promise<{ entry: Extension; done: Promise<void> }> {
    // Reserved before the first await: a second install (or an uninstall) of the name is refused, not interleaved.
    const busy = this.#jobs.get(name)?.progress;
    if (busy !== undefined) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is being ${busy.startsWith('uninstalling') ? 'uninstalled' : busy.startsWith('deleting') ? `changed (${busy})` : 'installed'} right now; wait until it is done (tessera ext list shows its state)`);
    const job = { progress: `installing ${name}`, done: Promise.resolve() };
    this.#jobs.set(name, job);
    try {
      return await this.#install(name, request, job);
    } catch (err) {
      this.#jobs.delete(name);
      throw err;
    }
  }

  async #install(name: string, request: { version?: string; params?: Record<string, unknown> }, job: { progress: string; done: Promise<void> }): Promise<{ entry: Extension; done: Promise<void> }> {
    const linked = this.#o.registry.linked().find((l) => l.manifest.name === name);
    if (linked) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is loaded from the linked folder ${linked.dir} (TESSERA_EXTENSIONS_DIRS), which is always installed as it is on disk`);
    const available = await this.#available(name);
    if (available.length === 0) {
      await this.get(name); // 404 when it is nowhere
      throw new TesseraError('TESSERA_NOT_FOUND', `extension "${name}" has no version in the catalog to install; upload its package`);
    }
    let target: Available | undefined;
    if (request.version !== undefined) {
      target = available.find((a) => a.version === request.version);
      if (!target) throw new TesseraError('TESSERA_NOT_FOUND', `extension "${name}" has no version ${request.version}; it has ${available.map((a) => a.version).join(', ')}`);
    } else {
      target = available.find((a) => !platformProblem(a.manifest)) ?? available[0]!;
    }
    const m = target.manifest;
    const problem = platformProblem(m);
    if (problem) throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE', `${name}@${target.version} cannot be installed: ${problem}`);
    const row = await this.#store.install(name);
    if (row?.state === 'uninstalling') throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is being uninstalled`);
    // Without new values, an upgrade keeps the values of the parameters the new version still has.
    const kept = row && row.state === 'installed'
      ? Object.fromEntries(Object.entries(JSON.parse(row.params_json) as Record<string, unknown>).filter(([k]) => Object.hasOwn(m.parameters ?? {}, k)))
      : {};
    const params = validateParams(m.parameters ?? {}, request.params ?? kept);
    await checkDependencies(this.#deps, name, m, (dep) => this.#available(dep));
    if ((m.images ?? []).length > 0 && !this.#o.images) {
      throw new TesseraError('TESSERA_DOCKER', `${name}@${target.version} needs the container images ${(m.images ?? []).map((i) => i.name).join(', ')}, and this server found no Docker engine: start Docker (or set DOCKER_HOST) and restart the server`);
    }
    if (row?.state === 'installed' && row.version === target.version && row.dir === target.dir && row.params_json === JSON.stringify(params) && !row.error) {
      this.#jobs.delete(name);
      return { entry: await this.get(name), done: Promise.resolve() };
    }
    let previous: PreviousInstall | null = null;
    if (row?.state === 'installed') {
      // The ids its image names point at now: a failed upgrade that reuses a name points it back.
      const imageIds: Record<string, string> = {};
      for (const image of JSON.parse(row.images_json) as string[]) {
        const id = await this.#o.images?.imageId(image).catch(() => undefined);
        if (id) imageIds[image] = id;
      }
      previous = { version: row.version, source: row.source, dir: row.dir, sha256: row.sha256, params_json: row.params_json, images_json: row.images_json, image_ids: imageIds };
    }
    await this.#store.putInstall({
      name, version: target.version, state: 'installing', source: target.source, dir: target.dir, sha256: target.sha256,
      params_json: JSON.stringify(params), images_json: '[]', error: null, previous_json: previous ? JSON.stringify(previous) : null, updated_at: Date.now(),
    });
    job.progress = `installing ${name}@${target.version}`;
    this.#announce(name);
    const progress = (p: string): void => {
      job.progress = p;
      this.#announce(name, { state: 'installing', progress: p });
    };
    job.done = runInstall(this.#deps, { name, target, params, previous, progress })
      .then(() => void this.sweep())
      .finally(() => {
        this.#jobs.delete(name);
        this.#announce(name);
      });
    job.done.catch(() => {}); // recorded in the catalog; callers that wait see it too
    return { entry: await this.get(name), done: job.done };
  }

  /** Tells `changed` the entry's state now; in order, after what came before. */
  #announce(name: string, now: Partial<ExtensionChange> = {}): void {
    const changed = this.#o.changed;
    if (!changed) return;
    this.#announcing = this.#announcing
      .then(async () => {
        const e = await this.get(name).catch(() => undefined);
        changed({
          ...(e ? { name, state: e.state, version: e.installed?.version ?? null, progress: e.progress, error: e.error } : { name, state: 'not_installed', version: null, progress: null, error: null }),
          ...now,
        });
      })
      .catch((err: Error) => this.#o.log.warn(`could not announce the state of extension ${name}: ${err.message}`));
  }

  /**
   * Uninstalls: its workflows go at once; its images go once no run of it is still going.
   * Answers the entry as it is now (not installed); an extension whose versions have all
   * left the catalog is shown as its name alone.
   */
  async uninstall(name: string): Promise<Extension> {
    if (this.#jobs.has(name)) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is being installed or uninstalled right now; try again when that is done`);
    this.#jobs.set(name, { progress: `uninstalling ${name}`, done: Promise.resolve() });
    try {
      await this.#uninstall(name);
    } finally {
      this.#jobs.delete(name);
      this.#announce(name);
    }
    const available = await this.#available(name);
    return this.#entry(name, available, await this.#store.install(name));
  }

  async #uninstall(name: string): Promise<void> {
    const linked = this.#o.registry.linked().find((l) => l.manifest.name === name);
    if (linked) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is loaded from the linked folder ${linked.dir}; remove that folder from TESSERA_EXTENSIONS_DIRS instead`);
    const row = await this.#store.install(name);
    if (!row) {
      await this.get(name); // not in the catalog at all: 404 saying so
      throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is not installed`);
    }
    const dependents = (await installedManifests(this.#store, name, 'uninstall')).filter(({ manifest }) => manifest.dependencies?.[name]).map(({ row: r }) => r.name);
    if (dependents.length > 0) {
      throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE', `extension "${name}" is needed by ${dependents.join(', ')}; uninstall ${dependents.length === 1 ? 'it' : 'them'} first`);
    }
    await this.#store.updateInstall(name, { state: 'uninstalling', updated_at: Date.now() });
    this.#announce(name, { state: 'uninstalling', progress: null });
    this.#o.registry.uninstall(name);
    await this.#finishUninstall(row);
    void this.sweep();
  }

  async #finishUninstall(row: ExtensionInstallsTable): Promise<void> {
    await this.#store.transaction(async (trx) => {
      await trx.addGarbage({ dir: null, run_dir: row.dir, images: JSON.parse(row.images_json) as string[] });
      await trx.deleteInstall(row.name);
    });
  }

  /**
   * Deletes an uploaded package version: its catalog row now, its folder once no queued
   * or running run uses it (`removed` says whether it is gone already). Refused while
   * that version is installed, and for built-in and linked versions.
   */
  async deleteVersion(name: string, version: string): Promise<{ name: string; version: string; bytes: number; removed: boolean }> {
    const id = `${name}@${version}`;
    if (this.#jobs.has(name)) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is being installed or uninstalled right now; delete ${id} when that is done`);
    // Reserved before the first await: an install of the name waits for this (it is refused).
    this.#jobs.set(name, { progress: `deleting ${id}`, done: Promise.resolve() });
    try {
      return await this.#deleteVersion(name, version, id);
    } finally {
      this.#jobs.delete(name);
    }
  }

  async #deleteVersion(name: string, version: string, id: string): Promise<{ name: string; version: string; bytes: number; removed: boolean }> {
    const pkg = await this.#store.packageOf(name, version);
    if (!pkg) {
      if (this.#builtin.get(name)?.version === version) throw new TesseraError('TESSERA_CONFLICT', `${id} is built in (${this.#o.builtinDir}), not an uploaded package: it cannot be deleted; uninstall it (tessera ext uninstall ${name}) to stop using it`);
      const linked = this.#o.registry.linked().find((l) => l.manifest.name === name);
      if (linked?.manifest.version === version) throw new TesseraError('TESSERA_CONFLICT', `${id} is loaded from the linked folder ${linked.dir}, not an uploaded package: remove that folder from TESSERA_EXTENSIONS_DIRS instead`);
      const entry = await this.get(name); // 404 when the name is nowhere
      throw new TesseraError('TESSERA_NOT_FOUND', `extension "${name}" has no uploaded version ${version}; its versions: ${entry.versions.map((v) => `${v.version} (${v.source})`).join(', ') || 'none'}`);
    }
    const row = await this.#store.install(name);
    if (row && row.version === version && row.source === 'package') {
      throw new TesseraError('TESSERA_CONFLICT', `${id} is ${row.state === 'installed' ? 'installed' : `the installed version (state ${row.state})`}: uninstall it first (tessera ext uninstall ${name}, or DELETE /api/extensions/${name}), or install another version, then delete it`);
    }
    await this.#exclusive(() => this.#store.transaction(async (trx) => {
      await trx.deletePackage(name, version);
      await trx.addGarbage({ dir: pkg.dir, run_dir: join(pkg.dir, PACKAGE_EXTENSION_DIR), images: [] });
    }));
    // A sweep already going may have read the garbage before this: then the next one removes it.
    await this.sweep();
    if (existsSync(pkg.dir)) await this.sweep();
    this.#o.log.info(`deleted the package ${id} (${pkg.bytes} bytes) from the catalog`);
    this.#announce(name);
    return { name, version, bytes: pkg.bytes, removed: !existsSync(pkg.dir) };
  }

  /**
   * Removes what uninstalls, upgrades and replaced packages left, once no queued or
   * running run uses that version: its images (unless an installed extension still
   * lists them) and the folders of packages that are gone from the catalog.
   */
  sweep(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#sweeping ??= this.#exclusive(() => sweepGarbage(this.#cleanup())).catch((err: Error) => this.#o.log.warn(`extension cleanup failed: ${err.message}`)).finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }
}

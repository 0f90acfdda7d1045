import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import semver from 'semver';
import type { Kysely } from '@tessera/db';
import { PLATFORM_VERSION, TesseraError } from '@tessera/model';
import {
  PACKAGE_EXTENSION_DIR,
  PACKAGE_META_FILE,
  findExtensionFolders,
  loadExtensionFolder,
  readManifest,
  unpackPackage,
  validateParams,
  type ExtensionManifest,
  type ImageTool,
  type PackageMeta,
  type WorkflowRegistry,
} from '@tessera/extensions';
import { readFile } from 'node:fs/promises';
import type { ExtensionInstallsTable, ExtensionTables, InstallState } from './extension-store.ts';

export type CatalogState = 'not_installed' | InstallState;

export interface CatalogVersion {
  version: string;
  source: 'builtin' | 'package' | 'folder';
  /** Tessera versions it asks for (manifest `platform`). */
  platform: string | null;
  /** Why this version cannot be installed here (platform version), or null. */
  problem: string | null;
  sha256: string | null;
  bytes: number | null;
  uploaded_at: string | null;
}

export interface CatalogEntry {
  name: string;
  kind: ExtensionManifest['kind'];
  title: string;
  description: string;
  documentation: string | null;
  keywords: string[];
  parameters: NonNullable<ExtensionManifest['parameters']>;
  dependencies: Record<string, string>;
  images: string[];
  versions: CatalogVersion[];
  /** The newest version that can be installed here. */
  latest: string | null;
  state: CatalogState;
  installed: { version: string; source: string; params: Record<string, unknown>; updated_at: string } | null;
  /** Why it is in state error (or why its last upgrade failed), else null. */
  error: string | null;
  /** What an install in progress is doing. */
  progress: string | null;
  /** Loaded from a folder under TESSERA_EXTENSIONS_DIRS: always installed, as it is on disk. */
  linked: string | null;
  workflows: string[];
}

interface Available {
  version: string;
  source: 'builtin' | 'package';
  /** Extension folder. */
  dir: string;
  /** The unpacked package (package source). */
  packageDir?: string;
  manifest: ExtensionManifest;
  sha256: string;
  bytes: number | null;
  uploadedAt: number | null;
}

interface PreviousInstall {
  /** Image name -> the id it pointed at before the install began. */
  image_ids?: Record<string, string>;
  version: string;
  source: 'builtin' | 'package';
  dir: string;
  sha256: string;
  params_json: string;
  images_json: string;
}

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
  state: CatalogState;
  /** The installed version (or the one being installed), else null. */
  version: string | null;
  progress: string | null;
  error: string | null;
}

/**
 * The extensions domain: the catalog (built-in collection and uploaded packages),
 * and the install lifecycle. Every state change is committed before it is acted on,
 * so an install cut short by a crash ends, at the next start, in its previous
 * version or in state error, never half-installed.
 */
export class ExtensionManager {
  readonly #o: ExtensionManagerOptions;
  readonly #db: Kysely<ExtensionTables>;
  readonly #storeDir: string;
  readonly #stagingDir: string;
  #builtin = new Map<string, Available>();
  #builtinProblems: { dir: string; message: string }[] = [];
  readonly #jobs = new Map<string, { progress: string; done: Promise<void> }>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;
  /** Serializes what changes the package store: upload commits and sweeps. */
  #lock: Promise<unknown> = Promise.resolve();
  #closed = false;
  #announcing: Promise<void> = Promise.resolve();

  constructor(options: ExtensionManagerOptions) {
    this.#o = options;
    this.#db = options.db;
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
    for (const row of await this.#db.selectFrom('extension_installs').selectAll().where('state', '=', 'installed').execute()) {
      try {
        const extension = await loadExtensionFolder(row.dir, { compiledOnly: row.source === 'package' });
        this.#o.registry.install(row.name, { extension, params: JSON.parse(row.params_json) as Record<string, unknown> });
      } catch (err) {
        const message = `could not load installed ${row.name}@${row.version} from ${row.dir}: ${(err as Error).message}`;
        this.#o.log.warn(message);
        await this.#db.updateTable('extension_installs').set({ state: 'error', error: message, updated_at: Date.now() }).where('name', '=', row.name).execute();
      }
    }
    const done = await this.#db.selectFrom('extension_meta').select('value').where('key', '=', 'defaults_installed').executeTakeFirst();
    if (!done) {
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
      await this.#db.insertInto('extension_meta').values({ key: 'defaults_installed', value: new Date().toISOString() }).execute();
    }
    await this.#removeOrphanPackages();
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

  problems(): { dir: string; message: string }[] {
    return this.#builtinProblems;
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /** Package folders no row refers to: a crash between unpacking an upload and committing it. */
  async #removeOrphanPackages(): Promise<void> {
    const known = new Set([
      ...(await this.#db.selectFrom('extension_packages').select('dir').execute()).map((r) => r.dir),
      ...(await this.#db.selectFrom('extension_garbage').select('dir').execute()).map((r) => r.dir),
      ...(await this.#db.selectFrom('extension_installs').select('dir').execute()).map((r) => r.dir.replace(/\/extension$/, '')),
    ]);
    const active = await this.#o.activeRunDirs();
    for (const e of await readdir(this.#storeDir)) {
      const dir = join(this.#storeDir, e);
      if (!known.has(dir) && !active.has(join(dir, PACKAGE_EXTENSION_DIR))) await rm(dir, { recursive: true, force: true });
    }
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
    const rows = await this.#db.selectFrom('extension_installs').selectAll().where('state', 'in', ['installing', 'uninstalling']).execute();
    for (const row of rows) {
      if (row.state === 'uninstalling') {
        await this.#finishUninstall(row);
        this.#o.log.info(`finished uninstalling ${row.name}, which the server stopped in the middle of`);
        continue;
      }
      const previous = row.previous_json ? (JSON.parse(row.previous_json) as PreviousInstall) : undefined;
      const images = JSON.parse(row.images_json) as string[];
      await this.#db.transaction().execute(async (trx) => {
        if (previous) {
          const { image_ids: _ids, ...restored } = previous;
          await trx.updateTable('extension_installs').set({
            ...restored, state: 'installed', previous_json: null, updated_at: Date.now(),
            error: `installing ${row.version} was interrupted (the server stopped); ${previous.version} stays installed`,
          }).where('name', '=', row.name).execute();
        } else {
          await trx.updateTable('extension_installs').set({
            state: 'error', updated_at: Date.now(),
            error: `installing ${row.version} was interrupted (the server stopped); install it again, or uninstall it`,
          }).where('name', '=', row.name).execute();
        }
        const keep = previous ? (JSON.parse(previous.images_json) as string[]) : [];
        const drop = images.filter((i) => !keep.includes(i));
        if (drop.length > 0) await trx.insertInto('extension_garbage').values({ id: randomUUID(), dir: null, run_dir: row.dir, images_json: JSON.stringify(drop), created_at: Date.now() }).execute();
      });
      await this.#restoreImages(previous ?? null);
      this.#o.log.warn(`the install of ${row.name}@${row.version} was interrupted by a stop; ${previous ? `${previous.version} stays installed` : 'it is in state error'}`);
    }
  }

  async #packages(name?: string): Promise<Available[]> {
    let q = this.#db.selectFrom('extension_packages').selectAll();
    if (name) q = q.where('name', '=', name);
    const rows = await q.execute();
    const out: Available[] = [];
    for (const r of rows) {
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
  async catalog(): Promise<CatalogEntry[]> {
    const packages = await this.#packages();
    const installs = await this.#db.selectFrom('extension_installs').selectAll().execute();
    const names = new Set([...this.#builtin.keys(), ...packages.map((p) => p.manifest.name), ...installs.map((i) => i.name), ...this.#o.registry.linked().map((l) => l.manifest.name)]);
    const entries: CatalogEntry[] = [];
    for (const name of [...names].sort()) {
      const available = [...packages.filter((p) => p.manifest.name === name), ...(this.#builtin.has(name) ? [this.#builtin.get(name)!] : [])]
        .sort(newestFirst);
      entries.push(this.#entry(name, available, installs.find((i) => i.name === name)));
    }
    return entries;
  }

  async get(name: string): Promise<CatalogEntry> {
    const available = await this.#available(name);
    const row = await this.#row(name);
    const linked = this.#o.registry.linked().some((l) => l.manifest.name === name);
    if (available.length === 0 && !row && !linked) {
      throw new TesseraError('TESSERA_NOT_FOUND', `extension "${name}" is not in the catalog; \`tessera ext list\` shows what is, and \`tessera ext install <folder|package.tgz>\` adds your own`);
    }
    return this.#entry(name, available, row);
  }

  #entry(name: string, available: Available[], row: ExtensionInstallsTable | undefined): CatalogEntry {
    const linked = this.#o.registry.linked().find((l) => l.manifest.name === name);
    const versions: CatalogVersion[] = available.map((a) => ({
      version: a.version,
      source: a.source,
      platform: a.manifest.platform ?? null,
      problem: platformProblem(a.manifest),
      sha256: a.sha256 || null,
      bytes: a.bytes,
      uploaded_at: a.uploadedAt ? new Date(a.uploadedAt).toISOString() : null,
    }));
    if (linked) versions.unshift({ version: linked.manifest.version, source: 'folder', platform: linked.manifest.platform ?? null, problem: null, sha256: null, bytes: null, uploaded_at: null });
    const shown = linked?.manifest ?? available.find((a) => row && a.version === row.version && (a.source !== 'package' || a.sha256 === row.sha256))?.manifest ?? available[0]?.manifest;
    const loaded = this.#o.registry.extensions().find((e) => e.manifest.name === name);
    const job = this.#jobs.get(name);
    return {
      name,
      kind: shown?.kind ?? 'workflow',
      title: shown?.title ?? name,
      description: shown?.description ?? '',
      documentation: shown?.documentation ?? null,
      keywords: shown?.keywords ?? [],
      parameters: shown?.parameters ?? {},
      dependencies: shown?.dependencies ?? {},
      images: (shown?.images ?? []).map((i) => i.name),
      versions,
      latest: available.find((a) => !platformProblem(a.manifest))?.version ?? null,
      state: linked ? 'installed' : (row?.state ?? 'not_installed'),
      installed: linked
        ? { version: linked.manifest.version, source: 'folder', params: {}, updated_at: new Date(0).toISOString() }
        : row && row.state !== 'error'
          ? { version: row.version, source: row.source, params: JSON.parse(row.params_json) as Record<string, unknown>, updated_at: new Date(row.updated_at).toISOString() }
          : null,
      error: linked ? null : (row?.error ?? null),
      progress: job?.progress ?? null,
      linked: linked?.dir ?? null,
      workflows: loaded?.workflows.map((w) => w.spec.id) ?? [],
    };
  }

  async #row(name: string): Promise<ExtensionInstallsTable | undefined> {
    return this.#db.selectFrom('extension_installs').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /**
   * Stores an uploaded package after checking all of it (paths, links, size, checksums,
   * manifest, DAG specs). Does not install it.
   */
  async uploadPackage(source: Readable): Promise<{ name: string; version: string; kind: string; sha256: string; bytes: number; replaced: boolean }> {
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
    const old = await this.#db.selectFrom('extension_packages').selectAll().where('name', '=', meta.name).where('version', '=', meta.version).executeTakeFirst();
    await this.#db.transaction().execute(async (trx) => {
      // This folder is current (again): whatever marked it for removal no longer holds.
      await trx.deleteFrom('extension_garbage').where('dir', '=', target).execute();
      if (old && old.dir !== target) {
        await trx.deleteFrom('extension_packages').where('name', '=', meta.name).where('version', '=', meta.version).execute();
        await trx.insertInto('extension_garbage').values({ id: randomUUID(), dir: old.dir, run_dir: join(old.dir, PACKAGE_EXTENSION_DIR), images_json: '[]', created_at: Date.now() }).execute();
      }
      if (!old || old.dir !== target) {
        await trx.insertInto('extension_packages').values({
          name: meta.name, version: meta.version, kind: meta.kind, sha256: unpacked.sha256, bytes: unpacked.bytes, dir: target, uploaded_at: Date.now(),
        }).execute();
      }
    });
    if (old && old.dir !== target) void this.sweep();
    this.#announce(meta.name);
    return { name: meta.name, version: meta.version, kind: meta.kind, sha256: unpacked.sha256, bytes: unpacked.bytes, replaced: Boolean(old && old.dir !== target) };
    });
  }

  /**
   * Installs (or upgrades, downgrades, reconfigures) an extension. Checks everything
   * that can be checked first and throws on a problem, writing nothing; then commits
   * state `installing` and returns, with `done` settling when the install has ended
   * (its failure is recorded in the catalog, and rejects `done`).
   */
  async install(name: string, request: { version?: string; params?: Record<string, unknown> }): Promise<{ entry: CatalogEntry; done: Promise<void> }> {
    // Reserved before the first await: a second install (or an uninstall) of the name is refused, not interleaved.
    if (this.#jobs.has(name)) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is being ${this.#jobs.get(name)!.progress.startsWith('uninstalling') ? 'uninstalled' : 'installed'} right now; wait until it is done (tessera ext list shows its state)`);
    const job = { progress: `installing ${name}`, done: Promise.resolve() };
    this.#jobs.set(name, job);
    try {
      return await this.#install(name, request, job);
    } catch (err) {
      this.#jobs.delete(name);
      throw err;
    }
  }

  async #install(name: string, request: { version?: string; params?: Record<string, unknown> }, job: { progress: string; done: Promise<void> }): Promise<{ entry: CatalogEntry; done: Promise<void> }> {
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
    const row = await this.#row(name);
    if (row?.state === 'uninstalling') throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is being uninstalled`);
    // Without new values, an upgrade keeps the values of the parameters the new version still has.
    const kept = row && row.state === 'installed'
      ? Object.fromEntries(Object.entries(JSON.parse(row.params_json) as Record<string, unknown>).filter(([k]) => Object.hasOwn(m.parameters ?? {}, k)))
      : {};
    const params = validateParams(m.parameters ?? {}, request.params ?? kept);
    await this.#checkDependencies(name, m);
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
    const values = {
      name, version: target.version, state: 'installing' as const, source: target.source, dir: target.dir, sha256: target.sha256,
      params_json: JSON.stringify(params), images_json: '[]', error: null, previous_json: previous ? JSON.stringify(previous) : null, updated_at: Date.now(),
    };
    await this.#db.insertInto('extension_installs').values(values).onConflict((oc) => oc.column('name').doUpdateSet(values)).execute();
    job.progress = `installing ${name}@${target.version}`;
    this.#announce(name);
    job.done = this.#runInstall(name, target, params, previous, (p) => {
      job.progress = p;
      this.#announce(name, { state: 'installing', progress: p });
    }).finally(() => {
      this.#jobs.delete(name);
      this.#announce(name);
    });
    job.done.catch(() => {}); // recorded in the catalog; callers that wait see it too
    return { entry: await this.get(name), done: job.done };
  }

  async #checkDependencies(name: string, m: ExtensionManifest): Promise<void> {
    const installed = await this.#db.selectFrom('extension_installs').selectAll().where('state', '=', 'installed').execute();
    const versionOf = (dep: string): string | undefined =>
      this.#o.registry.linked().find((l) => l.manifest.name === dep)?.manifest.version ?? installed.find((i) => i.name === dep)?.version;
    for (const [dep, range] of Object.entries(m.dependencies ?? {})) {
      const have = versionOf(dep);
      if (have && semver.satisfies(have, range, { includePrerelease: true })) continue;
      const inCatalog = (await this.#available(dep)).find((a) => semver.satisfies(a.version, range, { includePrerelease: true }));
      throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE', `${name}@${m.version} needs extension "${dep}" ${range}, ` +
        `${have ? `and ${have} is installed` : 'which is not installed'}; ` +
        `${inCatalog ? `install it first: tessera ext install ${dep}@${inCatalog.version}` : `the catalog has no matching version of "${dep}": install its package first`}`);
    }
    // Upgrading or downgrading must keep what depends on this extension working.
    for (const other of installed) {
      if (other.name === name) continue;
      const otherManifest = await readManifest(other.dir).catch(() => undefined);
      const range = otherManifest?.dependencies?.[name];
      if (range && !semver.satisfies(m.version, range, { includePrerelease: true })) {
        throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE', `${other.name}@${other.version} needs "${name}" ${range}, and ${m.version} is outside that range; uninstall or upgrade ${other.name} first`);
      }
    }
  }

  async #runInstall(name: string, target: Available, params: Record<string, unknown>, previous: PreviousInstall | null, progress: (p: string) => void): Promise<void> {
    const started = Date.now();
    const loadedImages: string[] = [];
    const previousImages = previous ? (JSON.parse(previous.images_json) as string[]) : [];
    try {
      const images = target.manifest.images ?? [];
      if (images.length > 0) {
        const docker = this.#o.images!;
        if (target.source === 'builtin') {
          for (const image of images) {
            progress(`building image ${image.name}`);
            await docker.build(image.name, join(target.dir, image.context), image.dockerfile, (line) => {
              if (/^Step \d+\/\d+/.test(line)) progress(`building image ${image.name}: ${line}`);
            });
            loadedImages.push(image.name);
            await this.#recordImages(name, loadedImages);
          }
        } else {
          const meta = JSON.parse(await readFile(join(target.packageDir!, PACKAGE_META_FILE), 'utf8')) as PackageMeta;
          for (const image of meta.images) {
            if (image.file) {
              progress(`loading image ${image.name}`);
              loadedImages.push(image.name);
              await this.#recordImages(name, loadedImages);
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
        const owner = this.#o.registry.list().find((w) => w.spec.id === wf.spec.id && w.extension.name !== name);
        if (owner) throw new TesseraError('TESSERA_CONFLICT', `workflow "${wf.spec.id}" is already provided by extension "${owner.extension.name}"; workflow ids are unique across extensions: rename it, or uninstall ${owner.extension.name}`);
      }
      await this.#db.transaction().execute(async (trx) => {
        await trx.updateTable('extension_installs').set({ state: 'installed', images_json: JSON.stringify(loadedImages.length ? loadedImages : sameImages(previous, target)), error: null, previous_json: null, updated_at: Date.now() }).where('name', '=', name).execute();
        if (previous && (previous.dir !== target.dir || previousImages.some((i) => !loadedImages.includes(i)))) {
          await trx.insertInto('extension_garbage').values({
            id: randomUUID(),
            dir: null,
            run_dir: previous.dir,
            images_json: JSON.stringify(previousImages.filter((i) => !loadedImages.includes(i))),
            created_at: Date.now(),
          }).execute();
        }
      });
      this.#o.registry.install(name, { extension, params });
      this.#o.log.info(`installed ${name}@${target.version} (${target.source}) in ${Date.now() - started} ms`);
      void this.sweep();
    } catch (err) {
      const message = (err as Error).message;
      const drop = loadedImages.filter((i) => !previousImages.includes(i));
      for (const image of drop) {
        const note = await this.#o.images?.remove(image);
        if (note) this.#o.log.warn(note);
      }
      await this.#restoreImages(previous);
      if (previous) {
        const { image_ids: _ids, ...restored } = previous;
        await this.#db.updateTable('extension_installs').set({ ...restored, state: 'installed', previous_json: null, error: `installing ${target.version} failed: ${message}`, updated_at: Date.now() }).where('name', '=', name).execute();
      } else {
        await this.#db.updateTable('extension_installs').set({ state: 'error', images_json: '[]', error: message, updated_at: Date.now() }).where('name', '=', name).execute();
      }
      this.#o.log.warn(`installing ${name}@${target.version} failed: ${message}`);
      throw err;
    }
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

  /** Points the previous version's image names back at the ids they had (a failed upgrade may have loaded others under them). */
  async #restoreImages(previous: PreviousInstall | null): Promise<void> {
    for (const [image, id] of Object.entries(previous?.image_ids ?? {})) {
      const now = await this.#o.images?.imageId(image).catch(() => undefined);
      if (now === id) continue;
      await this.#o.images?.tag(id, image).catch((err: Error) => this.#o.log.warn(`could not point ${image} back at ${id}: ${err.message}`));
    }
  }

  async #recordImages(name: string, images: string[]): Promise<void> {
    await this.#db.updateTable('extension_installs').set({ images_json: JSON.stringify(images) }).where('name', '=', name).execute();
  }

  /** Uninstalls: its workflows go at once; its images go once no run of it is still going. */
  async uninstall(name: string): Promise<void> {
    if (this.#jobs.has(name)) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is being installed or uninstalled right now; try again when that is done`);
    this.#jobs.set(name, { progress: `uninstalling ${name}`, done: Promise.resolve() });
    try {
      await this.#uninstall(name);
    } finally {
      this.#jobs.delete(name);
      this.#announce(name);
    }
  }

  async #uninstall(name: string): Promise<void> {
    const linked = this.#o.registry.linked().find((l) => l.manifest.name === name);
    if (linked) throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is loaded from the linked folder ${linked.dir}; remove that folder from TESSERA_EXTENSIONS_DIRS instead`);
    const row = await this.#row(name);
    if (!row) {
      await this.get(name); // not in the catalog at all: 404 saying so
      throw new TesseraError('TESSERA_CONFLICT', `extension "${name}" is not installed`);
    }
    const dependents: string[] = [];
    for (const other of await this.#db.selectFrom('extension_installs').selectAll().where('state', '=', 'installed').where('name', '!=', name).execute()) {
      const manifest = await readManifest(other.dir).catch(() => undefined);
      if (manifest?.dependencies?.[name]) dependents.push(other.name);
    }
    if (dependents.length > 0) {
      throw new TesseraError('TESSERA_EXTENSION_INCOMPATIBLE', `extension "${name}" is needed by ${dependents.join(', ')}; uninstall ${dependents.length === 1 ? 'it' : 'them'} first`);
    }
    await this.#db.updateTable('extension_installs').set({ state: 'uninstalling', updated_at: Date.now() }).where('name', '=', name).execute();
    this.#announce(name, { state: 'uninstalling', progress: null });
    this.#o.registry.uninstall(name);
    await this.#finishUninstall(row);
    void this.sweep();
  }

  async #finishUninstall(row: ExtensionInstallsTable): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx.insertInto('extension_garbage').values({ id: randomUUID(), dir: null, run_dir: row.dir, images_json: row.images_json, created_at: Date.now() }).execute();
      await trx.deleteFrom('extension_installs').where('name', '=', row.name).execute();
    });
  }

  /**
   * Removes what uninstalls, upgrades and replaced packages left, once no queued or
   * running run uses that version: its images (unless an installed extension still
   * lists them) and the folders of packages that are gone from the catalog.
   */
  sweep(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#sweeping ??= this.#exclusive(() => this.#sweep()).catch((err: Error) => this.#o.log.warn(`extension cleanup failed: ${err.message}`)).finally(() => (this.#sweeping = undefined));
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const garbage = await this.#db.selectFrom('extension_garbage').selectAll().execute();
    if (garbage.length === 0) return;
    const active = await this.#o.activeRunDirs();
    const installs = await this.#db.selectFrom('extension_installs').selectAll().execute();
    const packages = await this.#db.selectFrom('extension_packages').select('dir').execute();
    const usedImages = new Set(installs.flatMap((i) => JSON.parse(i.images_json) as string[]));
    const usedDirs = new Set([...installs.map((i) => i.dir), ...packages.map((p) => p.dir), ...packages.map((p) => join(p.dir, PACKAGE_EXTENSION_DIR))]);
    for (const g of garbage) {
      if (active.has(g.run_dir)) continue;
      for (const image of JSON.parse(g.images_json) as string[]) {
        if (usedImages.has(image) || !this.#o.images) continue;
        const note = await this.#o.images.remove(image);
        if (note) this.#o.log.warn(note);
      }
      // A replaced package that is still the installed version stays until the install moves on.
      if (g.dir && (usedDirs.has(g.dir) || usedDirs.has(join(g.dir, PACKAGE_EXTENSION_DIR)))) continue;
      if (g.dir && g.dir.startsWith(this.#storeDir)) await rm(g.dir, { recursive: true, force: true });
      await this.#db.deleteFrom('extension_garbage').where('id', '=', g.id).execute();
    }
  }
}

/** Newest version first; a version semver cannot read (refused today, but maybe stored before) sorts last instead of breaking the catalog. */
function newestFirst(x: { version: string }, y: { version: string }): number {
  const a = semver.valid(x.version);
  const b = semver.valid(y.version);
  if (a && b) return semver.rcompare(a, b);
  return a ? -1 : b ? 1 : x.version.localeCompare(y.version);
}

function sameImages(previous: PreviousInstall | null, target: Available): string[] {
  // Reinstalling the same version with new parameters keeps the images it had.
  return previous && previous.dir === target.dir ? (JSON.parse(previous.images_json) as string[]) : [];
}

function platformProblem(m: ExtensionManifest): string | null {
  if (!m.platform || semver.satisfies(PLATFORM_VERSION, m.platform, { includePrerelease: true })) return null;
  return `it asks for Tessera ${m.platform}, and this is Tessera ${PLATFORM_VERSION}`;
}

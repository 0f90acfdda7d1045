import { randomUUID } from 'node:crypto';
import type { Kysely } from '@tessera/db';
import type { ExtensionGarbageTable, ExtensionInstallsTable, ExtensionPackagesTable, ExtensionTables, InstallState } from './extension-migrations.ts';

/**
 * Every query of the extension catalog, in one place: uploaded packages, the one install
 * of each extension, what is left to remove (garbage) and the catalog's own flags.
 */
export class ExtensionCatalogStore {
  readonly #db: Kysely<ExtensionTables>;

  constructor(db: Kysely<ExtensionTables>) {
    this.#db = db;
  }

  /** Runs `fn` in one transaction, with a store that writes inside it. */
  transaction<T>(fn: (store: ExtensionCatalogStore) => Promise<T>): Promise<T> {
    return this.#db.transaction().execute((trx) => fn(new ExtensionCatalogStore(trx)));
  }

  /** The installs, all or those in the given states, without `except`. */
  installs(options: { states?: InstallState[]; except?: string } = {}): Promise<ExtensionInstallsTable[]> {
    let q = this.#db.selectFrom('extension_installs').selectAll();
    if (options.states) q = q.where('state', 'in', options.states);
    if (options.except !== undefined) q = q.where('name', '!=', options.except);
    return q.execute();
  }

  install(name: string): Promise<ExtensionInstallsTable | undefined> {
    return this.#db.selectFrom('extension_installs').selectAll().where('name', '=', name).executeTakeFirst();
  }

  /** Writes the install of `values.name`, replacing the one there was. */
  async putInstall(values: ExtensionInstallsTable): Promise<void> {
    await this.#db.insertInto('extension_installs').values(values).onConflict((oc) => oc.column('name').doUpdateSet(values)).execute();
  }

  async updateInstall(name: string, set: Partial<Omit<ExtensionInstallsTable, 'name'>>): Promise<void> {
    await this.#db.updateTable('extension_installs').set(set).where('name', '=', name).execute();
  }

  async deleteInstall(name: string): Promise<void> {
    await this.#db.deleteFrom('extension_installs').where('name', '=', name).execute();
  }

  /** The uploaded packages, all or those of one extension. */
  packages(name?: string): Promise<ExtensionPackagesTable[]> {
    let q = this.#db.selectFrom('extension_packages').selectAll();
    if (name !== undefined) q = q.where('name', '=', name);
    return q.execute();
  }

  packageOf(name: string, version: string): Promise<ExtensionPackagesTable | undefined> {
    return this.#db.selectFrom('extension_packages').selectAll().where('name', '=', name).where('version', '=', version).executeTakeFirst();
  }

  async addPackage(row: ExtensionPackagesTable): Promise<void> {
    await this.#db.insertInto('extension_packages').values(row).execute();
  }

  async deletePackage(name: string, version: string): Promise<void> {
    await this.#db.deleteFrom('extension_packages').where('name', '=', name).where('version', '=', version).execute();
  }

  garbage(): Promise<ExtensionGarbageTable[]> {
    return this.#db.selectFrom('extension_garbage').selectAll().execute();
  }

  /** Records what to remove once no active run uses `run_dir`: images, and a package folder (`dir`). */
  async addGarbage(g: { dir: string | null; run_dir: string; images: string[] }): Promise<void> {
    await this.#db.insertInto('extension_garbage').values({ id: randomUUID(), dir: g.dir, run_dir: g.run_dir, images_json: JSON.stringify(g.images), created_at: Date.now() }).execute();
  }

  async deleteGarbage(id: string): Promise<void> {
    await this.#db.deleteFrom('extension_garbage').where('id', '=', id).execute();
  }

  /** Forgets every removal planned for the package folder `dir` (it is current again). */
  async keepDir(dir: string): Promise<void> {
    await this.#db.deleteFrom('extension_garbage').where('dir', '=', dir).execute();
  }

  async meta(key: string): Promise<string | undefined> {
    return (await this.#db.selectFrom('extension_meta').select('value').where('key', '=', key).executeTakeFirst())?.value;
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.#db.insertInto('extension_meta').values({ key, value }).execute();
  }
}

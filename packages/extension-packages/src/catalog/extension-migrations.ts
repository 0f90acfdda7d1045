import type { Kysely, NamedMigration } from '@tessera/db';

/** An uploaded package, unpacked and verified under `<home>/extensions/store/`. */
export interface ExtensionPackagesTable {
  name: string;
  version: string;
  kind: string;
  sha256: string;
  bytes: number;
  /** The unpacked package (holds extension/ and images/). */
  dir: string;
  uploaded_at: number;
}

export type InstallState = 'installing' | 'installed' | 'error' | 'uninstalling';

/** The one installed (or installing, or failed) version of an extension. */
export interface ExtensionInstallsTable {
  name: string;
  version: string;
  state: InstallState;
  /** `builtin` (the platform's collection) or `package` (uploaded). */
  source: 'builtin' | 'package';
  /** The extension folder its workflows load from. */
  dir: string;
  /** Package checksum (builtin: empty). */
  sha256: string;
  params_json: string;
  /** Images this install built or loaded (removed with it). */
  images_json: string;
  error: string | null;
  /** What was installed before this install started (upgrade/downgrade), restored if it fails. */
  previous_json: string | null;
  updated_at: number;
}

/** What an uninstall or upgrade leaves to remove once no active run uses it. */
export interface ExtensionGarbageTable {
  id: string;
  /** A package dir to delete (null for the builtin collection, which is never deleted). */
  dir: string | null;
  /** The folder runs of that version ran from (runs still going keep it). */
  run_dir: string;
  images_json: string;
  created_at: number;
}

export interface ExtensionMetaTable {
  key: string;
  value: string;
}

export interface ExtensionTables {
  extension_packages: ExtensionPackagesTable;
  extension_installs: ExtensionInstallsTable;
  extension_garbage: ExtensionGarbageTable;
  extension_meta: ExtensionMetaTable;
}

export const extensionMigrations: NamedMigration[] = [
  {
    name: '2026-12-02-02-extensions',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('extension_packages')
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addColumn('dir', 'text', (c) => c.notNull())
        .addColumn('uploaded_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('extension_packages_pk', ['name', 'version'])
        .execute();
      await db.schema
        .createTable('extension_installs')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('dir', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('params_json', 'text', (c) => c.notNull())
        .addColumn('images_json', 'text', (c) => c.notNull())
        .addColumn('error', 'text')
        .addColumn('previous_json', 'text')
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('extension_garbage')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('dir', 'text')
        .addColumn('run_dir', 'text', (c) => c.notNull())
        .addColumn('images_json', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('extension_meta')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('value', 'text', (c) => c.notNull())
        .execute();
    },
  },
];

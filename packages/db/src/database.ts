import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, type Migration, type MigrationProvider } from 'kysely';

/** A migration contributed by a domain. Names are global and sort in the order they must run. */
export interface NamedMigration extends Migration {
  /** e.g. `2026-11-24-01-projects`: date first so that domains interleave in time order. */
  name: string;
}

export interface OpenDatabaseOptions {
  /** Path of the SQLite file; created with its folder if missing. */
  file: string;
  /**
   * `normal` (default): a transaction survives a killed process (WAL), not always a power loss.
   * `full`: fsync at each commit; survives a power loss, costs a disk flush per transition.
   */
  durability?: 'normal' | 'full';
}

/**
 * Opens the metadata database. SQLite is the embedded default; every query goes
 * through Kysely so that a PostgreSQL dialect can be added without rewriting queries.
 */
export function openDatabase<DB>(options: OpenDatabaseOptions): Kysely<DB> {
  mkdirSync(dirname(options.file), { recursive: true });
  const sqlite = new SQLite(options.file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma(`synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`);
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const db = new Kysely<DB>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  natives.set(db, sqlite);
  return db;
}

const natives = new WeakMap<object, SQLite.Database>();

/** A prepared statement of the native connection (see {@link withNativeConnection}). */
export type NativeStatement = SQLite.Statement;
export type NativeDatabase = SQLite.Database;

/**
 * The native SQLite connection, for synchronous single-statement reads on hot paths
 * (no transaction: a read may see the uncommitted writes of a transaction in
 * progress on the same connection, which is harmless for existence checks).
 */
export function nativeDatabase(db: object): SQLite.Database {
  const native = natives.get(db);
  if (!native) throw new Error('nativeDatabase needs a database opened with openDatabase (SQLite)');
  return native;
}

/**
 * Runs `fn` with the native SQLite connection while holding Kysely's connection
 * (no Kysely query or transaction runs meanwhile). For hot paths only, where
 * Kysely's per-query cost dominates: the DICOM ingest writes its index rows in one
 * synchronous transaction per batch this way (ADR 0006). Code using it keeps its
 * SQL portable so that a PostgreSQL port can run the same statements.
 */
export async function withNativeConnection<T>(db: object, fn: (native: SQLite.Database) => T): Promise<T> {
  const native = natives.get(db);
  if (!native) throw new Error('withNativeConnection needs a database opened with openDatabase (SQLite)');
  return (db as Kysely<unknown>).connection().execute(async () => fn(native));
}

/**
 * Kysely prepares every query anew; SQLite's prepare is a large share of a state
 * transition's cost. The scheduler sends the same few statements over and over, so
 * prepared statements are kept by their SQL text (bounded, oldest dropped first).
 */
function withStatementCache(sqlite: SQLite.Database, max = 256): { close(): void; prepare(sql: string): SQLite.Statement } {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => {
      cache.clear();
      sqlite.close();
    },
    prepare: (sql: string) => {
      let stmt = cache.get(sql);
      if (!stmt) {
        stmt = sqlite.prepare(sql);
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}

/** Runs every migration not yet applied, in name order. Throws with the failing migration's name. */
export async function migrate(db: Kysely<unknown>, migrations: NamedMigration[]): Promise<void> {
  const names = new Set<string>();
  for (const m of migrations) {
    if (names.has(m.name)) throw new Error(`two migrations are named "${m.name}"; migration names must be unique`);
    names.add(m.name);
  }
  const provider: MigrationProvider = {
    getMigrations: async () => Object.fromEntries(migrations.map((m) => [m.name, { up: m.up, down: m.down }])),
  };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error');
    throw new Error(`database migration ${failed ? `"${failed.migrationName}" ` : ''}failed`, { cause: error });
  }
}

/**
 * A domain's view of the shared database: the same connection, typed with only
 * the tables that domain owns (Kysely's DB type is invariant, hence the cast).
 */
export function domainView<Tables>(db: Kysely<never> | Kysely<unknown> | Kysely<object>): Kysely<Tables> {
  return db as unknown as Kysely<Tables>;
}

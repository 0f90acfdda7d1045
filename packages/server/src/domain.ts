import type { FastifyInstance } from 'fastify';
import type { NamedMigration } from '@tessera/db';

/**
 * The one shape every domain of the server has (projects, DICOM, results, extensions,
 * applications, workflows, events, arrival triggers, the platform's own routes). The
 * composition root (create-tessera.ts) creates them with what each depends on, runs
 * every domain's migrations, starts them in order, declares their routes, and closes
 * them in reverse order. A domain's factory does no I/O: what needs the database or
 * the disk happens in `start`.
 */
export interface Domain {
  readonly name: string;
  /** The domain's tables: its migrations (names are unique across domains; Kysely applies them by name). */
  readonly migrations: readonly NamedMigration[];
  /** Brings the domain up once every domain's tables exist: loads, recovers, starts background work. */
  start(): Promise<void>;
  /** Declares the domain's routes, each from its contract (packages/api). */
  routes(app: FastifyInstance): Promise<void>;
  /** Stops background work and releases what `start` took. */
  close(): Promise<void>;
}

/** The server's log, as the domains use it. */
export interface DomainLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

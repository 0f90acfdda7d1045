import type { Kysely, NamedMigration } from '@tessera/db';
import type { ProjectRole } from '@tessera/api';
import { secretHash, type MembershipsTable } from './access-store.ts';

/**
 * A sign-in at the OpenID Connect issuer that has started and not come back yet.
 *
 * Why in the database rather than in a cookie sealed with a server key: several servers
 * on one database must be able to finish each other's sign-ins (the callback may reach
 * another one than the start did), which a database row gives without a key to share
 * and rotate; a row is also single-use (taken, then gone, so a callback cannot be
 * replayed) and expires on its own. The browser holds only a random handle in the
 * short-lived cookie `tessera_oidc` (HttpOnly, SameSite=Lax: it comes along on the
 * issuer's top-level redirect back); the row is found by the handle's SHA-256, so the
 * database alone cannot finish anyone's sign-in. The PKCE verifier is kept as it is:
 * without the authorization code, which only the browser receives, it is worth nothing,
 * and it is deleted at the callback or within minutes.
 */
export interface OidcLoginsTable {
  /** hex SHA-256 of the cookie's handle. */
  id_hash: string;
  state: string;
  nonce: string;
  code_verifier: string;
  /** Where to go once signed in: a path of this server. */
  next: string;
  created_at: number;
  expires_at: number;
}

export interface OidcTables {
  oidc_logins: OidcLoginsTable;
  memberships: MembershipsTable;
}

export type PendingLogin = Pick<OidcLoginsTable, 'state' | 'nonce' | 'code_verifier' | 'next'>;

export const oidcMigrations: NamedMigration[] = [
  {
    name: '2026-12-08-01-oidc-sign-in',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('oidc_logins')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('nonce', 'text', (c) => c.notNull())
        .addColumn('code_verifier', 'text', (c) => c.notNull())
        .addColumn('next', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('oidc_logins_expires').on('oidc_logins').column('expires_at').execute();
      // Who granted a membership: 'manual' (a principal investigator or an admin, in Tessera) or
      // 'oidc' (the issuer's claims at sign-in). Sign-in replaces only what the claims granted.
      await db.schema.alterTable('memberships').addColumn('source', 'text', (c) => c.notNull().defaultTo('manual')).execute();
    },
  },
];

/** What a sign-in changed in the user's memberships (project ids). */
export interface MembershipChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

/** Storage of OpenID Connect sign-ins: the pending ones, and the memberships the issuer's claims grant. */
export class OidcStore {
  readonly db: Kysely<OidcTables>;

  constructor(db: Kysely<OidcTables>) {
    this.db = db;
  }

  async savePending(handle: string, login: PendingLogin, ttlMs: number, now = Date.now()): Promise<void> {
    await this.db.insertInto('oidc_logins').values({ ...login, id_hash: secretHash(handle), created_at: now, expires_at: now + ttlMs }).execute();
  }

  /** Takes a pending sign-in once: the row is deleted; undefined when unknown, taken already or expired. */
  async takePending(handle: string, now = Date.now()): Promise<PendingLogin | undefined> {
    const idHash = secretHash(handle);
    const row = await this.db.selectFrom('oidc_logins').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
    if (!row) return undefined;
    const deleted = await this.db.deleteFrom('oidc_logins').where('id_hash', '=', idHash).executeTakeFirst();
    // Two callbacks with one handle at once (two servers): only the one that deleted the row goes on.
    if (Number(deleted.numDeletedRows) !== 1 || Number(row.expires_at) <= now) return undefined;
    return { state: row.state, nonce: row.nonce, code_verifier: row.code_verifier, next: row.next };
  }

  /** Drops pending sign-ins that expired (never finished). */
  async sweep(now = Date.now()): Promise<void> {
    await this.db.deleteFrom('oidc_logins').where('expires_at', '<=', now).execute();
  }

  async pendingCount(): Promise<number> {
    const row = await this.db.selectFrom('oidc_logins').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * Sets the user's memberships to what the claims say, in one transaction: a project the
   * claims name gets the claimed role (also over a membership set by hand: the claims decide
   * for the projects they name); a membership the claims granted earlier and no longer
   * name is removed; memberships set by hand in projects the claims do not name stay.
   */
  async applyClaimedMemberships(userId: string, wanted: ReadonlyMap<string, ProjectRole>, now = Date.now()): Promise<MembershipChanges> {
    return this.db.transaction().execute(async (tx) => {
      const changes: MembershipChanges = { added: [], changed: [], removed: [] };
      const current = new Map((await tx.selectFrom('memberships').selectAll().where('user_id', '=', userId).execute()).map((m) => [m.project_id, m]));
      for (const [projectId, m] of current) {
        if (m.source === 'oidc' && !wanted.has(projectId)) {
          await tx.deleteFrom('memberships').where('project_id', '=', projectId).where('user_id', '=', userId).execute();
          changes.removed.push(projectId);
        }
      }
      for (const [projectId, role] of wanted) {
        const m = current.get(projectId);
        if (!m) {
          await tx.insertInto('memberships').values({ project_id: projectId, user_id: userId, role, added_at: now, source: 'oidc' }).execute();
          changes.added.push(projectId);
        } else if (m.role !== role || m.source !== 'oidc') {
          await tx.updateTable('memberships').set({ role, source: 'oidc' }).where('project_id', '=', projectId).where('user_id', '=', userId).execute();
          if (m.role !== role) changes.changed.push(projectId);
        }
      }
      return changes;
    });
  }
}

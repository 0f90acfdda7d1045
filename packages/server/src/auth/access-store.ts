import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely, NamedMigration } from '@tessera/db';
import type { ProjectRole } from '@tessera/api';

export interface UsersTable {
  id: string;
  name: string;
  display_name: string | null;
  /** argon2id (PHC string); null for users who sign in at the OpenID Connect issuer only. */
  password_hash: string | null;
  admin: number;
  source: 'local' | 'oidc';
  /** The issuer's `iss` and `sub` for OpenID Connect users. */
  oidc_issuer: string | null;
  oidc_subject: string | null;
  disabled: number;
  must_change_password: number;
  created_at: number;
  last_sign_in_at: number | null;
}

export interface MembershipsTable {
  project_id: string;
  user_id: string;
  role: ProjectRole;
  added_at: number;
  /**
   * Who granted it: 'manual' (set in Tessera) or 'oidc' (the issuer's claims at sign-in,
   * replaced at each sign-in: auth/oidc-store.ts). Column added by the OIDC migration.
   */
  source: 'manual' | 'oidc';
}

/** What a secret (session id, token, link code) is: only its SHA-256 is stored. */
/**
 * `app-ticket`: a single-use, one-minute ticket the platform gives a signed-in member to
 * open one application instance; `app-session`: what the instance's own host sets as its
 * cookie in exchange (ADR 16). Neither is accepted by the platform's API.
 */
export type CredentialKind = 'session' | 'api' | 'runtime' | 'run' | 'application' | 'link' | 'app-ticket' | 'app-session';

export interface CredentialsTable {
  id: string;
  /** hex SHA-256 of the secret: a leaked database gives no usable secret. */
  hash: string;
  kind: CredentialKind;
  user_id: string;
  name: string;
  /** The first characters of the secret, to recognise a token in a list. */
  prefix: string;
  /** A scoped credential (run, application): the one project it may act in, and the role it acts with. */
  project_id: string | null;
  role: ProjectRole | null;
  /** What a scoped credential belongs to: a run id, an application instance id. */
  subject: string | null;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export interface RateLimitsTable {
  key: string;
  window_start: number;
  count: number;
}

export interface AuditTable {
  id: number;
  at: number;
  actor: string | null;
  action: string;
  project: string | null;
  target: string | null;
  outcome: 'ok' | 'refused';
  address: string | null;
  details: string | null;
}

export interface AccessTables {
  users: UsersTable;
  memberships: MembershipsTable;
  credentials: CredentialsTable;
  rate_limits: RateLimitsTable;
  audit_log: AuditTable;
}

export const accessMigrations: NamedMigration[] = [
  {
    name: '2026-12-06-01-access',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('display_name', 'text')
        .addColumn('password_hash', 'text')
        .addColumn('admin', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('oidc_issuer', 'text')
        .addColumn('oidc_subject', 'text')
        .addColumn('disabled', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('must_change_password', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_sign_in_at', 'bigint')
        .execute();
      await db.schema.createIndex('users_oidc').on('users').columns(['oidc_issuer', 'oidc_subject']).unique().execute();
      await db.schema
        .createTable('memberships')
        .addColumn('project_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('role', 'text', (c) => c.notNull())
        .addColumn('added_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('memberships_pk', ['project_id', 'user_id'])
        .execute();
      await db.schema.createIndex('memberships_user').on('memberships').column('user_id').execute();
      await db.schema
        .createTable('credentials')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('hash', 'text', (c) => c.notNull().unique())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('project_id', 'text')
        .addColumn('role', 'text')
        .addColumn('subject', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint')
        .addColumn('last_used_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('credentials_user').on('credentials').columns(['user_id', 'kind']).execute();
      await db.schema.createIndex('credentials_subject').on('credentials').column('subject').execute();
      await db.schema
        .createTable('rate_limits')
        .addColumn('key', 'text', (c) => c.primaryKey())
        .addColumn('window_start', 'bigint', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('at', 'bigint', (c) => c.notNull())
        .addColumn('actor', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('project', 'text')
        .addColumn('target', 'text')
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('address', 'text')
        .addColumn('details', 'text')
        .execute();
      await db.schema.createIndex('audit_at').on('audit_log').column('at').execute();
    },
  },
];

/**
 * A new secret: a recognisable prefix and 32 random bytes (256 bits), base64url. Prefixes:
 * `tsr` API and runtime tokens, `tss` sessions, `tsl` sign-in links, `tsk` task tries'
 * tokens, `tsa` application instances' tokens, `tst` tickets to open an instance, `tsp`
 * instances' cookies.
 */
export function newSecret(prefix: 'tsr' | 'tss' | 'tsl' | 'tsk' | 'tsa' | 'tst' | 'tsp'): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

/** What is stored of a secret. SHA-256 suffices: the secret has 256 bits of entropy, so no slow hash is needed. */
export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export type User = UsersTable;
export type Credential = CredentialsTable;

/** Storage of access control: users, memberships, credentials (sessions, tokens, links), rate-limit counters, the audit log. */
export class AccessStore {
  readonly db: Kysely<AccessTables>;

  constructor(db: Kysely<AccessTables>) {
    this.db = db;
  }

  async userCount(): Promise<number> {
    const row = await this.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async userByName(name: string): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async userById(id: string): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async userByOidc(issuer: string, subject: string): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('oidc_issuer', '=', issuer).where('oidc_subject', '=', subject).executeTakeFirst();
  }

  async firstAdmin(): Promise<User | undefined> {
    return this.db.selectFrom('users').selectAll().where('admin', '=', 1).where('disabled', '=', 0).orderBy('created_at').executeTakeFirst();
  }

  /** Admins who may sign in (not disabled), other than `exceptId`: the last one is never demoted, disabled or deleted. */
  async activeAdminCount(exceptId?: string): Promise<number> {
    const row = await this.db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('admin', '=', 1)
      .where('disabled', '=', 0)
      .$if(exceptId !== undefined, (q) => q.where('id', '!=', exceptId!))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async listUsers(limit: number, offset: number): Promise<{ users: User[]; total: number }> {
    const users = await this.db.selectFrom('users').selectAll().orderBy('name').limit(limit).offset(offset).execute();
    return { users, total: await this.userCount() };
  }

  async insertUser(user: Omit<User, 'id' | 'created_at' | 'last_sign_in_at'>): Promise<User> {
    const row: User = { ...user, id: randomUUID(), created_at: Date.now(), last_sign_in_at: null };
    await this.db.insertInto('users').values(row).execute();
    return row;
  }

  async updateUser(id: string, change: Partial<Omit<User, 'id' | 'name' | 'created_at'>>): Promise<void> {
    if (Object.keys(change).length > 0) await this.db.updateTable('users').set(change).where('id', '=', id).execute();
  }

  async deleteUser(id: string): Promise<void> {
    await this.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('credentials').where('user_id', '=', id).execute();
      await tx.deleteFrom('memberships').where('user_id', '=', id).execute();
      await tx.deleteFrom('users').where('id', '=', id).execute();
    });
  }

  async membershipsOf(userId: string): Promise<MembershipsTable[]> {
    return this.db.selectFrom('memberships').selectAll().where('user_id', '=', userId).execute();
  }

  async membersOf(projectId: string): Promise<(MembershipsTable & { name: string; display_name: string | null })[]> {
    return this.db
      .selectFrom('memberships')
      .innerJoin('users', 'users.id', 'memberships.user_id')
      .select(['memberships.project_id', 'memberships.user_id', 'memberships.role', 'memberships.added_at', 'memberships.source', 'users.name', 'users.display_name'])
      .where('memberships.project_id', '=', projectId)
      .orderBy('users.name')
      .execute();
  }

  async setMembership(projectId: string, userId: string, role: ProjectRole): Promise<MembershipsTable> {
    const existing = await this.db.selectFrom('memberships').selectAll().where('project_id', '=', projectId).where('user_id', '=', userId).executeTakeFirst();
    // Set by hand: a sign-in's claims no longer remove it (they still decide for the projects they name).
    if (existing) {
      await this.db.updateTable('memberships').set({ role, source: 'manual' }).where('project_id', '=', projectId).where('user_id', '=', userId).execute();
      return { ...existing, role, source: 'manual' };
    }
    const row = { project_id: projectId, user_id: userId, role, added_at: Date.now(), source: 'manual' as const };
    await this.db.insertInto('memberships').values(row).execute();
    return row;
  }

  async removeMembership(projectId: string, userId: string): Promise<boolean> {
    const r = await this.db.deleteFrom('memberships').where('project_id', '=', projectId).where('user_id', '=', userId).executeTakeFirst();
    return Number(r.numDeletedRows) > 0;
  }

  /** Stores a new credential for `secret`; returns its row. */
  async insertCredential(secret: string, c: Omit<Credential, 'id' | 'hash' | 'prefix' | 'created_at' | 'last_used_at' | 'revoked_at'>): Promise<Credential> {
    const row: Credential = { ...c, id: randomUUID(), hash: secretHash(secret), prefix: secret.slice(0, 8), created_at: Date.now(), last_used_at: null, revoked_at: null };
    await this.db.insertInto('credentials').values(row).execute();
    return row;
  }

  /** The credential a secret stands for, if it is known, not revoked and not expired. */
  async credentialFor(secret: string, now = Date.now()): Promise<Credential | undefined> {
    const row = await this.db.selectFrom('credentials').selectAll().where('hash', '=', secretHash(secret)).executeTakeFirst();
    if (!row || row.revoked_at !== null || (row.expires_at !== null && Number(row.expires_at) <= now)) return undefined;
    return row;
  }

  /**
   * Uses a single-use credential of this kind: revoked in the same statement that finds it,
   * so two requests racing with one ticket cannot both pass. Undefined when unknown, used or expired.
   */
  async consumeCredential(secret: string, kind: CredentialKind, now = Date.now()): Promise<Credential | undefined> {
    const hash = secretHash(secret);
    const done = await this.db.updateTable('credentials').set({ revoked_at: now })
      .where('hash', '=', hash).where('kind', '=', kind).where('revoked_at', 'is', null).where('expires_at', '>', now)
      .executeTakeFirst();
    if (Number(done.numUpdatedRows) !== 1) return undefined;
    return this.db.selectFrom('credentials').selectAll().where('hash', '=', hash).executeTakeFirst();
  }

  async credentialById(id: string): Promise<Credential | undefined> {
    return this.db.selectFrom('credentials').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async touchCredential(id: string, at: number): Promise<void> {
    await this.db.updateTable('credentials').set({ last_used_at: at }).where('id', '=', id).execute();
  }

  async revokeCredential(id: string, at = Date.now()): Promise<void> {
    await this.db.updateTable('credentials').set({ revoked_at: at }).where('id', '=', id).where('revoked_at', 'is', null).execute();
  }

  /** Revokes a user's credentials of these kinds (sessions at a password change, everything at disabling). */
  async revokeUserCredentials(userId: string, kinds: CredentialKind[], exceptId?: string): Promise<void> {
    let q = this.db.updateTable('credentials').set({ revoked_at: Date.now() }).where('user_id', '=', userId).where('kind', 'in', kinds).where('revoked_at', 'is', null);
    if (exceptId) q = q.where('id', '!=', exceptId);
    await q.execute();
  }

  /** Revokes the scoped credentials of a run or an instance (when it ends). */
  async revokeSubject(subject: string): Promise<void> {
    await this.db.updateTable('credentials').set({ revoked_at: Date.now() }).where('subject', '=', subject).where('revoked_at', 'is', null).execute();
  }

  /** Revokes every credential of a kind except those with these names (the tries that still run after a restart). */
  async revokeKindExcept(kind: CredentialKind, keepNames: ReadonlySet<string>): Promise<void> {
    const live = await this.db.selectFrom('credentials').select(['id', 'name']).where('kind', '=', kind).where('revoked_at', 'is', null).execute();
    const ids = live.filter((c) => !keepNames.has(c.name)).map((c) => c.id);
    // SQLite binds at most 32,766 values per statement.
    for (let i = 0; i < ids.length; i += 10_000) {
      await this.db.updateTable('credentials').set({ revoked_at: Date.now() }).where('id', 'in', ids.slice(i, i + 10_000)).execute();
    }
  }

  async revokeKind(kind: CredentialKind): Promise<void> {
    await this.db.updateTable('credentials').set({ revoked_at: Date.now() }).where('kind', '=', kind).where('revoked_at', 'is', null).execute();
  }

  async listTokens(userId: string | undefined, limit: number, offset: number): Promise<{ tokens: (Credential & { user_name: string })[]; total: number }> {
    const base = this.db
      .selectFrom('credentials')
      .innerJoin('users', 'users.id', 'credentials.user_id')
      .where('credentials.kind', '=', 'api')
      .where('credentials.revoked_at', 'is', null)
      .$if(userId !== undefined, (q) => q.where('credentials.user_id', '=', userId!));
    const tokens = await base.selectAll('credentials').select('users.name as user_name').orderBy('credentials.created_at', 'desc').limit(limit).offset(offset).execute();
    const { n } = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return { tokens, total: Number(n) };
  }

  /** Drops expired and long-revoked credentials (kept a day after revocation, for the audit trail of last use). */
  async sweepCredentials(now = Date.now()): Promise<void> {
    await this.db.deleteFrom('credentials').where('expires_at', '<', now - 86_400_000).execute();
    await this.db.deleteFrom('credentials').where('revoked_at', '<', now - 86_400_000).execute();
  }

  /**
   * Counts one more event under `key` in a fixed window; answers the count in the current
   * window and when it ends. Kept in the database, so the counters survive a restart and
   * are shared by several servers on one database.
   */
  async countEvent(key: string, windowMs: number, now = Date.now()): Promise<{ count: number; resetAt: number }> {
    return this.db.transaction().execute(async (tx) => {
      const row = await tx.selectFrom('rate_limits').selectAll().where('key', '=', key).executeTakeFirst();
      if (!row || Number(row.window_start) + windowMs <= now) {
        if (row) await tx.updateTable('rate_limits').set({ window_start: now, count: 1 }).where('key', '=', key).execute();
        else await tx.insertInto('rate_limits').values({ key, window_start: now, count: 1 }).execute();
        return { count: 1, resetAt: now + windowMs };
      }
      await tx.updateTable('rate_limits').set({ count: row.count + 1 }).where('key', '=', key).execute();
      return { count: row.count + 1, resetAt: Number(row.window_start) + windowMs };
    });
  }

  /** The count under `key` in its current window (0 when none). */
  async eventCount(key: string, windowMs: number, now = Date.now()): Promise<{ count: number; resetAt: number }> {
    const row = await this.db.selectFrom('rate_limits').selectAll().where('key', '=', key).executeTakeFirst();
    if (!row || Number(row.window_start) + windowMs <= now) return { count: 0, resetAt: now };
    return { count: row.count, resetAt: Number(row.window_start) + windowMs };
  }

  async clearEvents(key: string): Promise<void> {
    await this.db.deleteFrom('rate_limits').where('key', '=', key).execute();
  }

  async appendAudit(entry: Omit<AuditTable, 'id'>): Promise<void> {
    await this.db.insertInto('audit_log').values(entry as AuditTable).execute();
  }

  async listAudit(filter: { actor?: string; action?: string; project?: string; limit: number; offset: number }): Promise<{ entries: AuditTable[]; total: number }> {
    const base = this.db
      .selectFrom('audit_log')
      .$if(filter.actor !== undefined, (q) => q.where('actor', '=', filter.actor!))
      .$if(filter.action !== undefined, (q) => q.where('action', '=', filter.action!))
      .$if(filter.project !== undefined, (q) => q.where('project', '=', filter.project!));
    const entries = await base.selectAll().orderBy('id', 'desc').limit(filter.limit).offset(filter.offset).execute();
    const { n } = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return { entries, total: Number(n) };
  }
}

import { domainView, type Kysely } from '@tessera/db';
import type { ServerConfig } from '../config.ts';
import type { Domain, DomainLog } from '../domain.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { AccessControl } from './access-control.ts';
import { accessMigrations, AccessStore, type AccessTables } from './access-store.ts';
import { AuditLog } from './audit-log.ts';
import { authRouteHandlers } from './auth-routes.ts';
import { Identity } from './identity.ts';
import { OidcSignIn } from './oidc.ts';
import { oidcMigrations, OidcStore, type OidcTables } from './oidc-store.ts';
import { ScopedCredentials } from './scoped-credentials.ts';

export interface AccessDomain extends Domain {
  readonly store: AccessStore;
  readonly control: AccessControl;
  readonly identity: Identity;
  readonly audit: AuditLog;
  /** Signing in at the OpenID Connect issuer, when TESSERA_OIDC_ISSUER is set. */
  readonly oidc: OidcSignIn | undefined;
  /** The scoped tokens of task tries and application instances, and the rights of runs' built-in operators. */
  readonly scoped: ScopedCredentials;
  /** The admin created at this start (the first), if any: the console says where its password is. */
  readonly createdAdmin: () => boolean;
}

/**
 * The access domain: users, project memberships, sessions and tokens, the audit log,
 * and the one mechanism that enforces every route's access rule (access-control.ts).
 */
export function createAccessDomain(deps: {
  config: ServerConfig;
  db: Kysely<object>;
  projects: ProjectStore;
  log: DomainLog;
  secureCookies: () => boolean;
  /** The server's public URL (known once listening): the OpenID Connect redirect URI is under it. */
  publicUrl: () => string;
}): AccessDomain {
  const store = new AccessStore(domainView<AccessTables>(deps.db));
  const control = new AccessControl({ config: deps.config, store, projects: deps.projects });
  const audit = new AuditLog(store, deps.log);
  const identity = new Identity({ store, config: deps.config, audit, log: deps.log });
  const oidcStore = new OidcStore(domainView<OidcTables>(deps.db));
  const oidc = deps.config.oidc
    ? new OidcSignIn({
        config: deps.config.oidc, store, oidcStore, identity, audit, projects: deps.projects, access: control,
        publicUrl: deps.publicUrl, secureCookies: deps.secureCookies, log: deps.log,
      })
    : undefined;
  const scoped = new ScopedCredentials({ store, control });
  let created = false;
  let sweep: NodeJS.Timeout | undefined;
  return {
    name: 'access',
    migrations: [...accessMigrations, ...oidcMigrations],
    store,
    control,
    identity,
    audit,
    oidc,
    scoped,
    createdAdmin: () => created,
    start: async () => {
      created = (await identity.ensureInitialAdmin()) !== undefined;
      await store.sweepCredentials();
      await oidcStore.sweep();
      sweep = setInterval(() => void Promise.all([store.sweepCredentials(), oidcStore.sweep()]).catch((err: Error) => deps.log.warn(`sweeping expired credentials failed: ${err.message}`)), 3_600_000);
      sweep.unref();
    },
    routes: (app) => authRouteHandlers(app, { config: deps.config, store, access: control, identity, audit, projects: deps.projects, secureCookies: deps.secureCookies, oidc }),
    close: async () => {
      if (sweep) clearInterval(sweep);
    },
  };
}

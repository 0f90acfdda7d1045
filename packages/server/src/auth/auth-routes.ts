import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authRoutes as routes, type ApiToken as ApiTokenJson, type Me, type Member as MemberJson, type User as UserJson } from '@tessera/api';
import { TesseraError } from '@tessera/model';
import type { ServerConfig } from '../config.ts';
import { iso } from '../http/lists.ts';
import { serve } from '../http/serve-route.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { AccessControl, clearSessionCookie, setSessionCookie } from './access-control.ts';
import { newSecret, type AccessStore, type Credential, type User } from './access-store.ts';
import type { AuditLog } from './audit-log.ts';
import { generatePassword, hashPassword, type Identity } from './identity.ts';
import { isAdmin, roleIn, type Principal } from './principal.ts';

export interface AuthRouteDeps {
  config: ServerConfig;
  store: AccessStore;
  access: AccessControl;
  identity: Identity;
  audit: AuditLog;
  projects: ProjectStore;
  /** True when cookies must be Secure (served over TLS, or behind an https public URL). */
  secureCookies: () => boolean;
  /** The OpenID Connect sign-in, when configured (oidc.ts). */
  oidc?: { name: string; start: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>; callback: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> };
}

/** The name of a session the console's sign-in link started (its credential's `name`). */
const LINK_SESSION = 'console link';

export function userJson(u: User): UserJson {
  return {
    name: u.name, display_name: u.display_name, admin: u.admin === 1, source: u.source, disabled: u.disabled === 1,
    must_change_password: u.must_change_password === 1, created_at: iso(u.created_at)!, last_sign_in_at: iso(u.last_sign_in_at),
  };
}

function tokenJson(t: Credential & { user_name: string }): ApiTokenJson {
  return { id: t.id, name: t.name, user: t.user_name, prefix: t.prefix, created_at: iso(t.created_at)!, expires_at: iso(t.expires_at), last_used_at: iso(t.last_used_at) };
}

/** Routes of access control: signing in and out, who am I, passwords, API tokens, users, members, the audit log. */
export async function authRouteHandlers(app: FastifyInstance, deps: AuthRouteDeps): Promise<void> {
  const { store, access, identity, projects } = deps;

  const meOf = async (principal: Principal): Promise<Me> => {
    const user = principal.via === 'auth-off' ? undefined : await store.userById(principal.user.id);
    const all = await projects.list();
    // An admin (and the one user of TESSERA_AUTH=off) is a principal investigator everywhere; a scoped token (a run's, an instance's) has its one project.
    const memberships = all.flatMap((p) => {
      const role = roleIn(principal, p.id);
      return role ? [{ project: p.name, role }] : [];
    });
    return {
      user: user
        ? userJson(user)
        : { name: principal.user.name, display_name: null, admin: principal.user.admin, source: 'local', disabled: false, must_change_password: false, created_at: new Date(0).toISOString(), last_sign_in_at: null },
      projects: memberships,
      via: principal.via,
      auth: deps.config.auth,
    };
  };

  const signedIn = async (reply: FastifyReply, user: User, address: string, how: string): Promise<Me> => {
    const { secret, maxAgeSeconds } = await identity.startSession(user, address, how);
    setSessionCookie(reply, secret, maxAgeSeconds, deps.secureCookies());
    const credential = (await store.credentialFor(secret))!;
    return meOf((await access.principalOf(credential))!);
  };

  serve(app, routes.providers, async () => ({
    local: true,
    oidc: deps.oidc ? { name: deps.oidc.name, start_url: '/api/auth/oidc/start' } : null,
    auth: deps.config.auth,
  }));

  serve(app, routes.signIn, async (request, reply) => {
    try {
      const user = await identity.checkPassword(request.body.username, request.body.password, request.ip);
      return await signedIn(reply, user, request.ip, 'password');
    } catch (err) {
      const after = (err as { retryAfterSeconds?: number }).retryAfterSeconds;
      if (after) reply.header('retry-after', String(after));
      throw err;
    }
  });

  serve(app, routes.signInLink, async (request, reply) => {
    const user = await identity.redeemLink(request.body.code, request.ip);
    return signedIn(reply, user, request.ip, LINK_SESSION);
  });

  serve(app, routes.signOut, async (request, reply) => {
    const principal = request.access.principal;
    if (principal?.via === 'session' && principal.credentialId) {
      await store.revokeCredential(principal.credentialId);
      // Signing out of Tessera signs out of the application instances opened from it too (their cookies, app-gate.ts).
      await store.revokeUserCredentials(principal.user.id, ['app-session']);
      access.invalidate();
      await deps.audit.append({ actor: principal.user.name, action: 'sign-out', outcome: 'ok', address: request.ip });
    }
    clearSessionCookie(reply, deps.secureCookies());
    return reply.status(204).send();
  });

  serve(app, routes.me, async (request) => meOf(request.access.principal!));

  serve(app, routes.changePassword, async (request, reply) => {
    const principal = request.access.principal!;
    const user = await store.userById(principal.user.id);
    if (!user || user.source !== 'local' || !user.password_hash) {
      throw new TesseraError('TESSERA_FORBIDDEN', principal.via === 'auth-off' ? 'with TESSERA_AUTH=off there are no passwords' : 'this user signs in at the OpenID Connect issuer: change the password there');
    }
    const current = request.body.current_password;
    if (current === undefined) {
      // Who opened the console's single-use link chose no password yet and never saw the
      // generated one: that session, and only while the password must change, sets the first one.
      const session = principal.credentialId ? await store.credentialById(principal.credentialId) : undefined;
      if (!(session?.kind === 'session' && session.name === LINK_SESSION && user.must_change_password === 1)) {
        throw new TesseraError('TESSERA_INVALID_REQUEST', 'current_password is required', { details: [{ where: 'current_password', message: 'is required' }] });
      }
    } else {
      // The current password is checked with the sign-in's rate limits, so this is no way around them.
      await identity.checkPassword(user.name, current, request.ip);
    }
    if (request.body.new_password === current) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', 'the new password is the current one: choose another', { details: [{ where: 'new_password', message: 'must differ from current_password' }] });
    }
    await store.updateUser(user.id, { password_hash: await hashPassword(request.body.new_password), must_change_password: 0 });
    // Other sessions end: whoever knew the old password is signed out.
    await store.revokeUserCredentials(user.id, ['session'], principal.credentialId);
    access.invalidate();
    if (user.admin) identity.forgetInitialPassword();
    return reply.status(204).send();
  });

  if (deps.oidc) {
    const oidc = deps.oidc;
    serve(app, routes.oidcStart, async (request, reply) => oidc.start(request, reply));
    serve(app, routes.oidcCallback, async (request, reply) => oidc.callback(request, reply));
  } else {
    const notConfigured = async (): Promise<never> => {
      throw new TesseraError('TESSERA_NOT_FOUND', 'OpenID Connect sign-in is not configured on this server: an admin sets TESSERA_OIDC_ISSUER, TESSERA_OIDC_CLIENT_ID and TESSERA_OIDC_CLIENT_SECRET (docs/guides/operations.md)');
    };
    serve(app, routes.oidcStart, notConfigured);
    serve(app, routes.oidcCallback, notConfigured);
  }

  serve(app, routes.listTokens, async (request) => {
    const principal = request.access.principal!;
    if (request.query.all && !isAdmin(principal)) throw new TesseraError('TESSERA_FORBIDDEN', 'only a platform admin may list everyone\'s tokens (`all=true`)');
    const limit = request.query.limit ?? 100;
    const offset = request.query.offset ?? 0;
    const { tokens, total } = await store.listTokens(request.query.all ? undefined : principal.user.id, limit, offset);
    return { items: tokens.map(tokenJson), total, limit, offset };
  });

  serve(app, routes.createToken, async (request, reply) => {
    const principal = request.access.principal!;
    if (principal.via === 'auth-off') throw new TesseraError('TESSERA_FORBIDDEN', 'with TESSERA_AUTH=off no token is needed, and there is no user to give one to');
    // A scoped token cannot mint an unscoped one.
    if (principal.scope) throw new TesseraError('TESSERA_FORBIDDEN', `a ${principal.via}'s scoped token cannot create API tokens`);
    const token = newSecret('tsr');
    const days = request.body.expires_in_days;
    const row = await store.insertCredential(token, {
      kind: 'api', user_id: principal.user.id, name: request.body.name, project_id: null, role: null, subject: null, expires_at: days ? Date.now() + days * 86_400_000 : null,
    });
    return reply.status(201).send({ ...tokenJson({ ...row, user_name: principal.user.name }), token });
  });

  serve(app, routes.revokeToken, async (request, reply) => {
    const principal = request.access.principal!;
    const row = await store.credentialById(request.params.id);
    // Someone else's token is not found, as if it did not exist.
    if (!row || row.kind !== 'api' || row.revoked_at !== null || (row.user_id !== principal.user.id && !isAdmin(principal))) {
      throw new TesseraError('TESSERA_NOT_FOUND', `token "${request.params.id}" does not exist`);
    }
    await store.revokeCredential(row.id);
    access.invalidate();
    return reply.status(204).send();
  });

  const requireUser = async (name: string): Promise<User> => {
    const u = await store.userByName(name);
    if (!u) throw new TesseraError('TESSERA_NOT_FOUND', `user "${name}" does not exist; create it with \`tessera users create ${name}\` or POST /api/users`);
    return u;
  };

  serve(app, routes.listUsers, async (request) => {
    const limit = request.query.limit ?? 1000;
    const offset = request.query.offset ?? 0;
    const { users, total } = await store.listUsers(limit, offset);
    return { items: users.map(userJson), total, limit, offset };
  });

  serve(app, routes.createUser, async (request, reply) => {
    const b = request.body;
    if (await store.userByName(b.name)) throw new TesseraError('TESSERA_CONFLICT', `user "${b.name}" already exists`);
    const password = b.password ?? generatePassword();
    const user = await store.insertUser({
      name: b.name, display_name: b.display_name ?? null, password_hash: await hashPassword(password), admin: b.admin ? 1 : 0, source: 'local',
      oidc_issuer: null, oidc_subject: null, disabled: 0, must_change_password: 1,
    });
    return reply.status(201).send({ user: userJson(user), password: b.password ? null : password });
  });

  serve(app, routes.updateUser, async (request) => {
    const principal = request.access.principal!;
    const user = await requireUser(request.params.name);
    const b = request.body;
    const removesAdmin = (b.admin === false || b.disabled === true) && user.admin === 1;
    if (removesAdmin) {
      if ((await store.activeAdminCount()) <= 1) throw new TesseraError('TESSERA_CONFLICT', `"${user.name}" is the last admin: make another user an admin first`);
      if (user.id === principal.user.id && b.disabled) throw new TesseraError('TESSERA_CONFLICT', 'you cannot disable yourself');
    }
    if (b.password !== undefined && user.source !== 'local') throw new TesseraError('TESSERA_CONFLICT', `"${user.name}" signs in at the OpenID Connect issuer: their password is set there`);
    await store.updateUser(user.id, {
      ...(b.display_name !== undefined ? { display_name: b.display_name } : {}),
      ...(b.admin !== undefined ? { admin: b.admin ? 1 : 0 } : {}),
      ...(b.disabled !== undefined ? { disabled: b.disabled ? 1 : 0 } : {}),
      ...(b.password !== undefined ? { password_hash: await hashPassword(b.password), must_change_password: 1 } : {}),
    });
    if (b.disabled || b.password !== undefined) await store.revokeUserCredentials(user.id, b.disabled ? ['session', 'api', 'run', 'application', 'app-session'] : ['session']);
    access.invalidate();
    return userJson((await store.userById(user.id))!);
  });

  serve(app, routes.deleteUser, async (request, reply) => {
    const user = await requireUser(request.params.name);
    if (user.id === request.access.principal!.user.id) throw new TesseraError('TESSERA_CONFLICT', 'you cannot delete yourself: another admin can');
    if (user.admin === 1 && (await store.activeAdminCount()) <= 1) {
      throw new TesseraError('TESSERA_CONFLICT', `"${user.name}" is the last admin: make another user an admin first`);
    }
    await store.deleteUser(user.id);
    access.invalidate();
    return reply.status(204).send();
  });

  const memberJson = (m: { role: MemberJson['role']; added_at: number; name: string; display_name: string | null }): MemberJson => ({
    user: m.name, display_name: m.display_name, role: m.role, added_at: iso(m.added_at)!,
  });

  serve(app, routes.listMembers, async (request) => {
    const members = (await store.membersOf(request.access.project!.id)).map(memberJson);
    return { items: members, total: members.length, limit: members.length, offset: 0 };
  });

  serve(app, routes.setMember, async (request) => {
    const project = request.access.project!;
    const user = await requireUser(request.params.user);
    const row = await store.setMembership(project.id, user.id, request.body.role);
    access.invalidate();
    return memberJson({ ...row, name: user.name, display_name: user.display_name });
  });

  serve(app, routes.removeMember, async (request, reply) => {
    const project = request.access.project!;
    const user = await requireUser(request.params.user);
    if (!(await store.removeMembership(project.id, user.id))) throw new TesseraError('TESSERA_NOT_FOUND', `"${user.name}" is not a member of project "${project.name}"`);
    access.invalidate();
    return reply.status(204).send();
  });

  serve(app, routes.audit, async (request) => {
    const q = request.query;
    const limit = q.limit ?? 100;
    const offset = q.offset ?? 0;
    const { entries, total } = await store.listAudit({ actor: q.actor, action: q.action, project: q.project, limit, offset });
    return {
      items: entries.map((e) => ({ ...e, at: iso(e.at)!, details: e.details ? (JSON.parse(e.details) as Record<string, unknown>) : null })),
      total, limit, offset,
    };
  });
}

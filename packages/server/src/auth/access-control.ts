import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ProjectRole, ProjectScope, RouteContract } from '@tessera/api';
import { TesseraError } from '@tessera/model';
import type { ServerConfig } from '../config.ts';
import type { ContractConfig } from '../http/serve-route.ts';
import type { Project, ProjectStore } from '../projects/project-store.ts';
import { DEFAULT_PROJECT } from '../projects/project-store.ts';
import type { AccessStore, Credential } from './access-store.ts';
import { isAdmin, roleIn, roleSatisfies, visibleProjects, type Principal } from './principal.ts';

/** The session cookie: HttpOnly, SameSite=Lax, Secure under TLS. */
export const SESSION_COOKIE = 'tessera_session';
/**
 * The session cookie over https: a `__Host-` cookie cannot be set with a Domain or another
 * Path, so no page of another host under the same parent domain (an application instance
 * on its own host name) can set one that the browser sends here, nor shadow the real one.
 */
export const SECURE_SESSION_COOKIE = '__Host-tessera_session';

/** What access control found out about a request, for handlers that need it (lists of every visible project, the audit log). */
export interface RequestAccess {
  principal: Principal | undefined;
  /** The project the route acts in, once checked (member routes). */
  project: Project | undefined;
  /** For lists without a project: the projects the caller may see ('all' for an admin). */
  visible: 'all' | ReadonlySet<string> | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    access: RequestAccess;
  }
}

/** Reads one cookie from a Cookie header (RFC 6265 syntax; a quoted value is unquoted). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}

/** The credentials the API accepts as a Bearer token. */
const BEARER_KINDS = new Set<Credential['kind']>(['api', 'runtime', 'run', 'application']);

/** The secret a request carries: `Authorization: Bearer <token>`, else the session cookie. */
export function presentedSecret(headers: IncomingHttpHeaders, secure = false): { secret: string; from: 'bearer' | 'cookie' } | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer[ ]+([A-Za-z0-9._~+/=-]{1,512})\s*$/i.exec(auth);
    if (m) return { secret: m[1]!, from: 'bearer' };
  }
  // Over https only the __Host- cookie counts: a plain one may have been set by another host of the domain.
  const cookie = secure ? readCookie(headers.cookie, SECURE_SESSION_COOKIE) : readCookie(headers.cookie, SESSION_COOKIE);
  if (cookie && cookie.length <= 512) return { secret: cookie, from: 'cookie' };
  return undefined;
}

/**
 * Who a run or an application instance acts as when no user started it (an arrival
 * trigger, a run from before starters were recorded, or one started with access control
 * off): not a user; a scientist of its own project only.
 */
export const NO_USER = { id: 'system:no-user', name: 'arrival trigger' } as const;

function noUserPrincipal(via: Principal['via'], credentialId: string | undefined, scope: NonNullable<Principal['scope']>): Principal {
  return {
    user: { id: NO_USER.id, name: NO_USER.name, admin: false, mustChangePassword: false },
    via,
    credentialId,
    roles: new Map([[scope.projectId, 'scientist']]),
    scope: { ...scope, role: 'scientist' },
  };
}

/** The user a scoped credential stands for: a starter's id, or {@link NO_USER} for none (or for `local`, the one user of a server with access control off). */
export function scopedUserId(userId: string | null): string {
  return userId === null || userId === 'local' ? NO_USER.id : userId;
}

/** A recorded role as a project role; anything else (none recorded) is the least, scientist. */
export function scopedRole(role: string | null): ProjectRole {
  return role === 'principal-investigator' ? 'principal-investigator' : 'scientist';
}

/** Operations a session whose password must change may still call. */
const WHILE_PASSWORD_MUST_CHANGE = new Set(['me', 'changePassword', 'signOut', 'authProviders']);

/** Resolves the project of a resource a path names (a run, a job), or undefined when there is none. */
export type ResourceResolver = (params: Record<string, string>) => Promise<{ projectId: string; what: string } | { projectId: undefined; what: string }>;

const PRINCIPAL_CACHE_MS = 1000;

/**
 * Access control, in one place: every API route's contract says who may call it
 * (`access`) and in which project it acts (`project`); these hooks authenticate the
 * request, find the project and check the caller's role there before any handler runs.
 * Handlers never check rights themselves; lists without a project read
 * `request.access.visible`.
 *
 * A caller who is not a member of the project (or not signed in for a resource of one)
 * gets 404, the same answer as for a project that does not exist, so project names do
 * not leak. A member whose role is too low gets 403 naming the role needed.
 */
export class AccessControl {
  readonly #config: ServerConfig;
  readonly #store: AccessStore;
  readonly #projects: ProjectStore;
  readonly #resolvers = new Map<string, ResourceResolver>();
  /** Principals by secret hash for a second: a burst of requests (a viewer's frames) costs one lookup. */
  readonly #cache = new Map<string, { principal: Principal | undefined; until: number }>();
  readonly #auth: boolean;

  constructor(deps: { config: ServerConfig; store: AccessStore; projects: ProjectStore }) {
    this.#config = deps.config;
    this.#store = deps.store;
    this.#projects = deps.projects;
    this.#auth = deps.config.auth === 'on';
    // As the address users open says: TESSERA_PUBLIC_URL's scheme, else https when Tessera serves TLS itself.
    this.#secure = deps.config.publicUrl ? deps.config.publicUrl.startsWith('https:') : deps.config.tls !== undefined;
  }

  /** Whether sessions are `__Host-` cookies: over https (TLS here, or TESSERA_PUBLIC_URL https behind a proxy). */
  readonly #secure: boolean;

  get secureSessions(): boolean {
    return this.#secure;
  }

  get enabled(): boolean {
    return this.#auth;
  }

  /** A domain says how to find the project of a resource its routes name (`project: { in: 'resource', resource }`). */
  registerResource(resource: string, resolve: ResourceResolver): void {
    this.#resolvers.set(resource, resolve);
  }

  /** Forgets cached principals: after a change of users, memberships or credentials. */
  invalidate(): void {
    this.#cache.clear();
    for (const listener of this.#invalidated) listener();
  }

  readonly #invalidated: (() => void)[] = [];

  /**
   * Called at every `invalidate`: others who hold what access control decided (the
   * application gate's grants, open event streams) forget it or check again. Answers the
   * function that stops calling it.
   */
  onInvalidate(listener: () => void): () => void {
    this.#invalidated.push(listener);
    return () => {
      const i = this.#invalidated.indexOf(listener);
      if (i >= 0) this.#invalidated.splice(i, 1);
    };
  }

  /** The one principal of a server with TESSERA_AUTH=off: an admin. */
  static readonly LOCAL: Principal = {
    user: { id: 'local', name: 'local', admin: true, mustChangePassword: false },
    via: 'auth-off',
    credentialId: undefined,
    roles: new Map(),
    scope: undefined,
  };

  /** Who sent the request: from its bearer token or session cookie; undefined when anonymous or unknown. */
  async authenticate(headers: IncomingHttpHeaders): Promise<Principal | undefined> {
    if (!this.#auth) return AccessControl.LOCAL;
    const presented = presentedSecret(headers, this.#secure);
    if (!presented) return undefined;
    const now = Date.now();
    const cached = this.#cache.get(presented.secret);
    if (cached && cached.until > now) return cached.principal;
    const credential = await this.#store.credentialFor(presented.secret, now);
    // A session id is only taken from the cookie, a token only from the header: a token pasted into a cookie is not a session.
    // Links, tickets and instances' cookies are never tokens of the API.
    const fits = credential && (credential.kind === 'session' ? presented.from === 'cookie' : presented.from === 'bearer' && BEARER_KINDS.has(credential.kind));
    const principal = fits ? await this.principalOf(credential) : undefined;
    if (credential && principal && (credential.last_used_at === null || now - Number(credential.last_used_at) > 60_000)) {
      await this.#store.touchCredential(credential.id, now);
    }
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(presented.secret, { principal, until: now + PRINCIPAL_CACHE_MS });
    return principal;
  }

  /** The principal a valid credential stands for (undefined when its user is gone or disabled). */
  async principalOf(credential: Credential): Promise<Principal | undefined> {
    const via = credential.kind === 'session' ? 'session' : credential.kind === 'run' ? 'run' : credential.kind === 'application' ? 'application' : 'token';
    const scope = credential.project_id && credential.role ? { projectId: credential.project_id, role: credential.role, subject: credential.subject ?? '' } : undefined;
    // A run or an instance no user started (an arrival trigger) acts as a scientist of its project, and as nobody else.
    if (credential.user_id === NO_USER.id && scope) return noUserPrincipal(via, credential.id, scope);
    const user = await this.#store.userById(credential.user_id);
    if (!user || user.disabled) return undefined;
    const roles = new Map((await this.#store.membershipsOf(user.id)).map((m) => [m.project_id, m.role] as const));
    return {
      user: { id: user.id, name: user.name, admin: user.admin === 1, mustChangePassword: user.must_change_password === 1 },
      via,
      credentialId: credential.id,
      roles,
      scope,
    };
  }

  /**
   * Who a run (or an application instance) acts as: its starter, in its project, with at
   * most the role they had when they started it (and never more than they have now), as
   * its scoped token does. With access control off, the one local admin. Undefined when
   * its starter is gone or disabled.
   */
  async actingPrincipal(a: { via: 'run' | 'application'; projectId: string; userId: string | null; role: string | null; subject: string }): Promise<Principal | undefined> {
    if (!this.#auth) return AccessControl.LOCAL;
    const scope = { projectId: a.projectId, role: scopedRole(a.role), subject: a.subject };
    const userId = scopedUserId(a.userId);
    if (userId === NO_USER.id) return noUserPrincipal(a.via, undefined, scope);
    return this.principalOf({ user_id: userId, kind: a.via, id: '', project_id: scope.projectId, role: scope.role, subject: a.subject } as Credential);
  }

  /** Declares the hooks on the Fastify instance; call before any route is declared. */
  install(app: FastifyInstance): void {
    app.decorateRequest('access', null as unknown as RequestAccess);
    // Authentication and route-level rules before the body is read: an anonymous client cannot make the server read an upload.
    app.addHook('onRequest', async (request) => {
      request.access = { principal: undefined, project: undefined, visible: undefined };
      const contract = (request.routeOptions.config as ContractConfig | undefined)?.contract;
      if (!contract) return;
      const principal = await this.authenticate(request.headers);
      request.access.principal = principal;
      if (contract.access.who === 'public') return;
      if (!principal) {
        throw new TesseraError('TESSERA_UNAUTHENTICATED', 'sign in first: this needs a signed-in user (the UI\'s sign-in page, `tessera login`, or `Authorization: Bearer <token>` from `tessera token create`)');
      }
      if (principal.via === 'session' && principal.user.mustChangePassword && !WHILE_PASSWORD_MUST_CHANGE.has(contract.operationId)) {
        throw new TesseraError('TESSERA_PASSWORD_CHANGE_REQUIRED', 'your password was set by someone else: choose your own first (the sign-in page asks for it, or POST /api/auth/password)');
      }
      if (contract.access.who === 'admin' && !isAdmin(principal)) {
        throw new TesseraError('TESSERA_FORBIDDEN', `only a platform admin may ${contract.summary.charAt(0).toLowerCase()}${contract.summary.slice(1)}; ask an admin of this server`);
      }
    });
    // Project rules once the body is parsed (a project named in a JSON body) but before it is
    // validated: a caller outside the project learns nothing from a 400 about its body.
    app.addHook('preValidation', async (request) => {
      const contract = (request.routeOptions.config as ContractConfig | undefined)?.contract;
      if (!contract || contract.access.who !== 'member') return;
      await this.checkMember(request, contract);
    });
  }

  async checkMember(request: FastifyRequest, contract: RouteContract): Promise<void> {
    const principal = request.access.principal!;
    const needed = contract.access.who === 'member' ? contract.access.role : 'scientist';
    const target = await this.#projectOf(request, contract.project);
    if (target === 'all') {
      request.access.visible = visibleProjects(principal);
      return;
    }
    // A project named in the request is looked up once, by name; a resource's (a run's) by its id.
    const project = target.project ?? (target.projectId ? await this.#projects.findById(target.projectId) : undefined);
    const role = project ? roleIn(principal, project.id) : undefined;
    if (!project || !role) {
      // The same words whether it does not exist or the caller is not in it: names do not leak.
      const hint = target.what.startsWith('project ') ? `, or you are not a member of it (an admin creates projects: \`tessera projects create ${target.what.slice(9, -1)}\`; a principal investigator adds members)` : '';
      throw new TesseraError('TESSERA_NOT_FOUND', `${target.what} does not exist${hint}`);
    }
    if (!roleSatisfies(role, needed)) {
      const asRun = principal.scope ? ` (this ${principal.via}'s token acts with its starter's role)` : '';
      throw new TesseraError(
        'TESSERA_FORBIDDEN',
        `your role in project "${project.name}" is ${role}${asRun}; to ${contract.summary.charAt(0).toLowerCase()}${contract.summary.slice(1)} takes a principal investigator of the project: ask one of them`,
      );
    }
    request.access.project = project;
  }

  async #projectOf(request: FastifyRequest, scope: ProjectScope): Promise<{ project?: Project; projectId: string | undefined; what: string } | 'all'> {
    const byName = async (name: unknown): Promise<{ project?: Project; projectId: string | undefined; what: string }> => {
      const n = typeof name === 'string' ? name : DEFAULT_PROJECT;
      const project = await this.#projects.findByName(n);
      return { project, projectId: project?.id, what: `project "${n}"` };
    };
    switch (scope.in) {
      case 'path':
        return byName((request.params as Record<string, unknown>)[scope.name]);
      case 'query': {
        const value = (request.query as Record<string, unknown>)[scope.name];
        if (value === undefined && scope.absent === 'all') return 'all';
        return byName(value);
      }
      case 'body': {
        const body = request.body;
        return byName(body && typeof body === 'object' ? (body as Record<string, unknown>)[scope.name] : undefined);
      }
      case 'default':
        return byName(DEFAULT_PROJECT);
      case 'resource': {
        const resolve = this.#resolvers.get(scope.resource);
        if (!resolve) throw new Error(`no resolver for resource "${scope.resource}": its domain must call registerResource`);
        return resolve(request.params as Record<string, string>);
      }
      case 'none':
        throw new Error(`${request.routeOptions.method} ${request.routeOptions.url}: a member route needs a project scope`);
    }
  }
}

/** The visible-projects filter of a list route as a list of ids, or undefined for every project. */
export function visibleIds(request: FastifyRequest): string[] | undefined {
  const v = request.access?.visible;
  return v === undefined || v === 'all' ? undefined : [...v];
}

/** The same filter as project names (instances and events carry names), or undefined for every project. */
export async function visibleNames(request: FastifyRequest, projects: ProjectStore): Promise<ReadonlySet<string> | undefined> {
  const ids = visibleIds(request);
  if (ids === undefined) return undefined;
  const found = await Promise.all(ids.map((id) => projects.findById(id)));
  return new Set(found.flatMap((p) => (p ? [p.name] : [])));
}

/** The reply helper for a session cookie. */
export function setSessionCookie(reply: FastifyReply, secret: string, maxAgeSeconds: number, secure: boolean): void {
  reply.header('set-cookie', `${secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE}=${secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`);
}

export function clearSessionCookie(reply: FastifyReply, secure: boolean): void {
  reply.header('set-cookie', `${secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure ? '; Secure' : ''}`);
}

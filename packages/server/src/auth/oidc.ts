import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import * as client from 'openid-client';
import { TesseraError } from '@tessera/model';
import type { OidcConfig } from '../config.ts';
import type { DomainLog } from '../domain.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { readCookie, setSessionCookie, type AccessControl } from './access-control.ts';
import type { AccessStore, User } from './access-store.ts';
import type { AuditLog } from './audit-log.ts';
import type { Identity } from './identity.ts';
import { claimValues, displayNameFrom, rolesFromClaims, safeNextPath, userNameFrom } from './oidc-claims.ts';
import type { OidcStore, PendingLogin } from './oidc-store.ts';

/** The cookie holding the handle of a pending sign-in (oidc-store.ts says why the rest is in the database). */
export const OIDC_COOKIE = 'tessera_oidc';
const COOKIE_PATH = '/api/auth/oidc';
/** A sign-in must come back from the issuer within this time. */
export const PENDING_MINUTES = 10;
/** Seconds to wait for the issuer (discovery, token, userinfo, keys). */
const ISSUER_TIMEOUT_SECONDS = 10;
/** What the session credential's name and the audit log call this way of signing in. */
export const OIDC_SIGN_IN = 'OpenID Connect';

export interface OidcDeps {
  config: OidcConfig;
  store: AccessStore;
  oidcStore: OidcStore;
  identity: Identity;
  audit: AuditLog;
  projects: ProjectStore;
  access: AccessControl;
  /** The server's public URL; the redirect URI is `<it>/api/auth/oidc/callback`. */
  publicUrl: () => string;
  secureCookies: () => boolean;
  log: DomainLog;
}

/** A refused sign-in: what the audit log keeps, and the short text the sign-in page shows. */
class Refusal extends Error {
  constructor(
    readonly reason: string,
    readonly userText: string,
    readonly target: string = OIDC_SIGN_IN,
    readonly details: Record<string, unknown> = {},
  ) {
    super(reason);
  }
}

/** What went wrong in a request to the issuer, from openid-client's error and its causes; never a request's credentials. */
export function describeIssuerError(err: unknown): string {
  const parts: string[] = [];
  let e: unknown = err;
  let lastCode: unknown;
  for (let depth = 0; depth < 4 && e; depth++) {
    if (e instanceof Error) {
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        parts.push(`no answer within ${ISSUER_TIMEOUT_SECONDS} s`);
        break;
      }
      const code = (e as { code?: unknown }).code;
      parts.push(typeof code === 'string' && code !== lastCode && !e.message.includes(code) ? `${e.message} (${code})` : e.message);
      lastCode = code;
      e = e.cause;
    } else if (typeof Response !== 'undefined' && e instanceof Response) {
      parts.push(`HTTP ${e.status} from ${e.url || 'the issuer'}`);
      break;
    } else {
      break;
    }
  }
  return parts.join(': ') || String(err);
}

/** True when the issuer could not be reached or gave no usable HTTP answer (502), not when it answered a refusal. */
function unreachable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return true;
  if (err instanceof TypeError && err.message === 'fetch failed') return true;
  const code = (err as { code?: unknown }).code;
  return code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || code === 'OAUTH_RESPONSE_IS_NOT_JSON';
}

/** A short, printable copy of a value the issuer (or whoever called the callback) sent. */
function printable(value: string | null | undefined, max = 200): string | undefined {
  return value ? value.replace(/[^\x20-\x7e]/g, '?').slice(0, max) : undefined;
}

/**
 * Signing in at an OpenID Connect issuer (Keycloak, as Kaapana uses), with openid-client:
 * the authorization code flow with PKCE (S256), `state` and `nonce`. The issuer's
 * metadata is discovered from `<issuer>/.well-known/openid-configuration` at the first
 * sign-in (502 with what failed while it cannot be read, and tried again at the next).
 *
 * The callback checks `state` against the pending sign-in of this browser, exchanges the
 * code (with the PKCE verifier, the client authenticating with its secret), and
 * openid-client verifies the ID token: issuer, audience (our client id), expiry, issued
 * at, nonce, and, with `enableNonRepudiationChecks`, its signature with the issuer's JWKS.
 * (openid-client would otherwise take the TLS connection to the token endpoint as proof of
 * origin, which the specification allows; checking the signature too costs one cached
 * JWKS fetch and refuses a token that was altered on the way.)
 *
 * Claims map to a Tessera user (oidc-claims.ts): found by (iss, sub), else created; admin
 * and project memberships follow the roles claim at every sign-in (oidc-store.ts). Then a
 * session starts and the browser goes to `next`. A refused sign-in is written to the audit
 * log (`sign-in-failed`, with the reason) and the browser is sent to
 * `/sign-in?error=<short text>`; no session is created.
 */
export class OidcSignIn {
  readonly name: string;
  readonly #deps: OidcDeps;
  #discovery: Promise<client.Configuration> | undefined;

  constructor(deps: OidcDeps) {
    this.#deps = deps;
    this.name = deps.config.name;
  }

  get redirectUri(): string {
    return `${this.#deps.publicUrl().replace(/\/+$/, '')}/api/auth/oidc/callback`;
  }

  get #wellKnown(): string {
    return `${this.#deps.config.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  }

  /** The issuer's configuration, discovered once; a failure is not kept, so the next sign-in tries again. */
  configuration(): Promise<client.Configuration> {
    const { config } = this.#deps;
    this.#discovery ??= (async () => {
      const execute = [client.enableNonRepudiationChecks];
      // http is only allowed for a loopback issuer (config.ts), for development and tests.
      if (new URL(config.issuer).protocol === 'http:') execute.push(client.allowInsecureRequests);
      let discovered: client.Configuration;
      try {
        discovered = await client.discovery(new URL(config.issuer), config.clientId, undefined, client.ClientSecretBasic(config.clientSecret.reveal()), {
          timeout: ISSUER_TIMEOUT_SECONDS,
          execute,
        });
      } catch (err) {
        throw new TesseraError(
          'TESSERA_IDENTITY_PROVIDER',
          `could not read the OpenID Connect issuer's discovery document ${this.#wellKnown}: ${describeIssuerError(err)}. ` +
            'Check TESSERA_OIDC_ISSUER (Keycloak: https://<host>/realms/<realm>, exactly the "issuer" its discovery document names), that this server reaches it (DNS, proxy, firewall, TLS certificate) and that the issuer is up',
        );
      }
      const methods = discovered.serverMetadata().code_challenge_methods_supported;
      if (methods && !methods.includes('S256')) {
        throw new TesseraError('TESSERA_IDENTITY_PROVIDER', `the OpenID Connect issuer ${config.issuer} does not offer PKCE with S256 (its discovery document lists ${methods.join(', ') || 'none'}); Tessera signs in with the authorization code flow and PKCE S256 only`);
      }
      return discovered;
    })();
    const discovery = this.#discovery;
    discovery.catch(() => {
      if (this.#discovery === discovery) this.#discovery = undefined;
    });
    return discovery;
  }

  /** GET /api/auth/oidc/start: remembers a pending sign-in and sends the browser to the issuer. */
  start = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const raw = (request.query as { next?: string }).next;
    const next = safeNextPath(raw);
    if (next === undefined) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `next="${printable(raw, 100)}" is not a path of this server: it must begin with "/" (not "//" nor "/\\"), such as /runs`, {
        details: [{ where: 'querystring.next', message: 'must be a path of this server beginning with "/"' }],
      });
    }
    const configuration = await this.configuration();
    const login: PendingLogin = { state: client.randomState(), nonce: client.randomNonce(), code_verifier: client.randomPKCECodeVerifier(), next };
    const handle = randomBytes(32).toString('base64url');
    await this.#deps.oidcStore.sweep();
    await this.#deps.oidcStore.savePending(handle, login, PENDING_MINUTES * 60_000);
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: this.redirectUri,
      scope: this.#deps.config.scopes.join(' '),
      response_type: 'code',
      code_challenge: await client.calculatePKCECodeChallenge(login.code_verifier),
      code_challenge_method: 'S256',
      state: login.state,
      nonce: login.nonce,
    });
    reply.header('set-cookie', this.#cookie(handle, PENDING_MINUTES * 60));
    reply.header('cache-control', 'no-store');
    return reply.redirect(url.href, 302);
  };

  /** GET /api/auth/oidc/callback: checks the issuer's answer, signs the user in, and sends the browser on. */
  callback = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const address = request.ip;
    reply.header('cache-control', 'no-store');
    // The pending sign-in is used once, whatever happens next.
    reply.header('set-cookie', this.#cookie('', 0));
    try {
      const user = await this.#finish(request);
      const { secret, maxAgeSeconds } = await this.#deps.identity.startSession(user.user, address, OIDC_SIGN_IN);
      setSessionCookie(reply, secret, maxAgeSeconds, this.#deps.secureCookies());
      return reply.redirect(user.next, 302);
    } catch (err) {
      if (!(err instanceof Refusal)) throw err;
      await this.#deps.audit.append({ actor: null, action: 'sign-in-failed', target: err.target, outcome: 'refused', address, details: { via: OIDC_SIGN_IN, reason: err.reason, ...err.details } });
      return reply.redirect(`/sign-in?error=${encodeURIComponent(err.userText)}`, 302);
    }
  };

  #cookie(value: string, maxAgeSeconds: number): string {
    return `${OIDC_COOKIE}=${value}; Path=${COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${this.#deps.secureCookies() ? '; Secure' : ''}`;
  }

  async #finish(request: FastifyRequest): Promise<{ user: User; next: string }> {
    const again = 'Please sign in again.';
    const handle = readCookie(request.headers.cookie, OIDC_COOKIE);
    const login = handle && handle.length <= 256 ? await this.#deps.oidcStore.takePending(handle) : undefined;
    if (!login) {
      throw new Refusal(
        handle ? 'no pending sign-in for this browser\'s tessera_oidc cookie (expired, used already, or unknown)' : 'no tessera_oidc cookie: the sign-in was not started in this browser',
        `This sign-in was not started in this browser, was used already, or took longer than ${PENDING_MINUTES} minutes. ${again}`,
      );
    }
    const params = new URL(request.url, 'http://callback.invalid').searchParams;
    if (params.get('state') !== login.state) {
      throw new Refusal('the state parameter does not match the sign-in started in this browser', `The answer of the identity provider does not belong to the sign-in started in this browser. ${again}`);
    }
    const error = params.get('error');
    if (error !== null) {
      const e = printable(error, 64);
      throw new Refusal(`the issuer answered the error "${e}"`, `${this.name} did not sign you in (${e}).`, OIDC_SIGN_IN, {
        error: e, error_description: printable(params.get('error_description')),
      });
    }
    const configuration = await this.configuration();
    const currentUrl = new URL(this.redirectUri);
    for (const [k, v] of params) currentUrl.searchParams.append(k, v);
    let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
    try {
      tokens = await client.authorizationCodeGrant(configuration, currentUrl, {
        pkceCodeVerifier: login.code_verifier,
        expectedState: login.state,
        expectedNonce: login.nonce,
        idTokenExpected: true,
      });
    } catch (err) {
      throw this.#exchangeFailure(err, 'token');
    }
    const idClaims = tokens.claims()!;
    let claims: Record<string, unknown> = { ...idClaims };
    if (configuration.serverMetadata().userinfo_endpoint && tokens.access_token) {
      try {
        // The groups may be released at the userinfo endpoint only (a Keycloak mapper with "Add to ID token" off).
        const info = await client.fetchUserInfo(configuration, tokens.access_token, idClaims.sub);
        claims = { ...claims, ...info, iss: idClaims.iss, sub: idClaims.sub };
      } catch (err) {
        throw this.#exchangeFailure(err, 'userinfo');
      }
    }
    const user = await this.#userFor(claims, idClaims.iss, idClaims.sub, request.ip);
    return { user, next: safeNextPath(login.next) ?? '/' };
  }

  /** An error of the code exchange or of userinfo: 502 when the issuer could not be reached, a refusal otherwise. */
  #exchangeFailure(err: unknown, endpoint: 'token' | 'userinfo'): Error {
    const what = describeIssuerError(err);
    if (unreachable(err)) {
      return new TesseraError(
        'TESSERA_IDENTITY_PROVIDER',
        `the OpenID Connect issuer's ${endpoint} endpoint could not be used: ${what}. Check that this server reaches ${this.#deps.config.issuer} and that the issuer is up, then sign in again`,
      );
    }
    const oauthError = err instanceof client.ResponseBodyError ? err.error : undefined;
    // invalid_client: the client id or secret is wrong; an operator must act, not the user.
    this.#deps.log.warn(`OpenID Connect sign-in refused at the ${endpoint} step: ${what}${oauthError === 'invalid_client' ? ' (check TESSERA_OIDC_CLIENT_ID and the client secret)' : ''}`);
    return new Refusal(
      `${endpoint === 'token' ? 'the code exchange or the ID token' : 'the userinfo answer'} was refused: ${what}`,
      oauthError
        ? `${this.name} did not accept this sign-in (${printable(oauthError, 64)}). Please sign in again, or ask an admin.`
        : `The answer of ${this.name} could not be verified, so you were not signed in. An admin finds the reason in the audit log.`,
      OIDC_SIGN_IN,
      oauthError ? { error: printable(oauthError, 64) } : {},
    );
  }

  /** The Tessera user of these claims: found by (iss, sub) or created; admin and memberships set from the roles claim. */
  async #userFor(claims: Record<string, unknown>, issuer: string, subject: string, address: string): Promise<User> {
    const { store, oidcStore, audit, projects, config } = this.#deps;
    const roles = rolesFromClaims(claimValues(claims, config.rolesClaim), config);
    const displayName = displayNameFrom(claims);
    let user = await store.userByOidc(issuer, subject);
    if (!user) {
      const name = userNameFrom(claims);
      if (!name) {
        throw new Refusal(`no usable user name in the claims preferred_username, email or sub (subject ${printable(subject, 64)})`, 'Your account at the identity provider has no name Tessera can use (1-64 letters, digits, ".", "_", "-", "@"): ask an admin.');
      }
      // Case aside: "Alice" next to a local "alice" would pass for them in lists and the audit log.
      const taken = await store.db.selectFrom('users').selectAll().where((eb) => eb(eb.fn('lower', ['name']), '=', name.toLowerCase())).executeTakeFirst();
      if (taken) {
        // Never merged: whoever controls an issuer account of that name would take over the local account.
        throw new Refusal(
          taken.source === 'local'
            ? `the user name "${name}" belongs to a local account "${taken.name}" (with a password)`
            : `the user name "${name}" belongs to another OpenID Connect account "${taken.name}" (another issuer or subject)`,
          `The name "${name}" belongs to another account on this server, and accounts are not merged: ask an admin.`,
          name,
          { subject: printable(subject, 64) },
        );
      }
      try {
        user = await store.insertUser({
          name, display_name: displayName ?? null, password_hash: null, admin: roles.admin ? 1 : 0, source: 'oidc',
          oidc_issuer: issuer, oidc_subject: subject, disabled: 0, must_change_password: 0,
        });
        await audit.append({ actor: null, action: 'user-created', target: name, outcome: 'ok', address, details: { source: 'oidc', issuer, admin: roles.admin === true } });
      } catch (err) {
        // The same account's first sign-in on two servers (or tabs) at once: the other one created it.
        user = await store.userByOidc(issuer, subject);
        if (!user) throw err;
      }
    }
    if (user.disabled) throw new Refusal(`user "${user.name}" is disabled`, 'Your account is disabled on this server: ask an admin.', user.name);

    const change: Parameters<AccessStore['updateUser']>[1] = {};
    if (displayName !== undefined && displayName !== user.display_name) change.display_name = displayName;
    let keptLastAdmin = false;
    if (roles.admin !== undefined && (roles.admin ? 1 : 0) !== user.admin) {
      const otherAdmins = (await store.listUsers(100_000, 0)).users.filter((u) => u.admin === 1 && !u.disabled && u.id !== user!.id);
      if (roles.admin || otherAdmins.length > 0) change.admin = roles.admin ? 1 : 0;
      else keptLastAdmin = true;
    }
    await store.updateUser(user.id, change);

    const wanted = new Map<string, 'scientist' | 'principal-investigator'>();
    const unknownProjects: string[] = [];
    for (const [name, role] of roles.projects) {
      const project = await projects.findByName(name);
      if (project) wanted.set(project.id, role);
      else unknownProjects.push(name);
    }
    const changes = await oidcStore.applyClaimedMemberships(user.id, wanted);
    this.#deps.access.invalidate();
    const nameOf = async (ids: string[]): Promise<string[]> => Promise.all(ids.map(async (id) => (await projects.findById(id))?.name ?? id));
    if (change.admin !== undefined || keptLastAdmin || changes.added.length + changes.changed.length + changes.removed.length > 0 || unknownProjects.length > 0) {
      await audit.append({
        actor: user.name, action: 'oidc-roles-applied', target: user.name, outcome: 'ok', address,
        details: {
          ...(change.admin !== undefined ? { admin: change.admin === 1 } : {}),
          ...(keptLastAdmin ? { admin_kept: 'the claims no longer make this user an admin, but they are the last admin' } : {}),
          added: await nameOf(changes.added), changed: await nameOf(changes.changed), removed: await nameOf(changes.removed),
          ...(unknownProjects.length > 0 ? { unknown_projects: unknownProjects } : {}),
        },
      });
    }
    return (await store.userById(user.id))!;
  }
}

import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { APP_COOKIES, APP_PREFIX, cookieValues, pageHtml, parseAppPath } from '@tessera/apps';
import type { AppOrigins } from '../applications/app-origins.ts';
import { isLoopbackHost } from '../exposure.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { presentedSecret, type AccessControl } from './access-control.ts';
import { newSecret, type AccessStore } from './access-store.ts';
import { roleIn, type Principal } from './principal.ts';

/** How long a checked caller's requests to one instance pass without a new check (any change of access ends them sooner). */
const GRANT_MS = 5000;
/** A ticket to open an instance works once, for this long: the browser carries it straight on. */
const TICKET_MS = 60_000;
/** How long an instance's cookie admits its browser (membership is checked again every few seconds all the same). */
const APP_SESSION_MS = 12 * 3600_000;
/** Where the instance's host takes a ticket (outside the instances' paths, so no app can have it). */
export const APP_SIGN_IN_PATH = '/_tessera/sign-in';

type Verdict = 'ok' | 'sign-in' | 'hidden';

/**
 * Who may open an application instance: members of the instance's project (ADR 16).
 *
 * With a host name per instance (`AppOrigins.mode === 'instance'`), the platform's cookie
 * never reaches an instance. Opening one goes through the platform: a signed-in member's
 * GET of the instance's path on the platform's port gets a single-use ticket, which the
 * browser posts to the instance's host (`/_tessera/sign-in`, a form post: no secret in a URL);
 * the host exchanges it for a cookie of its own (`__Host-tessera_app`, HttpOnly), valid on
 * that host only. So each instance's scripts hold nothing that opens another instance or
 * the platform. Scripts and the CLI may send a platform token instead.
 *
 * With one shared apps origin (or apps on the platform's port), the platform's session
 * cookie or a token is checked, as it reaches there. Either way the proxy removes these
 * credentials before a request reaches the app (app-paths.ts), and its fast path forwards
 * a caller's requests to an instance for a few seconds after one passed here.
 */
export class AppGate {
  readonly #access: AccessControl;
  readonly #store: AccessStore;
  readonly #projects: ProjectStore;
  readonly #origins: () => AppOrigins;
  readonly #platformUrl: () => string;
  readonly #grants = new Map<string, number>();

  constructor(deps: { access: AccessControl; store: AccessStore; projects: ProjectStore; origins: () => AppOrigins; platformUrl: () => string }) {
    this.#access = deps.access;
    this.#store = deps.store;
    this.#projects = deps.projects;
    this.#origins = deps.origins;
    this.#platformUrl = deps.platformUrl;
    // A member removed, a session ended, a user disabled: their grants end at once.
    deps.access.onInvalidate(() => this.invalidate());
  }

  get #perInstance(): boolean {
    return this.#origins().mode === 'instance';
  }

  /** The secrets a request to an instance may carry: a token, then the instance's cookies (in `instance` mode) or the platform's session. */
  #secrets(headers: { cookie?: string | undefined; authorization?: string | undefined }): string[] {
    const presented = presentedSecret({ authorization: headers.authorization } as IncomingHttpHeaders);
    const out = presented ? [presented.secret] : [];
    if (this.#perInstance) {
      for (const name of APP_COOKIES) out.push(...cookieValues(headers.cookie, name).filter((v) => v.length > 0 && v.length <= 512));
    } else {
      const session = presentedSecret({ cookie: headers.cookie } as IncomingHttpHeaders, this.#access.secureSessions);
      if (session) out.push(session.secret);
    }
    return out;
  }

  /** The fast path's question: was this caller seen to be a member of the instance's project a moment ago? */
  admitted(project: string, instance: string, headers: { cookie?: string | undefined; authorization?: string | undefined }): boolean {
    if (!this.#access.enabled) return true;
    const now = Date.now();
    return this.#secrets(headers).some((s) => (this.#grants.get(`${s}\n${project}\n${instance}`) ?? 0) > now);
  }

  /** Forgets every grant (a member removed, a session ended). */
  invalidate(): void {
    this.#grants.clear();
  }

  #grant(secret: string, project: string, instance: string): void {
    if (this.#grants.size > 10_000) this.#grants.clear();
    this.#grants.set(`${secret}\n${project}\n${instance}`, Date.now() + GRANT_MS);
  }

  async #projectId(project: string): Promise<string | undefined> {
    let name: string;
    try {
      name = decodeURIComponent(project);
    } catch {
      return undefined;
    }
    return (await this.#projects.findByName(name))?.id;
  }

  /** A caller on the platform's port (its session cookie or a token): 'ok' with the principal for a member. */
  async #checkPlatform(headers: IncomingHttpHeaders, project: string): Promise<{ verdict: Verdict; principal?: Principal; projectId?: string }> {
    const principal = await this.#access.authenticate(headers);
    if (!principal || (principal.via === 'session' && principal.user.mustChangePassword)) return { verdict: 'sign-in' };
    if (principal.via === 'auth-off') return { verdict: 'ok', principal };
    const projectId = await this.#projectId(project);
    if (!projectId || !roleIn(principal, projectId)) return { verdict: 'hidden' };
    return { verdict: 'ok', principal, projectId };
  }

  /** Checks a request to an instance; grants the fast path on success. */
  async check(headers: IncomingHttpHeaders, project: string, instance: string): Promise<Verdict> {
    if (!this.#access.enabled) return 'ok';
    // Seen a moment ago: no lookup (the slow path's requests of a connection that left the fast path).
    if (this.admitted(project, instance, headers)) return 'ok';
    if (!this.#perInstance) {
      const { verdict } = await this.#checkPlatform(headers, project);
      const presented = presentedSecret(headers, this.#access.secureSessions);
      if (verdict === 'ok' && presented) this.#grant(presented.secret, project, instance);
      return verdict;
    }
    // A token (scripts, the CLI), then the instance's own cookie(s): a browser may hold several of a name.
    const bearer = presentedSecret({ authorization: headers.authorization } as IncomingHttpHeaders);
    let verdict: Verdict = 'sign-in';
    if (bearer) {
      const r = await this.#checkPlatform({ authorization: headers.authorization }, project);
      if (r.verdict === 'ok') {
        this.#grant(bearer.secret, project, instance);
        return 'ok';
      }
      verdict = r.verdict;
    }
    const subject = `${project}/${instance}`;
    for (const name of APP_COOKIES) {
      for (const value of cookieValues(headers.cookie, name)) {
        if (value.length === 0 || value.length > 512) continue;
        const credential = await this.#store.credentialFor(value);
        if (!credential || credential.kind !== 'app-session' || credential.subject !== subject) continue;
        const principal = await this.#access.principalOf(credential);
        const projectId = await this.#projectId(project);
        if (principal && projectId && projectId === credential.project_id && roleIn(principal, projectId)) {
          this.#grant(value, project, instance);
          return 'ok';
        }
        verdict = 'hidden';
      }
    }
    return verdict;
  }

  /** Serves a request to an instance on the apps' server (or the platform's port when apps live there): checks, then `forward`. */
  serve(req: IncomingMessage, res: ServerResponse, project: string, instance: string, forward: () => void): void {
    this.check(req.headers, project, instance).then(
      (verdict) => {
        if (verdict === 'ok') return forward();
        if (verdict === 'sign-in') {
          if (req.method === 'GET' && (req.headers.accept ?? '').includes('text/html') && this.#origins().mode !== 'platform') {
            // Through the platform's port: it signs the browser in to this instance (or asks it to sign in first).
            const to = this.#perInstance ? `${this.#platformUrl()}${req.url ?? '/'}` : `${this.#platformUrl()}/sign-in?next=${encodeURIComponent(req.url ?? '/')}`;
            res.writeHead(303, { location: to, 'cache-control': 'no-store' });
            res.end();
            return;
          }
          res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
          res.end(pageHtml('Sign in first', 'Application instances are open to the members of their project: sign in to Tessera first, then open the application from Tessera.'));
          return;
        }
        notFound(res);
      },
      (err: Error) => failed(res, err),
    );
  }

  /** The same for an Upgrade (WebSocket). */
  serveUpgrade(req: IncomingMessage, socket: Duplex, project: string, instance: string, forward: () => void): void {
    socket.on('error', () => socket.destroy());
    this.check(req.headers, project, instance).then(
      (verdict) => {
        if (verdict === 'ok') return forward();
        socket.end(`HTTP/1.1 ${verdict === 'sign-in' ? '401 Unauthorized' : '404 Not Found'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      },
      () => socket.destroy(),
    );
  }

  /**
   * An instance's path on the platform's port, when instances have hosts of their own: a
   * signed-in member's GET gets a page that posts a single-use ticket to the instance's host
   * (which sets its cookie and goes on to the path); an anonymous one goes to sign in first.
   * Other methods are sent to the instance's host as they are.
   */
  servePlatform(req: IncomingMessage, res: ServerResponse, project: string, instance: string): void {
    const origin = this.#origins().originOf(project, instance);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(307, { location: `${origin}${req.url ?? '/'}`, 'cache-control': 'no-store' });
      res.end();
      return;
    }
    this.#checkPlatform(req.headers, project).then(
      async ({ verdict, principal, projectId }) => {
        if (verdict === 'sign-in') {
          res.writeHead(303, { location: `/sign-in?next=${encodeURIComponent(req.url ?? '/')}`, 'cache-control': 'no-store' });
          res.end();
          return;
        }
        if (verdict === 'hidden' || !principal) return notFound(res);
        const ticket = newSecret('tst');
        const pid = projectId ?? (await this.#projectId(project)) ?? null;
        await this.#store.insertCredential(ticket, {
          kind: 'app-ticket', user_id: principal.user.id, name: `open ${project}/${instance}`, project_id: pid, role: null, subject: `${project}/${instance}`, expires_at: Date.now() + TICKET_MS,
        });
        ticketPage(res, `${origin}${APP_SIGN_IN_PATH}`, ticket, req.url ?? '/');
      },
      (err: Error) => failed(res, err),
    );
  }

  /**
   * `POST /_tessera/sign-in` on an instance's host: a ticket from the platform's page (its
   * Origin must be the platform's), for this very host, used once; answers the instance's
   * cookie and sends the browser on to the instance's path it came for.
   */
  serveSignIn(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST', 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
      res.end('Open the application from Tessera: this address takes the ticket Tessera gives, by POST.\n');
      return;
    }
    if (!this.#isPlatformOrigin(req.headers.origin)) {
      req.resume();
      res.writeHead(403, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(pageHtml('Not from Tessera', 'A ticket to open an application is taken only from Tessera\'s own page. Open the application from Tessera.'));
      return;
    }
    readForm(req, 8192).then(
      async (form) => {
        const ticket = form?.get('ticket') ?? '';
        const credential = ticket.length > 0 && ticket.length <= 512 ? await this.#store.consumeCredential(ticket, 'app-ticket') : undefined;
        const [project, instance] = (credential?.subject ?? '').split('/');
        if (!credential || !project || !instance || !this.#origins().hostFits(req.headers.host, project, instance)) {
          res.writeHead(403, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
          res.end(pageHtml('This ticket does not open this application', 'Tickets to open an application work once, for one minute, for the application they were given for. Open the application from Tessera again.'));
          return;
        }
        const session = newSecret('tsp');
        await this.#store.insertCredential(session, {
          kind: 'app-session', user_id: credential.user_id, name: `${project}/${instance}`, project_id: credential.project_id, role: null, subject: credential.subject, expires_at: Date.now() + APP_SESSION_MS,
        });
        // Only a path of this instance: the ticket's `next` cannot send the browser anywhere else.
        const next = form?.get('next') ?? '';
        const parsed = parseAppPath(next);
        const prefix = `${APP_PREFIX}${project}/release/${instance}`;
        const to = parsed && parsed !== 'bad' && parsed.project === project && parsed.instance === instance && !/[\r\n]/.test(next) ? next : `${prefix}/`;
        const secure = this.#origins().secureCookies;
        const name = secure ? APP_COOKIES[0] : APP_COOKIES[1];
        res.writeHead(303, {
          location: to,
          'set-cookie': `${name}=${session}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${APP_SESSION_MS / 1000}${secure ? '; Secure' : ''}`,
          'cache-control': 'no-store',
          'referrer-policy': 'no-referrer',
        });
        res.end();
      },
      (err: Error) => failed(res, err),
    );
  }

  /** The platform's own origin: TESSERA_PUBLIC_URL's (or the address it listens on), or any loopback name on its port when it is reached on loopback. */
  #isPlatformOrigin(origin: string | undefined): boolean {
    if (!origin) return false;
    let o: URL;
    let p: URL;
    try {
      o = new URL(origin);
      p = new URL(this.#platformUrl());
    } catch {
      return false;
    }
    if (o.origin !== origin) return false;
    if (o.origin === p.origin) return true;
    return isLoopbackHost(p.hostname) && isLoopbackHost(o.hostname) && o.protocol === p.protocol && o.port === p.port;
  }
}

function notFound(res: ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(pageHtml('No such application', 'There is no application instance at this address, or it belongs to a project you are not a member of.'));
}

function failed(res: ServerResponse, err: Error): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`checking access failed: ${err.message}`);
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The page that carries a ticket to an instance's host: a form posted by a script (allowed
 * by its nonce only), with a button for a browser without scripts. Its Referrer-Policy
 * sends the platform's origin (the host checks it) and nothing of its path.
 */
function ticketPage(res: ServerResponse, action: string, ticket: string, next: string): void {
  const nonce = randomBytes(16).toString('base64');
  const body = `<!doctype html><meta charset="utf-8"><title>Opening the application</title>` +
    `<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><form id="open" method="post" action="${escapeHtml(action)}">` +
    `<input type="hidden" name="ticket" value="${escapeHtml(ticket)}"><input type="hidden" name="next" value="${escapeHtml(next)}">` +
    `<p>Opening the application…</p><noscript><button type="submit">Open the application</button></noscript></form>` +
    `<script nonce="${nonce}">document.getElementById('open').submit();</script></body>`;
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'referrer-policy': 'strict-origin',
    'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; form-action ${new URL(action).origin}; frame-ancestors 'none'`,
    'x-frame-options': 'DENY',
  });
  res.end(body);
}

/** An application/x-www-form-urlencoded body of at most `limit` bytes; undefined when it is another type or larger. */
async function readForm(req: IncomingMessage, limit: number): Promise<URLSearchParams | undefined> {
  if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    req.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { pageHtml } from '@tessera/apps';
import type { ProjectStore } from '../projects/project-store.ts';
import { presentedSecret, type AccessControl } from './access-control.ts';
import { roleIn } from './principal.ts';

/** How long a checked caller's requests to one project's instances pass without a new check. */
const GRANT_MS = 5000;

/**
 * Who may open an application instance: members of the instance's project, signed in
 * (a session cookie, or a token). Checked on the platform's HTTP server for the first
 * request of a caller to a project; the proxy's fast path then forwards that caller's
 * requests to the project's instances for a few seconds without asking again. The
 * session cookie and platform tokens are removed from what the app receives (app-paths.ts).
 */
export class AppGate {
  readonly #access: AccessControl;
  readonly #projects: ProjectStore;
  readonly #grants = new Map<string, number>();

  readonly #platformUrl: () => string;

  /** `platformUrl`: where the sign-in page is, when applications are on another origin ('' when on the same). */
  constructor(access: AccessControl, projects: ProjectStore, platformUrl: () => string = () => '') {
    this.#access = access;
    this.#projects = projects;
    this.#platformUrl = platformUrl;
  }

  /** The fast path's question: was this caller seen to be a member of the project a moment ago? */
  admitted(project: string, headers: { cookie?: string | undefined; authorization?: string | undefined }): boolean {
    if (!this.#access.enabled) return true;
    const presented = presentedSecret(headers as IncomingHttpHeaders);
    if (!presented) return false;
    const until = this.#grants.get(`${presented.secret}\n${project}`);
    return until !== undefined && until > Date.now();
  }

  /** 'ok' for a member, 'sign-in' for an anonymous caller (or one who must change their password), 'hidden' otherwise. */
  async check(headers: IncomingHttpHeaders, project: string): Promise<'ok' | 'sign-in' | 'hidden'> {
    const principal = await this.#access.authenticate(headers);
    if (!principal || (principal.via === 'session' && principal.user.mustChangePassword)) return 'sign-in';
    if (principal.via === 'auth-off') return 'ok';
    let name: string;
    try {
      name = decodeURIComponent(project);
    } catch {
      return 'hidden';
    }
    const p = await this.#projects.findByName(name);
    if (!p || !roleIn(principal, p.id)) return 'hidden';
    const presented = presentedSecret(headers)!;
    if (this.#grants.size > 10_000) this.#grants.clear();
    this.#grants.set(`${presented.secret}\n${project}`, Date.now() + GRANT_MS);
    return 'ok';
  }

  /** Forgets every grant (a member removed, a session ended). */
  invalidate(): void {
    this.#grants.clear();
  }

  /** Checks, then lets `forward` handle the request; answers the refusal itself. */
  serve(req: IncomingMessage, res: ServerResponse, project: string, forward: () => void): void {
    this.check(req.headers, project).then(
      (verdict) => {
        if (verdict === 'ok') return forward();
        if (verdict === 'sign-in') {
          const wantsPage = req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
          if (wantsPage) {
            // Back to the same path on the platform's port afterwards, which leads to this origin again.
            res.writeHead(303, { location: `${this.#platformUrl()}/sign-in?next=${encodeURIComponent(req.url ?? '/')}`, 'cache-control': 'no-store' });
            res.end();
            return;
          }
          res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
          res.end(pageHtml('Sign in first', 'Application instances are open to the members of their project: sign in to Tessera first.'));
          return;
        }
        res.writeHead(404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(pageHtml('No such application', 'There is no application instance at this address, or it belongs to a project you are not a member of.'));
      },
      (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`checking access failed: ${err.message}`);
      },
    );
  }

  /** The same for an Upgrade (WebSocket). */
  serveUpgrade(req: IncomingMessage, socket: Duplex, project: string, forward: () => void): void {
    socket.on('error', () => socket.destroy());
    this.check(req.headers, project).then(
      (verdict) => {
        if (verdict === 'ok') return forward();
        socket.end(`HTTP/1.1 ${verdict === 'sign-in' ? '401 Unauthorized' : '404 Not Found'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      },
      () => socket.destroy(),
    );
  }
}

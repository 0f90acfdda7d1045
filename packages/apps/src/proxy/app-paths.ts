import { createHash } from 'node:crypto';
/** Application URLs, and what the proxy answers with: shared by the SubpathProxy and its fast path. */

/** Where the proxy sends an instance's traffic, and how. */
export interface ProxyTarget {
  state: 'starting' | 'running' | 'failed' | 'stopped';
  port: number | null;
  /** "subpath": the app serves under the prefix; "strip": the proxy removes it. */
  ingress: 'subpath' | 'strip';
  /** Why it is not running (failed), for the page the proxy answers. */
  reason: string | null;
  /**
   * This start's secret, sent to the app with every request in {@link PROXY_SECRET_HEADER}:
   * an app that checks it answers only the proxy, not another process of the machine that
   * finds its port on 127.0.0.1 (a task, another project's notebook).
   */
  secret?: string | undefined;
}

/** The header the proxy proves itself with to an instance (`TESSERA_PROXY_SECRET` in the instance's env); a client's own is dropped. */
export const PROXY_SECRET_HEADER = 'x-tessera-proxy-secret';

export const APP_PREFIX = '/applications/project/';

/** /applications/project/<project>/release/<instance>/<rest>, split; undefined when the path is not one. */
export function parseAppPath(url: string): { project: string; instance: string; prefix: string; rest: string } | 'bad' | undefined {
  if (!url.startsWith(APP_PREFIX)) return undefined;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q);
  // Encoded slashes, backslashes and dot segments never reach an app: no path trick
  // can make one instance's URL name another's, or a file of the host.
  if (/%2f|%5c|\\/i.test(path)) return 'bad';
  const parts = path.slice(APP_PREFIX.length).split('/');
  let decoded: string[];
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    return 'bad';
  }
  if (decoded.some((p) => p === '..' || p === '.')) return 'bad';
  const [project, release, instance] = parts;
  if (!project || release !== 'release' || !instance) return 'bad';
  const prefix = `${APP_PREFIX}${project}/release/${instance}`;
  return { project, instance, prefix, rest: `/${parts.slice(3).join('/')}${query}` };
}

/** The HTML of the proxy's own answers (not found, starting, failed, did not answer). */
export function pageHtml(title: string, text: string, retry = false): string {
  return `<!doctype html><meta charset="utf-8"><title>${title}</title>${retry ? '<meta http-equiv="refresh" content="2">' : ''}` +
    `<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>${title}</h1><p>${text.replace(/[<&]/g, (c) => (c === '<' ? '&lt;' : '&amp;'))}</p></body>`;
}


/**
 * An instance's Set-Cookie, confined to the instance: the Domain attribute is removed, and
 * the cookie's Path is made to lie under the instance's prefix. With ingress "strip" the
 * app's path is put under the prefix (Path=/x becomes Path=<prefix>/x); with "subpath" a
 * path outside the prefix (Path=/, another instance's) becomes <prefix>/. No Path gets
 * <prefix>/. So no app sets a cookie that another instance or the platform receives.
 */
export function confineCookie(cookie: string, prefix: string, strip: boolean): string {
  const parts = cookie.split(';');
  const out = [parts[0]!];
  let hasPath = false;
  for (const part of parts.slice(1)) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === 'domain') continue;
    if (name === 'path') {
      if (hasPath) continue; // one Path: a second one would win in the browser
      hasPath = true;
      const value = eq < 0 ? '' : part.slice(eq + 1).trim();
      const within = value === prefix || value.startsWith(`${prefix}/`);
      let path: string;
      if (strip) path = value.startsWith('/') ? `${prefix}${value}` : `${prefix}/`;
      else path = within && !/(^|\/)\.\.?(\/|$)/.test(value) ? value : `${prefix}/`;
      out.push(`${eq < 0 ? ' Path=' : part.slice(0, eq + 1)}${path}`);
      continue;
    }
    out.push(part);
  }
  if (!hasPath) out.push(` Path=${prefix}/`);
  return out.join(';');
}

/** The platform's session cookie (`__Host-` prefixed over https): the proxy never passes it to an application. */
export const PLATFORM_COOKIE = 'tessera_session';

/**
 * The cookie that admits a browser to one instance on that instance's own host (ADR 16):
 * `__Host-` where the browser allows it (https, or a loopback name), which no script of
 * another host can set or shadow. The proxy never passes it to the application either.
 */
export const APP_COOKIES = ['__Host-tessera_app', 'tessera_app'] as const;

const SCRUBBED = new Set<string>([PLATFORM_COOKIE, `__Host-${PLATFORM_COOKIE}`, ...APP_COOKIES]);

/**
 * A Cookie header without the platform's session cookie and the instance's admission
 * cookie, or undefined when nothing is left: an application (its server, or anything it
 * logs) never sees a credential that signs its user in to the platform or to an instance.
 */
export function scrubCookie(value: string): string | undefined {
  const kept = value.split(';').map((c) => c.trim()).filter((c) => c && !SCRUBBED.has(c.slice(0, c.indexOf('=') < 0 ? c.length : c.indexOf('=')).trim()));
  return kept.length > 0 ? kept.join('; ') : undefined;
}

/** The values of every cookie of this name in a Cookie header (a browser may send several). */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (!header) return [];
  const out: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) out.push(part.slice(eq + 1).trim());
  }
  return out;
}

/**
 * The DNS label of an instance's own host name (`<label>.<apps domain>`): `<instance>--<project>`
 * when that is unambiguous and fits a label (63 characters), otherwise the instance name and a
 * hash of both names. Nothing parses it back: a request's path names the instance, and its
 * Host must be the one computed here from that path.
 */
export function instanceLabel(project: string, instance: string): string {
  const plain = `${instance}--${project}`.toLowerCase();
  if (plain.length <= 63 && !instance.includes('--') && !project.includes('--') && /^[a-z0-9-]+$/.test(plain)) return plain;
  const digest = createHash('sha256').update(`${project}\n${instance}`).digest('hex').slice(0, 12);
  const head = instance.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/--+/g, '-').replace(/^-|-$/g, '').slice(0, 40);
  return `${head || 'app'}--h${digest}`;
}

/** True for an Authorization header carrying a platform secret (`Bearer tsr_...`, `tss_...`, any `ts?_`): it is not passed to an application. */
export function isPlatformAuthorization(value: string): boolean {
  return /^\s*bearer\s+ts[a-z]_/i.test(value);
}

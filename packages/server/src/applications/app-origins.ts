import { instanceLabel } from '@tessera/apps';
import { isLoopbackHost } from '../exposure.ts';

/** Stands for an instance's DNS label in TESSERA_APPS_PUBLIC_URL (`https://{instance}.apps.example.org`). */
export const INSTANCE_PLACEHOLDER = '{instance}';

/**
 * Where application instances are served (ADR 16):
 * - `instance`: each instance on a host name of its own, `<instance>--<project>.<domain>`
 *   (`*.localhost` on a laptop, a wildcard name behind a reverse proxy). Instances are then
 *   different origins to each other and to the platform: one app's scripts cannot read
 *   another's pages, and a cookie one sets reaches no other.
 * - `shared`: all instances on one apps origin (TESSERA_APPS_PUBLIC_URL without `{instance}`).
 * - `platform`: on the platform's own port (TESSERA_APPS_PORT=same, access control off).
 */
export class AppOrigins {
  readonly mode: 'instance' | 'shared' | 'platform';
  /** The template (`instance`) or the one origin (`shared`); '' for `platform`. */
  readonly #base: string;
  /** Each instance's expected Host, computed once: the proxy's fast path asks for every request. */
  readonly #hosts = new Map<string, { protocol: string; host: string }>();

  private constructor(mode: AppOrigins['mode'], base: string) {
    this.mode = mode;
    this.#base = base.replace(/\/$/, '');
  }

  static platform(): AppOrigins {
    return new AppOrigins('platform', '');
  }

  /**
   * From the configuration once the apps' port is known: TESSERA_APPS_PUBLIC_URL when set
   * (with `{instance}`: a host per instance; without: one shared origin); otherwise a host
   * per instance under `localhost` when the platform is reached on loopback, and one shared
   * origin (with a warning at start) when it is reached by a name only the admin can give.
   */
  static fromConfig(o: { appsPublicUrl: string | undefined; publicUrl: string | undefined; scheme: 'http' | 'https'; host: string; appsPort: number }): AppOrigins {
    if (o.appsPublicUrl) return new AppOrigins(o.appsPublicUrl.includes(INSTANCE_PLACEHOLDER) ? 'instance' : 'shared', o.appsPublicUrl);
    const reachedOnLoopback = o.publicUrl ? isLoopbackHost(new URL(o.publicUrl).hostname) : isLoopbackHost(o.host);
    if (reachedOnLoopback) return new AppOrigins('instance', `${o.scheme}://${INSTANCE_PLACEHOLDER}.localhost:${o.appsPort}`);
    const host = o.host.includes(':') ? `[${o.host}]` : o.host;
    return new AppOrigins('shared', `${o.scheme}://${host}:${o.appsPort}`);
  }

  /** The origin an instance is served on ('' on the platform's port). */
  originOf(project: string, instance: string): string {
    if (this.mode !== 'instance') return this.#base;
    return this.#base.replace(INSTANCE_PLACEHOLDER, instanceLabel(project, instance));
  }

  /** For people: the one origin, or the template with `<instance>--<project>` for the instance's label. */
  get display(): string {
    return this.#base.replace(INSTANCE_PLACEHOLDER, '<instance>--<project>');
  }

  /** Whether a request's Host header names the host of this instance (in `instance` mode; true otherwise). */
  hostFits(host: string | undefined, project: string, instance: string): boolean {
    if (this.mode !== 'instance') return true;
    // A host name and a port, nothing else (no path, no user info for URL parsing to take apart).
    if (!host || !/^[a-z0-9.-]+(:\d{1,5})?$/i.test(host)) return false;
    const key = `${project}\n${instance}`;
    let expected = this.#hosts.get(key);
    if (expected === undefined) {
      const u = new URL(this.originOf(project, instance));
      expected = { protocol: u.protocol, host: u.host };
      if (this.#hosts.size > 10_000) this.#hosts.clear();
      this.#hosts.set(key, expected);
    }
    if (host === expected.host) return true; // the common case: as the browser wrote it
    try {
      // As a URL would write it: lower case, without the scheme's default port.
      return new URL(`${expected.protocol}//${host}`).host === expected.host;
    } catch {
      return false;
    }
  }

  /** Whether the instance's cookie can be a `__Host-` cookie (Secure): over https, or on a loopback name (a secure context). */
  get secureCookies(): boolean {
    if (this.mode === 'platform') return false;
    const u = new URL(this.originOf('p', 'i'));
    return u.protocol === 'https:' || u.hostname === 'localhost' || u.hostname.endsWith('.localhost') || isLoopbackHost(u.hostname);
  }
}

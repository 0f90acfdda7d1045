import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Duplex } from 'node:stream';
import { TesseraError } from '@tessera/model';
import { isLoopbackHost } from '../exposure.ts';

/**
 * Browser safety before any routing (the serverFactory's handler and 'upgrade', and the
 * application proxy's fast path): a request whose Host is not one of this server's names
 * is refused 421 (DNS rebinding: a page of evil.example whose name now points here sends
 * `Host: evil.example`), and a state-changing request from another origin is refused 403
 * (CSRF: a form POST, a multipart upload, a fetch from a hostile page). Requests without
 * Origin (the CLI, curl, scripts) pass: a browser always sends Origin on a cross-origin
 * POST, PUT, PATCH or DELETE. No answer carries Access-Control-Allow-Origin, so CORS
 * stays closed. See "Browser safety" in docs/guides/operations.md.
 */
export interface BrowserSafetyConfig {
  host: string;
  publicUrl: string | undefined;
  allowedHosts: string[];
  allowedOrigins: string[];
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** An allowed host name, and its port when the entry names one (else any port). */
interface HostEntry {
  name: string;
  port: string | undefined;
}

/** `name[:port]`, `[v6][:port]`, lower case; undefined when it is not a host. */
export function splitHost(value: string): HostEntry | undefined {
  const v = value.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$/.exec(v);
  if (!m) return undefined;
  return { name: m[1]!, port: m[2] };
}

export class BrowserSafety {
  readonly #entries: HostEntry[] = [];
  readonly #origins = new Set<string>();

  constructor(config: BrowserSafetyConfig) {
    for (const h of config.allowedHosts) {
      const e = splitHost(h);
      if (e) this.#entries.push(e);
    }
    if (config.publicUrl) {
      const u = new URL(config.publicUrl);
      this.#entries.push({ name: u.hostname.toLowerCase(), port: undefined });
      this.#origins.add(u.origin);
    }
    const bound = config.host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
    if (bound === '0.0.0.0' || bound === '::') {
      // Every address of this machine, and the bound one itself (the URL `npm start` prints,
      // TESSERA_API_URL by default): an IP address in Host was typed by a person, not rebound.
      this.#entries.push({ name: bound === '::' ? '[::]' : bound, port: undefined });
      for (const list of Object.values(networkInterfaces())) {
        for (const a of list ?? []) this.#entries.push({ name: bracket(a.address.replace(/%.*$/, '')), port: undefined });
      }
    } else if (!isLoopbackHost(bound)) {
      this.#entries.push({ name: isIP(bound) === 6 ? `[${bound}]` : bound, port: undefined });
    }
    for (const o of config.allowedOrigins) {
      try {
        this.#origins.add(new URL(o.trim()).origin);
      } catch {
        // loadConfig refused it already.
      }
    }
  }

  /** Answers one more host name, on any port: the name containers reach the server by, the Docker bridge's gateway address. */
  allowHost(name: string): void {
    const e = splitHost(name);
    if (e && !this.#entries.some((x) => x.name === e.name && x.port === undefined)) this.#entries.push({ name: e.name, port: undefined });
  }

  /** Whether a Host header names this server: loopback with any port, a configured name, the bound address. */
  hostAllowed(host: string | undefined): boolean {
    if (host === undefined || host === '') return false;
    const h = splitHost(host);
    if (!h) return false;
    if (isLoopbackHost(h.name)) return true;
    return this.#entries.some((e) => e.name === h.name && (e.port === undefined || e.port === h.port));
  }

  /**
   * Whether a request may change state as far as its origin goes: not POST/PUT/PATCH/DELETE,
   * or without Origin and not marked cross-site or same-site by the browser, or from this
   * server's own origin (scheme, Host and port), TESSERA_PUBLIC_URL's, or a configured one.
   */
  originAllowed(method: string, headers: { host?: string | undefined; origin?: string | undefined; 'sec-fetch-site'?: string | undefined; 'x-forwarded-proto'?: string | undefined }, encrypted: boolean): boolean {
    if (!UNSAFE.has(method.toUpperCase())) return true;
    const origin = headers.origin;
    if (origin === undefined) {
      const site = headers['sec-fetch-site'];
      return site !== 'cross-site' && site !== 'same-site';
    }
    if (this.#origins.has(origin)) return true;
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return false; // "null" (a sandboxed frame, a file:// page) and anything malformed
    }
    if (u.origin !== origin || !headers.host) return false;
    // The connection's scheme, or the one a TLS-terminating reverse proxy says it had.
    const schemes = new Set([encrypted ? 'https:' : 'http:', ...(headers['x-forwarded-proto'] ?? '').split(',').map((s) => `${s.trim().toLowerCase()}:`)]);
    if (!schemes.has(u.protocol)) return false;
    try {
      return new URL(`${u.protocol}//${headers.host}`).host === u.host;
    } catch {
      return false;
    }
  }

  /** The refusal of a request, or undefined when it may go on. `hostChecked`: the caller checked Host itself (the apps' server, for its instances' names). */
  check(method: string, headers: IncomingHttpHeaders, encrypted: boolean, hostChecked = false): TesseraError | undefined {
    const host = headers.host;
    if (!hostChecked && !this.hostAllowed(host)) {
      const shown = host === undefined ? 'no Host header' : `Host "${host.slice(0, 200)}"`;
      return new TesseraError(
        'TESSERA_HOST_NOT_ALLOWED',
        `this server does not answer requests with ${shown}: only loopback names (localhost, 127.0.0.1, [::1]), the host of TESSERA_PUBLIC_URL and the names in TESSERA_ALLOWED_HOSTS are answered, ` +
          `so that a web page whose name was made to point here (DNS rebinding) cannot use it. Open Tessera by one of those names, or add this name to TESSERA_ALLOWED_HOSTS (comma-separated host or host:port); a reverse proxy must pass the Host header on`,
        { details: [{ where: 'headers.host', message: host === undefined ? 'missing' : `"${host.slice(0, 200)}" is not an allowed host` }] },
      );
    }
    const origin = typeof headers.origin === 'string' ? headers.origin : undefined;
    const site = typeof headers['sec-fetch-site'] === 'string' ? headers['sec-fetch-site'] : undefined;
    const proto = typeof headers['x-forwarded-proto'] === 'string' ? headers['x-forwarded-proto'] : undefined;
    if (!this.originAllowed(method, { host, origin, 'sec-fetch-site': site, 'x-forwarded-proto': proto }, encrypted)) {
      const from = origin === undefined ? `a page of another site (Sec-Fetch-Site: ${site})` : `the origin ${origin.slice(0, 200)}`;
      return new TesseraError(
        'TESSERA_CROSS_ORIGIN',
        `a ${method} from ${from} is refused: only pages of this server's own origin may change its state, so that another site open in the same browser cannot start jobs, upload or delete data (CSRF). ` +
          'Send it from the Tessera UI or without a browser (the CLI, curl); to let a web application on another origin call this API, add its origin to TESSERA_ALLOWED_ORIGINS',
        { details: [{ where: origin === undefined ? 'headers.sec-fetch-site' : 'headers.origin', message: origin === undefined ? `${site} is not same-origin` : `${origin.slice(0, 200)} is not an allowed origin` }] },
      );
    }
    return undefined;
  }

  /** Answers the request's refusal itself (before any routing); true when it was refused. */
  refuseRequest(req: IncomingMessage, res: ServerResponse, hostChecked = false): boolean {
    const err = this.check(req.method ?? 'GET', req.headers, 'encrypted' in req.socket && req.socket.encrypted === true, hostChecked);
    if (!err) return false;
    const body = JSON.stringify(err.toJSON());
    // The request body is not read: the connection cannot carry another request.
    res.writeHead(err.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', connection: 'close' });
    res.end(body);
    return true;
  }

  /** Refuses an upgrade (a WebSocket) whose Host or Origin is not allowed; true when it was refused. */
  refuseUpgrade(req: IncomingMessage, socket: Duplex, hostChecked = false): boolean {
    // A WebSocket handshake is a GET, but a cross-origin page may open one: its Origin counts as for a POST.
    const err = this.check('POST', req.headers, 'encrypted' in req.socket && req.socket.encrypted === true, hostChecked);
    if (!err) return false;
    socket.on('error', () => socket.destroy());
    const body = JSON.stringify(err.toJSON());
    const reason = err.status === 421 ? 'Misdirected Request' : 'Forbidden';
    socket.end(`HTTP/1.1 ${err.status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    return true;
  }
}

function bracket(address: string): string {
  return isIP(address) === 6 ? `[${address.toLowerCase()}]` : address.toLowerCase();
}

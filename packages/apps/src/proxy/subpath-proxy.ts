import { request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';
import { Pool, type Dispatcher } from 'undici';
import type { Duplex } from 'node:stream';
import { APP_COOKIES, APP_PREFIX, confineCookie, cookieValues, instanceLabel, PROXY_SECRET_HEADER, isPlatformAuthorization, pageHtml, parseAppPath, scrubCookie, type ProxyTarget } from './app-paths.ts';
import { AppProxyFastPath, type AdmitHeaders, type AppProxyFastPathTimeouts } from './app-proxy-fast-path.ts';

export { APP_COOKIES, APP_PREFIX, confineCookie, cookieValues, instanceLabel, PROXY_SECRET_HEADER, pageHtml, parseAppPath, type AdmitHeaders, type ProxyTarget };

/** Not passed on from instances: an app may not widen a service worker's scope beyond its own path. */
const APP_ONLY = 'service-worker-allowed';
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection']);
/** Not passed on from clients: Node has answered `expect` (100 Continue) already, and the others only this hop may set. */
const CLIENT_ONLY = new Set(['expect', 'forwarded', 'x-real-ip', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-prefix', PROXY_SECRET_HEADER]);

function page(res: ServerResponse, status: number, title: string, text: string, retry = false): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...(retry ? { 'retry-after': '2' } : {}) });
  res.end(pageHtml(title, text, retry));
}

/**
 * The platform's reverse proxy for application instances, on the platform's own port.
 * Bodies stream both ways (nothing is buffered), WebSockets are tunnelled, and the
 * X-Forwarded-* headers say where the request came from. For apps that do not serve
 * under their subpath (ingress "strip"), the prefix is removed going in and put back
 * into redirects and cookie paths coming out.
 */
export class SubpathProxy {
  readonly #pools = new Map<number, Pool>();
  readonly #lookup: (project: string, instance: string) => ProxyTarget | undefined;
  #fast: AppProxyFastPath | undefined;
  /**
   * Whether the fast path may forward a request itself (the platform's Host and Origin
   * checks); one it may not goes to the HTTP server, whose handler refuses it. Unset: all.
   */
  admit: ((method: string, headers: AdmitHeaders, project: string, instance: string) => boolean) | undefined;
  /** Asked by the fast path when `admit` says no (AppProxyFastPath.check). */
  check: ((method: string, headers: AdmitHeaders, project: string, instance: string) => Promise<boolean>) | undefined;

  constructor(lookup: (project: string, instance: string) => ProxyTarget | undefined) {
    this.#lookup = lookup;
  }

  /**
   * Takes the connections of the platform's HTTP server: each goes through the fast path
   * (app-proxy-fast-path.ts) while its requests are for running instances, and to the server
   * itself (its request handler, then this proxy's `handle` and `upgrade`) from the
   * first request that is not.
   */
  attach(server: Server, timeouts?: Partial<AppProxyFastPathTimeouts>): void {
    // An HTTPS server hands HTTP its decrypted connections on 'secureConnection' ('connection'
    // carries the TLS bytes): the fast path reads requests, so it goes where they are readable.
    const event = server instanceof TlsServer ? 'secureConnection' : 'connection';
    const listeners = server.listeners(event) as ((socket: Socket) => void)[];
    server.removeAllListeners(event);
    const fast = new AppProxyFastPath(this.#lookup, (socket) => {
      for (const listener of listeners) listener.call(server, socket);
    }, timeouts, (method, headers, project, instance) => this.admit?.(method, headers, project, instance) ?? true,
    (method, headers, project, instance) => this.check?.(method, headers, project, instance) ?? Promise.resolve(false));
    this.#fast = fast;
    server.on(event, (socket: Socket) => fast.accept(socket));
  }

  /** Requests the fast path forwarded itself (0 when not attached). */
  get fastExchanges(): number {
    return this.#fast?.exchanges ?? 0;
  }

  /** Handles the request when its path is an application's; false otherwise. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const parsed = parseAppPath(req.url ?? '');
    if (parsed === undefined) return false;
    if (parsed === 'bad') {
      page(res, 400, 'Bad application path', 'The path has an encoded slash, a backslash or a dot segment, which application paths never have.');
      return true;
    }
    const target = this.#route(parsed, res);
    if (!target) return true;
    if (parsed.rest === '/' && req.url === parsed.prefix) {
      // /…/release/<instance> without its slash: relative links of the app need it.
      res.writeHead(308, { location: `${parsed.prefix}/` });
      res.end();
      return true;
    }
    const path = target.ingress === 'strip' ? parsed.rest : req.url!;
    const strip = target.ingress === 'strip';
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    let abort: ((err?: Error) => void) | undefined;
    let resume: (() => void) | undefined;
    res.on('drain', () => resume?.());
    res.on('close', () => {
      if (!res.writableFinished) abort?.();
    });
    // undici's dispatch: the lowest-overhead HTTP/1.1 client Node has (about 1.7x the
    // requests per second of http.request here); bodies stream with backpressure both ways.
    this.#pool(target.port!).dispatch(
      { path, method: req.method as Dispatcher.HttpMethod, headers: this.#forwardRawHeaders(req, parsed.prefix, target.secret), body: hasBody ? req : null },
      {
        onConnect: (a: (err?: Error) => void) => {
          abort = a;
        },
        onHeaders: (status: number, raw: Buffer[], resumeFn: () => void) => {
          if (status < 200) return true; // 100, 102, 103: informational; the final answer follows
          resume = resumeFn;
          const headers: string[] = [];
          for (let i = 0; i < raw.length; i += 2) {
            const key = raw[i]!.toString('latin1');
            const lower = key.toLowerCase();
            if (HOP_BY_HOP.has(lower) || lower === APP_ONLY) continue;
            let value = raw[i + 1]!.toString('latin1');
            if (strip && lower === 'location' && value.startsWith('/') && !value.startsWith('//')) value = `${parsed.prefix}${value}`;
            if (lower === 'set-cookie') value = confineCookie(value, parsed.prefix, strip);
            headers.push(key, value);
          }
          res.writeHead(status, headers);
          return true;
        },
        onData: (chunk: Buffer) => res.write(chunk),
        onComplete: () => {
          res.end();
        },
        onError: (err: Error) => {
          if (res.headersSent) {
            res.destroy();
            return;
          }
          page(res, 502, 'The application did not answer', `${parsed.instance} did not answer (${(err as NodeJS.ErrnoException).code ?? err.message}); it may have just stopped. Its state and logs: tessera app list, tessera app logs ${parsed.instance}.`);
        },
      },
    );
    return true;
  }

  #pool(port: number): Pool {
    let pool = this.#pools.get(port);
    if (!pool) {
      pool = new Pool(`http://127.0.0.1:${port}`, { connections: 256, keepAliveTimeout: 10_000 });
      this.#pools.set(port, pool);
    }
    return pool;
  }

  /** The request's raw headers without hop-by-hop ones, and the X-Forwarded-* headers of this hop. */
  #forwardRawHeaders(req: IncomingMessage, prefix: string, secret: string | undefined): string[] {
    const out: string[] = [];
    const raw = req.rawHeaders;
    let prior: string | undefined;
    // Headers the client names in Connection are for this hop only (RFC 9110 7.6.1).
    const named = new Set((req.headers.connection ?? '').split(',').map((h) => h.trim().toLowerCase()).filter(Boolean));
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (HOP_BY_HOP.has(lower) || CLIENT_ONLY.has(lower) || named.has(lower)) continue;
      if (lower === 'authorization' && isPlatformAuthorization(raw[i + 1]!)) continue;
      if (lower === 'cookie') {
        const kept = scrubCookie(raw[i + 1]!);
        if (kept !== undefined) out.push(raw[i]!, kept);
        continue;
      }
      // X-Forwarded-For is a chain: what came before us is kept, our peer is added.
      if (lower === 'x-forwarded-for') prior = prior ? `${prior}, ${raw[i + 1]}` : raw[i + 1];
      else out.push(raw[i]!, raw[i + 1]!);
    }
    const remote = req.socket.remoteAddress ?? '';
    // Proto and host are this hop's own view: a client cannot make an app build links to another site.
    out.push(
      'x-forwarded-for', prior ? `${prior}, ${remote}` : remote,
      'x-forwarded-proto', 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http',
      'x-forwarded-host', req.headers.host ?? '',
      'x-forwarded-prefix', prefix,
    );
    if (secret) out.push(PROXY_SECRET_HEADER, secret);
    return out;
  }

  /** Tunnels a WebSocket (or any Upgrade) to the instance; false when the path is not an application's. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const parsed = parseAppPath(req.url ?? '');
    if (parsed === undefined) return false;
    // Node drops its own error handler from a socket it hands to 'upgrade': without one,
    // a client resetting the connection at any point would take the server down.
    socket.on('error', () => socket.destroy());
    const refuse = (status: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    if (parsed === 'bad') {
      refuse('400 Bad Request');
      return true;
    }
    const target = this.#lookup(parsed.project, parsed.instance);
    if (!target || target.state !== 'running' || !target.port) {
      refuse(target ? '503 Service Unavailable' : '404 Not Found');
      return true;
    }
    const raw = this.#forwardRawHeaders(req, parsed.prefix, target.secret);
    raw.push('connection', 'Upgrade', 'upgrade', req.headers.upgrade ?? 'websocket');
    const upstream = httpRequest({ host: '127.0.0.1', port: target.port, method: req.method, path: target.ingress === 'strip' ? parsed.rest : req.url!, headers: raw });
    // A client that goes away during the handshake takes its upstream request along, and a
    // handshake the app never answers ends after 30 s.
    const abandon = (): void => {
      upstream.destroy();
    };
    socket.once('close', abandon);
    upstream.setTimeout(30_000, () => {
      upstream.destroy();
      refuse('504 Gateway Timeout');
    });
    upstream.on('upgrade', (up, upSocket, upHead) => {
      upstream.setTimeout(0);
      socket.removeListener('close', abandon);
      let answer = `HTTP/1.1 ${up.statusCode} ${up.statusMessage}\r\n`;
      for (let i = 0; i < up.rawHeaders.length; i += 2) answer += `${up.rawHeaders[i]}: ${up.rawHeaders[i + 1]}\r\n`;
      socket.write(`${answer}\r\n`);
      if (upHead.length) socket.write(upHead);
      upSocket.pipe(socket).pipe(upSocket);
      const close = (): void => {
        upSocket.destroy();
        socket.destroy();
      };
      upSocket.on('error', close);
      socket.on('error', close);
      upSocket.on('close', close);
      socket.on('close', close);
    });
    upstream.on('response', (up) => {
      // The app refused the upgrade: its answer goes on, as a plain body on a closing connection.
      upstream.setTimeout(0);
      let out = `HTTP/1.1 ${up.statusCode} ${up.statusMessage}\r\n`;
      for (let i = 0; i < up.rawHeaders.length; i += 2) {
        const key = up.rawHeaders[i]!.toLowerCase();
        if (HOP_BY_HOP.has(key) || key === 'content-length') continue;
        out += `${up.rawHeaders[i]}: ${up.rawHeaders[i + 1]}\r\n`;
      }
      socket.write(`${out}connection: close\r\n\r\n`);
      up.on('error', () => socket.destroy());
      up.pipe(socket);
    });
    upstream.on('error', () => {
      if (!socket.destroyed) refuse('502 Bad Gateway');
    });
    if (head.length) upstream.write(head);
    upstream.end();
    return true;
  }

  /** Forgets the connections to a port whose instance is gone (ports are not reused for long). */
  forget(port: number): void {
    this.#fast?.forget(port);
    const pool = this.#pools.get(port);
    if (!pool) return;
    this.#pools.delete(port);
    void pool.close().catch(() => undefined);
  }

  close(): void {
    this.#fast?.close();
    for (const pool of this.#pools.values()) void pool.destroy();
    this.#pools.clear();
  }

  #route(parsed: { project: string; instance: string }, res: ServerResponse): ProxyTarget | undefined {
    const target = this.#lookup(parsed.project, parsed.instance);
    if (!target) {
      page(res, 404, 'No such application', `Project ${parsed.project} has no application instance named ${parsed.instance}. Launched applications: tessera app list.`);
      return undefined;
    }
    if (target.state === 'starting' || (target.state === 'running' && !target.port)) {
      page(res, 503, `${parsed.instance} is starting`, 'The application is starting; this page reloads until it is ready.', true);
      return undefined;
    }
    if (target.state !== 'running') {
      page(res, 503, target.state === 'failed' ? `${parsed.instance} failed` : `${parsed.instance} is stopped`, target.reason ?? `The application is ${target.state}; launch it again with tessera app launch.`);
      return undefined;
    }
    return target;
  }
}

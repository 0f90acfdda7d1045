import type { Socket } from 'node:net';
import type { ProxyTarget } from './app-paths.ts';
import { ClientConnection } from './client-connection.ts';
import { sweepQuietConnections } from './connection-sweep.ts';
import { UpstreamPool } from './upstream-pool.ts';

/**
 * The fast path of the application proxy: a lean HTTP/1.1 forwarder on the platform's
 * sockets, ahead of Node's HTTP server. It reads each request head of a connection
 * itself; a request to a running instance (the common case: a small GET or POST on a
 * keep-alive connection) is forwarded on a pooled connection to the instance, its
 * framing checked strictly both ways, and nothing else is parsed or copied. Anything
 * else (an API request, an upgrade, `Expect`, HTTP/1.0, an instance that is starting,
 * failed or unknown, a path to refuse or redirect) hands the connection, with the
 * bytes already read, to Node's HTTP server, where it stays: Fastify and the
 * SubpathProxy answer it as before.
 *
 * Ambiguous framing is refused with 400 and the connection closed, never guessed at:
 * Content-Length with Transfer-Encoding, more than one Content-Length, a
 * Transfer-Encoding other than `chunked`, obs-fold, characters outside the grammar,
 * bare CR or LF, a bad chunk size. The answer's framing (Content-Length, chunked,
 * close-delimited, HEAD, 204, 304, 1xx) is understood, so the connection carries the
 * next request. Bodies stream with backpressure both ways.
 *
 * Its files: http-head.ts and chunked-framing.ts read the framing, client-connection.ts
 * the requests, response-relay.ts the answers, upstream-pool.ts keeps the connections to
 * instances, connection-sweep.ts ends the quiet ones.
 */

/** The request headers the platform's Host and Origin checks read. */
export interface AdmitHeaders {
  host: string | undefined;
  origin: string | undefined;
  'sec-fetch-site': string | undefined;
  'x-forwarded-proto': string | undefined;
  cookie?: string | undefined;
  authorization?: string | undefined;
}

/** Timeouts of the fast path. */
export interface AppProxyFastPathTimeouts {
  /** A connection idle this long between requests, or this long sending one request head, is closed (Node's headersTimeout: 60 s). */
  headMs: number;
  /** An exchange where no byte moved either way this long ends: 504 when nothing was answered yet (undici's default: 300 s). */
  exchangeMs: number;
  /** How often connections are checked for both (their byte counters, so reads and writes pay nothing for it). */
  sweepMs: number;
}
const DEFAULT_TIMEOUTS: AppProxyFastPathTimeouts = { headMs: 60_000, exchangeMs: 300_000, sweepMs: 5_000 };

/**
 * Accepts the platform's connections ahead of Node's HTTP server (see the top of this
 * file). `handOff` gives a connection to the HTTP server.
 */
export class AppProxyFastPath {
  readonly pool = new UpstreamPool();
  readonly conns = new Set<ClientConnection>();
  /** Requests forwarded by the fast path (not handed to the HTTP server). */
  exchanges = 0;
  #closed = false;

  readonly timeouts: AppProxyFastPathTimeouts;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly lookup: (project: string, instance: string) => ProxyTarget | undefined,
    readonly handOffTo: (socket: Socket) => void,
    timeouts: Partial<AppProxyFastPathTimeouts> = {},
    /** Whether the fast path may forward a request; one it may not goes to the HTTP server (which refuses it). */
    readonly admit: (method: string, headers: AdmitHeaders, project: string, instance: string) => boolean = () => true,
    /**
     * Asked when `admit` says no: whether the caller may pass after all (access control's
     * own check, which grants `admit` for a few seconds). Unset: the HTTP server takes such
     * a request, and the connection with it.
     */
    readonly check?: (method: string, headers: AdmitHeaders, project: string, instance: string) => Promise<boolean>,
  ) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
  }

  accept(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.conns.add(new ClientConnection(this, socket));
    if (!this.#sweeper) {
      this.#sweeper = setInterval(() => this.#sweep(), this.timeouts.sweepMs);
      this.#sweeper.unref();
    }
  }

  /**
   * Ends what is abandoned: connections where no byte moved for too long (waiting for a
   * request head, or in an exchange), and pooled connections idle past their use.
   */
  #sweep(): void {
    const now = Date.now();
    sweepQuietConnections(this.conns, this.timeouts, now);
    this.pool.sweepIdle(now);
  }

  /** Closes the idle connections to a port whose instance is gone. */
  forget(port: number): void {
    this.pool.forget(port);
  }

  /** Ends every connection the fast path holds. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const conn of this.conns) conn.socket.destroy();
    this.conns.clear();
    this.pool.close();
  }
}

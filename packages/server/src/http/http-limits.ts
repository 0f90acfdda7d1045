import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { TesseraError } from '@tessera/model';
import type { ServerConfig } from '../config.ts';
import type { DomainLog } from '../domain.ts';

/** The HTTP server's resource limits (see "HTTP limits" in docs/guides/operations.md). */
export interface HttpLimits {
  /** Connections open at once; one more is closed as it arrives (0: no cap). */
  maxConnections: number;
  /** Time to send a request's head (its line and headers). */
  headersTimeoutMs: number;
  /** No byte for this long while the request body is read, or while an answer waits on the client: the connection is closed (0: off). */
  idleTimeoutMs: number;
  /** Slowest request body accepted, in bytes per second averaged over `minBodyRateWindowMs` (0: off). */
  minBodyBytesPerSecond: number;
  minBodyRateWindowMs: number;
}

export function httpLimitsOf(config: ServerConfig): HttpLimits {
  return {
    maxConnections: config.httpMaxConnections,
    headersTimeoutMs: config.httpHeadersTimeoutSeconds * 1000,
    idleTimeoutMs: config.httpIdleTimeoutSeconds * 1000,
    minBodyBytesPerSecond: config.httpMinBodyRateKb * 1024,
    minBodyRateWindowMs: config.httpMinBodyRateWindowSeconds * 1000,
  };
}

/**
 * Options for Node's HTTP server: the head has `headersTimeout`, and there is no absolute
 * time for a whole request (Node's `requestTimeout` of 300 s cut off honest uploads slower
 * than about 14 MB/s): the idle and minimum-rate checks of {@link RequestWatch} end a stalled
 * or trickling body instead.
 */
export function httpServerOptions(limits: HttpLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: 0,
    // How often Node looks for heads past their time (its default, 30 s, would let one take 90 s).
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(limits.headersTimeoutMs / 4))),
  };
}

interface Watched {
  req: IncomingMessage;
  res: ServerResponse;
  socket: Socket;
  /** Byte counters of the socket when last looked at, and since when neither moved while waiting on the client. */
  read: number;
  written: number;
  quietSince: number;
  /** Bytes read at each look while the body was being read (the minimum-rate window). */
  samples: { t: number; bytes: number }[];
}

const kb = (bytesPerSecond: number): string => `${Number((bytesPerSecond / 1024).toFixed(3))} KB/s`;
const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(3))} s`;

/**
 * Ends the requests that hold a connection without using it: a body that stalls (no byte
 * for `idleTimeoutMs`) or trickles (under `minBodyBytesPerSecond` over the window), and an
 * answer that waits on a client that does not read it. A body that is slow because the
 * server is not reading it (its socket is paused by backpressure) is not held against the
 * client. What waits on the server is left alone: the event stream, followed logs and
 * long answers write when they have something; upgraded connections (WebSockets) are
 * never watched. It compares the sockets' byte counters at each look, so reads and writes
 * pay nothing for it.
 */
export class RequestWatch {
  readonly #watched = new Set<Watched>();
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** Requests ended so far. */
  ended = 0;

  constructor(
    readonly limits: HttpLimits,
    readonly log: DomainLog,
  ) {
    const shortest = Math.min(...[limits.idleTimeoutMs, limits.minBodyBytesPerSecond > 0 ? limits.minBodyRateWindowMs : 0].filter((ms) => ms > 0), 4_000);
    this.#tickMs = Math.max(50, Math.floor(shortest / 4));
  }

  /** Applies the connection cap to `server` and logs the connections it closes (at most one line a minute). */
  capConnections(server: Server): void {
    if (this.limits.maxConnections <= 0) return;
    server.maxConnections = this.limits.maxConnections;
    let dropped = 0;
    let lastLog = 0;
    server.on('drop', (data?: { remoteAddress?: string }) => {
      dropped++;
      const now = Date.now();
      if (now - lastLog < 60_000) return;
      lastLog = now;
      this.log.warn(
        `HTTP: ${dropped} connection(s) closed as they arrived (the last from ${data?.remoteAddress ?? 'an unknown address'}): ` +
          `${this.limits.maxConnections} are open, the most allowed (TESSERA_HTTP_MAX_CONNECTIONS)`,
      );
      dropped = 0;
    });
  }

  /** Watches a request until its answer is done. */
  watch(req: IncomingMessage, res: ServerResponse): void {
    if (this.limits.idleTimeoutMs <= 0 && this.limits.minBodyBytesPerSecond <= 0) return;
    const socket = req.socket;
    const w: Watched = { req, res, socket, read: socket.bytesRead, written: socket.bytesWritten, quietSince: Date.now(), samples: [] };
    this.#watched.add(w);
    res.once('close', () => this.#watched.delete(w));
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#look(), this.#tickMs);
      this.#timer.unref();
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#watched.clear();
  }

  #look(): void {
    const now = Date.now();
    const { idleTimeoutMs, minBodyBytesPerSecond, minBodyRateWindowMs } = this.limits;
    for (const w of this.#watched) {
      const { req, res, socket } = w;
      if (socket.destroyed) {
        this.#watched.delete(w);
        continue;
      }
      const read = socket.bytesRead;
      const written = socket.bytesWritten;
      // Reading the body, and not paused by the server's own backpressure.
      const reading = !req.complete && !req.destroyed && !socket.isPaused();
      // The answer's bytes pile up because the client does not take them.
      const blocked = res.headersSent && socket.writableLength > 0;
      const moved = read !== w.read || written !== w.written;
      w.read = read;
      w.written = written;
      if (moved || !(reading || blocked)) w.quietSince = now;
      if (idleTimeoutMs > 0 && now - w.quietSince >= idleTimeoutMs) {
        this.#end(w, reading ? `no byte of the request body arrived for ${seconds(idleTimeoutMs)}` : `the client took no byte of the answer for ${seconds(idleTimeoutMs)}`, 'TESSERA_HTTP_IDLE_TIMEOUT_SECONDS');
        continue;
      }
      if (!reading || minBodyBytesPerSecond <= 0) {
        w.samples.length = 0;
        continue;
      }
      w.samples.push({ t: now, bytes: read });
      // The oldest look still needed: the last one at least a window ago.
      let i = 0;
      while (i + 1 < w.samples.length && now - w.samples[i + 1]!.t >= minBodyRateWindowMs) i++;
      if (i > 0) w.samples.splice(0, i);
      const first = w.samples[0]!;
      const span = now - first.t;
      if (span < minBodyRateWindowMs) continue;
      const rate = ((read - first.bytes) * 1000) / span;
      if (rate < minBodyBytesPerSecond) {
        this.#end(w, `the request body came at ${kb(rate)} over the last ${seconds(span)}, under the minimum of ${kb(minBodyBytesPerSecond)}`, 'TESSERA_HTTP_MIN_BODY_RATE_KB');
      }
    }
  }

  /**
   * Answers 408 when nothing was answered yet, and closes the connection. A handler that
   * reads the body gets the error from its stream and answers it (error-handler.ts), so
   * that its request ends as any refused one; else, or when it has not answered within a
   * second, the 408 is written here.
   */
  #end(w: Watched, why: string, setting: string): void {
    this.#watched.delete(w);
    this.ended++;
    const { req, res, socket } = w;
    const path = (req.url ?? '').split('?')[0];
    this.log.warn(`HTTP: closed the connection from ${socket.remoteAddress ?? 'an unknown address'}:${socket.remotePort ?? '?'} (${req.method} ${path}): ${why} (${setting})`);
    if (res.headersSent) {
      socket.destroy();
      return;
    }
    const err = new TesseraError('TESSERA_REQUEST_TIMEOUT', `${why} (${setting}); the request was cut off: send it again on a steadier connection, or ask the operator to change ${setting}`);
    // The rest of the body will not be read: the connection cannot carry another request.
    res.setHeader('connection', 'close');
    const handled = req.listenerCount('error') > 0;
    if (handled) {
      // The request ends with the error, and its socket stays open for the answer: an
      // incomplete request destroyed with its socket attached would take the socket down
      // (IncomingMessage's _destroy runs at once, so it is detached for that call only).
      const attached = req.socket;
      (req as { socket: Socket | null }).socket = null;
      try {
        req.destroy(err);
      } finally {
        req.socket = attached;
      }
    }
    setTimeout(() => {
      if (res.headersSent || socket.destroyed) return;
      const body = JSON.stringify(err.toJSON());
      res.writeHead(408, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }, handled ? 1_000 : 0).unref();
    // A client that does not read the answer either.
    setTimeout(() => socket.destroy(), 5_000).unref();
  }
}

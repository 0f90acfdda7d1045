import type { Socket } from 'node:net';
import type { AdmitHeaders, AppProxyFastPath } from './app-proxy-fast-path.ts';
import { APP_PREFIX, isPlatformAuthorization, pageHtml, parseAppPath, PROXY_SECRET_HEADER, scrubCookie } from './app-paths.ts';
import { ChunkedFraming } from './chunked-framing.ts';
import { DIGITS, HEAD_END, MAX_HEAD, parseHead, REQUEST_DROP } from './http-head.ts';
import { ResponseRelay, RSt } from './response-relay.ts';
import type { Upstream } from './upstream-pool.ts';

/** Pipelined bytes held while an answer is on its way, before the client is paused. */
const MAX_PIPELINED = 64 * 1024;

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const PREFIX = Buffer.from(APP_PREFIX, 'latin1');

/** Application paths parsed before (the same few URLs come again and again). */
const paths = new Map<string, ReturnType<typeof parseAppPath>>();
function appPath(url: string): ReturnType<typeof parseAppPath> {
  if (url.length > 256) return parseAppPath(url);
  let parsed = paths.get(url);
  if (parsed === undefined) {
    parsed = parseAppPath(url);
    if (paths.size >= 4096) paths.clear();
    paths.set(url, parsed);
  }
  return parsed;
}

/** Where a client connection is: reading a request head, in an exchange, or no longer the fast path's. */
/** Checking: the head is read, and whether the caller may pass is being asked (the socket is paused meanwhile). */
export const enum St { Head, Checking, Exchange, Gone }

/**
 * One client connection on the application proxy's fast path: reads its request heads,
 * forwards each request to its instance (ResponseRelay brings the answer back), and hands
 * the connection to Node's HTTP server at its first request the fast path does not take.
 */
export class ClientConnection extends ResponseRelay {
  state = St.Head;
  /** The request in `buf` was checked already (AppProxyFastPath.check): not admitted again means the HTTP server answers it. */
  checked = false;
  buf: Buffer | null = null;
  headSince = 0;
  clientEnded = false;
  /** For the sweep: bytes moved when it last looked, and since when nothing moved. */
  lastProgress = -1;
  quietSince = 0;
  /** The client is paused: by the instance's backpressure, or by pipelined bytes piling up. */
  pausedForUp = false;
  pausedForPipeline = false;
  reqHead = '';
  reqLeft = 0;
  reqChunks: ChunkedFraming | null = null;
  /** The scheme the client used: the fast path also takes the decrypted connections of an HTTPS server. */
  readonly proto: 'http' | 'https';

  readonly #onData = (chunk: Buffer): void => this.onData(chunk);
  readonly #onEnd = (): void => this.onEnd();
  readonly #onClose = (): void => this.onClose();
  readonly #onError = (): void => undefined; // 'close' follows
  readonly #onDrain = (): void => this.onDrain();

  constructor(fast: AppProxyFastPath, socket: Socket) {
    super(fast, socket);
    this.proto = 'encrypted' in socket && socket.encrypted === true ? 'https' : 'http';
    socket.setNoDelay(true);
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onClose);
    socket.on('error', this.#onError);
    socket.on('drain', this.#onDrain);
  }

  onData(chunk: Buffer): void {
    if (this.state === St.Head) {
      this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
      this.parse();
    } else if (this.state === St.Checking) {
      // A chunk that was on its way when the socket paused: kept for when the check answers.
      this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    } else if (this.state === St.Exchange) {
      if (!this.reqDone) {
        this.forwardBody(chunk);
      } else {
        // Pipelined: the next request waits for this answer.
        this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
        if (this.buf.length > MAX_PIPELINED && !this.pausedForPipeline) {
          this.pausedForPipeline = true;
          this.socket.pause();
        }
      }
    }
  }

  /** Reads the request heads in `buf`, one exchange at a time. */
  parse(): void {
    const buf = this.buf;
    if (!buf || this.state !== St.Head) return;
    // Is it an application's request at all? The request target follows the method.
    const sp = buf.indexOf(32);
    if (sp < 0 || sp > 24) {
      if (sp < 0 && buf.length <= 24) return; // more to come
      return this.handOff();
    }
    const n = Math.min(PREFIX.length, buf.length - sp - 1);
    if (buf.compare(PREFIX, 0, n, sp + 1, sp + 1 + n) !== 0) return this.handOff();
    const end = buf.indexOf(HEAD_END);
    if (end < 0) {
      if (buf.length > MAX_HEAD) return this.refuse(431, 'Request header fields too large', `The request head is over ${MAX_HEAD} bytes.`);
      if (this.headSince === 0) this.headSince = Date.now();
      else if (Date.now() - this.headSince > this.fast.timeouts.headMs) return this.refuse(408, 'Request timeout', 'The request head did not arrive in time.');
      return;
    }
    if (end > MAX_HEAD) return this.refuse(431, 'Request header fields too large', `The request head is over ${MAX_HEAD} bytes.`);
    this.headSince = 0;
    const parsed = parseHead(buf.toString('latin1', 0, end));
    if (!parsed) return this.refuse(400, 'Bad request', 'The request head is malformed: a control character, a bare CR or LF, a folded line, or a header line without a name and colon.');
    const m = REQUEST_LINE.exec(parsed.line);
    if (!m) return this.refuse(400, 'Bad request', 'The request line is malformed.');
    // HTTP/1.0 (its own keep-alive rules) is rare: Node's server takes it.
    if (m[3] === '0') return this.handOff();
    const method = m[1]!;
    const url = m[2]!;
    let cl = -1;
    let chunked = false;
    let hosts = 0;
    let host = '';
    let close = false;
    let named: Set<string> | undefined;
    let xff: string | undefined;
    let origin: string | undefined;
    let cookie: string | undefined;
    let authorization: string | undefined;
    let site: string | undefined;
    let proto: string | undefined;
    for (const [, lower, value] of parsed.fields) {
      switch (lower) {
        case 'content-length':
          if (cl >= 0) return this.refuse(400, 'Bad request', 'The request has more than one Content-Length.');
          if (!DIGITS.test(value)) return this.refuse(400, 'Bad request', 'The request has an invalid Content-Length.');
          cl = Number(value);
          break;
        case 'transfer-encoding':
          if (chunked || value.toLowerCase() !== 'chunked') return this.refuse(400, 'Bad request', 'The only Transfer-Encoding a request may have here is one "chunked".');
          chunked = true;
          break;
        case 'host':
          hosts++;
          host = value;
          break;
        case 'connection':
          for (const t of value.split(',')) {
            const token = t.trim().toLowerCase();
            if (token === 'close') close = true;
            else if (token === 'upgrade') return this.handOff();
            else if (token && token !== 'keep-alive') (named ??= new Set()).add(token);
          }
          break;
        case 'upgrade':
        case 'expect':
          return this.handOff();
        case 'x-forwarded-for':
          xff = xff ? `${xff}, ${value}` : value;
          break;
        case 'origin':
          // Two Origin headers: Node's server reads them (and the checks refuse them).
          if (origin !== undefined) return this.handOff();
          origin = value;
          break;
        case 'sec-fetch-site':
          site = value;
          break;
        case 'cookie':
          cookie = cookie === undefined ? value : `${cookie}; ${value}`;
          break;
        case 'authorization':
          authorization = value;
          break;
        case 'x-forwarded-proto':
          // Read for the Origin check (a TLS-terminating reverse proxy says https), not passed on.
          proto = value;
          break;
      }
    }
    if (cl >= 0 && chunked) return this.refuse(400, 'Bad request', 'The request has both Content-Length and Transfer-Encoding.');
    if (hosts !== 1) return this.refuse(400, 'Bad request', 'The request must have one Host header.');
    const app = appPath(url);
    // Paths to refuse or redirect, and instances that are not running: the SubpathProxy answers.
    if (!app || app === 'bad' || (app.rest === '/' && url === app.prefix)) return this.handOff();
    // A Host or Origin the platform refuses, or a caller it has not yet seen to be a member of
    // the project: its HTTP server answers (in the error format, or after checking access).
    const admitHeaders = { host, origin, 'sec-fetch-site': site, 'x-forwarded-proto': proto, cookie, authorization };
    if (!this.fast.admit(method, admitHeaders, app.project, app.instance)) {
      // A caller not seen a moment ago (the first request of a connection, mostly): ask, and
      // keep the connection on the fast path when they may pass; else the HTTP server answers.
      if (this.fast.check && !this.checked) return this.check(method, admitHeaders, app.project, app.instance);
      return this.handOff();
    }
    this.checked = false;
    const target = this.fast.lookup(app.project, app.instance);
    if (!target || target.state !== 'running' || !target.port) return this.handOff();

    let head = `${method} ${target.ingress === 'strip' ? app.rest : url} HTTP/1.1\r\n`;
    for (const [name, lower, value] of parsed.fields) {
      if (REQUEST_DROP.has(lower) || lower === 'x-forwarded-for' || named?.has(lower)) continue;
      if (lower === 'authorization' && isPlatformAuthorization(value)) continue;
      if (lower === 'cookie') {
        const kept = scrubCookie(value);
        if (kept !== undefined) head += `${name}: ${kept}\r\n`;
        continue;
      }
      head += `${name}: ${value}\r\n`;
    }
    const remote = this.socket.remoteAddress ?? '';
    head += `x-forwarded-for: ${xff ? `${xff}, ${remote}` : remote}\r\nx-forwarded-proto: ${this.proto}\r\nx-forwarded-host: ${host}\r\nx-forwarded-prefix: ${app.prefix}\r\n`;
    if (target.secret) head += `${PROXY_SECRET_HEADER}: ${target.secret}\r\n`;
    head += '\r\n';

    this.state = St.Exchange;
    this.method = method;
    this.reqHead = head;
    this.reqHasBody = chunked || cl > 0;
    this.reqLeft = chunked ? -1 : Math.max(cl, 0);
    this.reqChunks = chunked ? new ChunkedFraming() : null;
    this.reqDone = !this.reqHasBody;
    this.keepAlive = !close;
    this.retried = false;
    this.instance = app.instance;
    this.prefix = app.prefix;
    this.strip = target.ingress === 'strip';
    const rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    this.buf = null;
    this.fast.exchanges++;
    this.send(this.fast.pool.acquire(target.port), rest);
  }

  /** Sends the request head, and what of the body is here, to the instance. */
  override send(up: Upstream, body: Buffer | null): void {
    this.up = up;
    up.owner = this;
    this.upError = undefined;
    this.upPaused = false;
    this.upReusable = true;
    this.rState = RSt.Head;
    this.rbuf = null;
    this.rChunks = null;
    this.headSent = false;
    if (!body) {
      up.socket.write(this.reqHead, 'latin1');
      return;
    }
    up.socket.cork();
    up.socket.write(this.reqHead, 'latin1');
    if (this.reqDone) this.buf = body;
    else this.forwardBody(body);
    up.socket.uncork();
  }

  /** Passes on the bytes of the request body in `data`; what follows the body waits in `buf`. */
  forwardBody(data: Buffer): void {
    let used: number;
    if (this.reqChunks) {
      used = this.reqChunks.feed(data, 0);
      if (this.reqChunks.error) return this.abortRequest();
      if (this.reqChunks.done) this.reqDone = true;
    } else {
      used = Math.min(this.reqLeft, data.length);
      this.reqLeft -= used;
      if (this.reqLeft === 0) this.reqDone = true;
    }
    if (used > 0 && !this.up!.socket.write(used === data.length ? data : data.subarray(0, used)) && !this.pausedForUp) {
      this.pausedForUp = true;
      this.socket.pause();
    }
    if (used < data.length) this.buf = this.buf ? Buffer.concat([this.buf, data.subarray(used)]) : data.subarray(used);
    if (this.reqDone && this.rState === RSt.Done) this.finish();
  }

  /** The request body's framing is broken: nothing more can be read from this connection. */
  abortRequest(): void {
    this.dropUpstream();
    if (this.headSent) this.socket.destroy();
    else this.refuse(400, 'Bad request', 'The request has a malformed chunked body.');
  }

  override onUpDrain(): void {
    if (this.pausedForUp) {
      this.pausedForUp = false;
      if (!this.pausedForPipeline) this.socket.resume();
    }
  }

  onDrain(): void {
    if (this.upPaused && this.up) {
      this.upPaused = false;
      this.up.socket.resume();
    }
  }

  /** The exchange is over both ways: the instance's connection goes back to the pool, the next request is read. */
  override finish(): void {
    const up = this.up;
    if (up) {
      this.up = null;
      up.owner = null;
      if (this.upReusable && !up.socket.destroyed) {
        if (this.upPaused) up.socket.resume();
        this.fast.pool.release(up);
      } else {
        up.socket.destroy();
      }
    }
    this.upPaused = false;
    this.state = St.Head;
    if (!this.keepAlive || this.clientEnded) {
      this.state = St.Gone;
      this.socket.end();
      return;
    }
    if (this.pausedForPipeline || this.pausedForUp) {
      this.pausedForPipeline = false;
      this.pausedForUp = false;
      this.socket.resume();
    }
    if (this.buf) this.parse();
  }

  /** Called by the sweep: nothing moved for too long. */
  timedOut(): void {
    if (this.state !== St.Exchange) {
      this.socket.destroy();
      return;
    }
    this.dropUpstream();
    this.fail(504, `${this.instance} did not answer within ${this.fast.timeouts.exchangeMs / 1000} s.`);
  }

  /** Bytes moved on the connection and on its exchange's connection to the instance. */
  progress(): number {
    const s = this.socket;
    const up = this.up?.socket;
    return s.bytesRead + s.bytesWritten + (up ? up.bytesRead + up.bytesWritten : 0);
  }

  /** Answers with an error page and closes the connection. */
  override refuse(status: number, title: string, text: string): void {
    this.state = St.Gone;
    this.buf = null;
    const reasons: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 504: 'Gateway Timeout' };
    const body = pageHtml(title, text);
    this.socket.end(`HTTP/1.1 ${status} ${reasons[status] ?? ''}\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-store\r\n` +
      `connection: close\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    if (this.pausedForUp || this.pausedForPipeline) this.socket.resume();
  }

  onEnd(): void {
    this.clientEnded = true;
    if (this.state === St.Head) {
      this.state = St.Gone;
      this.socket.end();
    } else if (this.state === St.Exchange && !this.reqDone) {
      // The request body was cut off.
      this.dropUpstream();
      this.socket.destroy();
    }
  }

  onClose(): void {
    this.state = St.Gone;
    this.fast.conns.delete(this);
    this.dropUpstream();
  }

  /** Asks AppProxyFastPath.check about the request in `buf`, with the socket paused; then parses it again, or hands it off. */
  check(method: string, headers: AdmitHeaders, project: string, instance: string): void {
    this.state = St.Checking;
    this.socket.pause();
    const go = (ok: boolean): void => {
      if (this.state !== St.Checking) return; // closed meanwhile
      this.state = St.Head;
      this.checked = true;
      if (!ok) return this.handOff();
      if (!this.pausedForUp && !this.pausedForPipeline) this.socket.resume();
      this.parse();
    };
    this.fast.check!(method, headers, project, instance).then(go, () => go(false));
  }

  /** Node's HTTP server takes the connection from here, with what was read and not used. */
  handOff(): void {
    const socket = this.socket;
    this.state = St.Gone;
    this.fast.conns.delete(this);
    socket.removeListener('data', this.#onData);
    socket.removeListener('end', this.#onEnd);
    socket.removeListener('close', this.#onClose);
    socket.removeListener('error', this.#onError);
    socket.removeListener('drain', this.#onDrain);
    if (this.buf) socket.unshift(this.buf);
    this.buf = null;
    this.fast.handOffTo(socket);
    if (socket.isPaused()) socket.resume();
  }
}

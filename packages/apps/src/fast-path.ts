import { connect, type Socket } from 'node:net';
import { APP_PREFIX, pageHtml, parseAppPath, rewriteCookiePath, type ProxyTarget } from './app-paths.ts';

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
 */

/** Most bytes of a request head (Node's default, 16 KiB) and of an answer's head. */
const MAX_HEAD = 16 * 1024;
const MAX_ANSWER_HEAD = 64 * 1024;
/** Timeouts of the fast path. */
export interface FastPathTimeouts {
  /** A connection idle this long between requests, or this long sending one request head, is closed (Node's headersTimeout: 60 s). */
  headMs: number;
  /** An exchange where no byte moved either way this long ends: 504 when nothing was answered yet (undici's default: 300 s). */
  exchangeMs: number;
  /** How often connections are checked for both (their byte counters, so reads and writes pay nothing for it). */
  sweepMs: number;
}
const DEFAULT_TIMEOUTS: FastPathTimeouts = { headMs: 60_000, exchangeMs: 300_000, sweepMs: 5_000 };
/** A pooled connection idle longer than this is not reused: Node apps close theirs after 5 s. */
const POOL_IDLE_MS = 4_000;
const POOL_MAX_IDLE = 128;
/** Pipelined bytes held while an answer is on its way, before the client is paused. */
const MAX_PIPELINED = 64 * 1024;

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const DIGITS = /^\d{1,15}$/;
const HEAD_END = Buffer.from('\r\n\r\n');
const PREFIX = Buffer.from(APP_PREFIX, 'latin1');

/** Request headers that stay with this hop (the framing ones are checked and passed on as they are). */
const REQUEST_DROP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'proxy-connection',
  'forwarded', 'x-real-ip', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-prefix']);
const RESPONSE_DROP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'proxy-connection']);
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);

type Field = [name: string, lower: string, value: string];

/**
 * Anything a head may not have, checked over the whole head at once: a control
 * character, CR or LF other than as a CRLF pair, a line folded onto the one before
 * (obs-fold), a field line that does not begin with a name and a colon (so no
 * whitespace before the colon either).
 */
const HEAD_BAD = /[^\t\x20-\x7e\x80-\xff\r\n]|\r(?!\n)|(?<!\r)\n|\n[\t ]|\r\n(?![!#$%&'*+.^_`|~0-9A-Za-z-]+:)/;

/** Splits a head (without its final CRLF CRLF) into its first line and its fields; undefined when it is malformed. */
function parseHead(head: string): { line: string; fields: Field[] } | undefined {
  if (HEAD_BAD.test(head)) return undefined;
  let at = head.indexOf('\r\n');
  if (at < 0) return { line: head, fields: [] };
  const line = head.slice(0, at);
  const fields: Field[] = [];
  while (at >= 0) {
    const start = at + 2;
    const next = head.indexOf('\r\n', start);
    const end = next < 0 ? head.length : next;
    const colon = head.indexOf(':', start);
    let a = colon + 1;
    let b = end;
    while (a < b && (head.charCodeAt(a) === 32 || head.charCodeAt(a) === 9)) a++;
    while (b > a && (head.charCodeAt(b - 1) === 32 || head.charCodeAt(b - 1) === 9)) b--;
    const name = head.slice(start, colon);
    fields.push([name, name.toLowerCase(), head.slice(a, b)]);
    at = next;
  }
  return { line, fields };
}

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

/**
 * Follows chunked framing strictly, byte by byte outside the data: hex size (no sign, no
 * space, no 0x), chunk extensions of visible characters, CRLF everywhere, trailer fields
 * without obs-fold. The bytes are passed on as they came once they are known to be well-formed.
 */
class Chunked {
  #state = 0;
  #size = 0;
  #digits = 0;
  #left = 0;
  #lineBytes = 0;
  done = false;
  error = false;

  /** How far into `buf` (from `from`) the framing goes; stops at the message's end. */
  feed(buf: Buffer, from: number): number {
    let i = from;
    const n = buf.length;
    while (i < n && !this.done) {
      if (this.#state === 3) {
        const take = Math.min(this.#left, n - i);
        i += take;
        this.#left -= take;
        if (this.#left === 0) this.#state = 4;
        continue;
      }
      const c = buf[i++]!;
      switch (this.#state) {
        case 0: { // size
          const v = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (v >= 0 && this.#digits < 12) {
            this.#size = this.#size * 16 + v;
            this.#digits++;
          } else if (this.#digits > 0 && c === 59) { // ;
            this.#state = 1;
            this.#lineBytes = 0;
          } else if (this.#digits > 0 && c === 13) {
            this.#state = 2;
          } else {
            return this.#fail(i);
          }
          break;
        }
        case 1: // chunk extension
          if (c === 13) this.#state = 2;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.#lineBytes > 4096) return this.#fail(i);
          break;
        case 2: // LF after the size line
          if (c !== 10) return this.#fail(i);
          if (this.#size === 0) {
            this.#state = 6;
            this.#lineBytes = 0;
          } else {
            this.#state = 3;
            this.#left = this.#size;
          }
          break;
        case 4: // CR after data
          if (c !== 13) return this.#fail(i);
          this.#state = 5;
          break;
        case 5: // LF after data
          if (c !== 10) return this.#fail(i);
          this.#state = 0;
          this.#size = 0;
          this.#digits = 0;
          break;
        case 6: // start of a trailer line, or the final CRLF
          if (c === 13) this.#state = 9;
          else if (c === 32 || c === 9 || c < 32 || c === 127 || c === 58) return this.#fail(i);
          else this.#state = 7;
          break;
        case 7: // trailer line
          if (c === 13) this.#state = 8;
          else if ((c < 32 && c !== 9) || c === 127 || ++this.#lineBytes > MAX_HEAD) return this.#fail(i);
          break;
        case 8:
          if (c !== 10) return this.#fail(i);
          this.#state = 6;
          break;
        case 9:
          if (c !== 10) return this.#fail(i);
          this.done = true;
          break;
      }
    }
    return i;
  }

  #fail(i: number): number {
    this.error = true;
    return i;
  }
}

const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** A keep-alive connection to an instance. */
class Upstream {
  readonly socket: Socket;
  owner: ClientConn | null = null;
  idleSince = 0;
  reused = false;

  constructor(readonly fast: FastPath, readonly port: number) {
    // Read into one shared buffer, without the Readable stream's queue and events (a
    // good part of the CPU time per request); each read is copied out at once, since a
    // write may hold on to what it was given.
    const socket = connect({
      port,
      host: '127.0.0.1',
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array): boolean => {
          const chunk = Buffer.allocUnsafe(n);
          chunk.set(buf.subarray(0, n));
          // An idle connection has nothing to say; one that does is not trusted again.
          if (this.owner) this.owner.onUpData(chunk);
          else socket.destroy();
          return true;
        },
      },
    });
    this.socket = socket;
    // Flowing, so that the end of the stream is seen ('end').
    socket.resume();
    socket.on('end', () => this.owner?.onUpEnd(this));
    socket.on('close', () => {
      if (this.owner) this.owner.onUpClose(this);
      else fast.dropIdle(this);
    });
    socket.on('error', (err: Error) => {
      if (this.owner) this.owner.upError = err;
    });
    socket.on('drain', () => this.owner?.onUpDrain());
  }
}

const enum St { Head, Exchange, Gone }
const enum RSt { Head, Length, Chunked, Close, Done }

/** One client connection on the fast path. */
class ClientConn {
  readonly socket: Socket;
  readonly fast: FastPath;
  state = St.Head;
  buf: Buffer | null = null;
  headSince = 0;
  clientEnded = false;
  /** For the sweep: bytes moved when it last looked, and since when nothing moved. */
  lastProgress = -1;
  quietSince = 0;
  /** The client is paused: by the instance's backpressure, or by pipelined bytes piling up. */
  pausedForUp = false;
  pausedForPipeline = false;
  // The exchange in progress.
  up: Upstream | null = null;
  upError: Error | undefined;
  upPaused = false;
  upReusable = true;
  method = '';
  reqHead = '';
  reqHasBody = false;
  reqLeft = 0;
  reqChunks: Chunked | null = null;
  reqDone = true;
  keepAlive = true;
  retried = false;
  instance = '';
  prefix = '';
  strip = false;
  rState = RSt.Done;
  rbuf: Buffer | null = null;
  rLeft = 0;
  rChunks: Chunked | null = null;
  headSent = false;

  readonly #onData = (chunk: Buffer): void => this.onData(chunk);
  readonly #onEnd = (): void => this.onEnd();
  readonly #onClose = (): void => this.onClose();
  readonly #onError = (): void => undefined; // 'close' follows
  readonly #onDrain = (): void => this.onDrain();

  constructor(fast: FastPath, socket: Socket) {
    this.fast = fast;
    this.socket = socket;
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
      }
    }
    if (cl >= 0 && chunked) return this.refuse(400, 'Bad request', 'The request has both Content-Length and Transfer-Encoding.');
    if (hosts !== 1) return this.refuse(400, 'Bad request', 'The request must have one Host header.');
    const app = appPath(url);
    // Paths to refuse or redirect, and instances that are not running: the SubpathProxy answers.
    if (!app || app === 'bad' || (app.rest === '/' && url === app.prefix)) return this.handOff();
    const target = this.fast.lookup(app.project, app.instance);
    if (!target || target.state !== 'running' || !target.port) return this.handOff();

    let head = `${method} ${target.ingress === 'strip' ? app.rest : url} HTTP/1.1\r\n`;
    for (const [name, lower, value] of parsed.fields) {
      if (REQUEST_DROP.has(lower) || lower === 'x-forwarded-for' || named?.has(lower)) continue;
      head += `${name}: ${value}\r\n`;
    }
    const remote = this.socket.remoteAddress ?? '';
    head += `x-forwarded-for: ${xff ? `${xff}, ${remote}` : remote}\r\nx-forwarded-proto: http\r\nx-forwarded-host: ${host}\r\nx-forwarded-prefix: ${app.prefix}\r\n\r\n`;

    this.state = St.Exchange;
    this.method = method;
    this.reqHead = head;
    this.reqHasBody = chunked || cl > 0;
    this.reqLeft = chunked ? -1 : Math.max(cl, 0);
    this.reqChunks = chunked ? new Chunked() : null;
    this.reqDone = !this.reqHasBody;
    this.keepAlive = !close;
    this.retried = false;
    this.instance = app.instance;
    this.prefix = app.prefix;
    this.strip = target.ingress === 'strip';
    const rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    this.buf = null;
    this.fast.exchanges++;
    this.send(this.fast.acquire(target.port), rest);
  }

  /** Sends the request head, and what of the body is here, to the instance. */
  send(up: Upstream, body: Buffer | null): void {
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

  onUpDrain(): void {
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

  /** Bytes of the answer. */
  onUpData(chunk: Buffer): void {
    let data = chunk;
    while (this.rState === RSt.Head) {
      const rbuf = this.rbuf ? Buffer.concat([this.rbuf, data]) : data;
      const end = rbuf.indexOf(HEAD_END);
      if (end < 0) {
        if (rbuf.length > MAX_ANSWER_HEAD) return this.badGateway('sent an answer head that is too large');
        this.rbuf = rbuf;
        return;
      }
      this.rbuf = null;
      const parsed = parseHead(rbuf.toString('latin1', 0, end));
      if (!parsed) return this.badGateway('answered with a malformed head');
      const m = STATUS_LINE.exec(parsed.line);
      if (!m) return this.badGateway('answered with a malformed status line');
      const status = Number(m[2]);
      data = rbuf.subarray(end + 4);
      if (status < 200) {
        if (status === 101) return this.badGateway('switched protocols without being asked to');
        continue; // 100, 102, 103: informational; the final answer follows
      }
      this.answerHead(status, m[1] === '0', m[3] ?? '', parsed.fields, data);
      return;
    }
    this.answerBody(data);
  }

  /** Writes the answer's head, with the first bytes of its body. */
  answerHead(status: number, http10: boolean, reason: string, fields: Field[], body: Buffer): void {
    let cl = -1;
    let te: string | undefined;
    let upClose = http10;
    for (const [, lower, value] of fields) {
      if (lower === 'content-length') {
        if (cl >= 0 || !DIGITS.test(value)) return this.badGateway('answered with an invalid or repeated Content-Length');
        cl = Number(value);
      } else if (lower === 'transfer-encoding') {
        te = te === undefined ? value : `${te}, ${value}`;
      } else if (lower === 'connection') {
        if (/(^|,)\s*close\s*(,|$)/i.test(value)) upClose = true;
      }
    }
    if (te !== undefined && cl >= 0) return this.badGateway('answered with both Content-Length and Transfer-Encoding');
    if (this.method === 'HEAD' || status === 204 || status === 304) this.rState = RSt.Done;
    else if (te !== undefined) this.rState = /(^|,)\s*chunked\s*$/i.test(te) ? RSt.Chunked : RSt.Close;
    else if (cl >= 0) this.rState = cl === 0 ? RSt.Done : RSt.Length;
    else this.rState = RSt.Close;
    this.rLeft = cl;
    if (this.rState === RSt.Chunked) this.rChunks = new Chunked();
    if (upClose || this.rState === RSt.Close) this.upReusable = false;
    // A close-delimited answer ends the client's connection too.
    if (this.rState === RSt.Close) this.keepAlive = false;

    let head = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (const [name, lower, value] of fields) {
      if (RESPONSE_DROP.has(lower)) continue;
      let v = value;
      if (this.strip && lower === 'location' && v.startsWith('/') && !v.startsWith('//')) v = `${this.prefix}${v}`;
      else if (this.strip && lower === 'set-cookie') v = rewriteCookiePath(v, this.prefix);
      head += `${name}: ${v}\r\n`;
    }
    head += this.keepAlive ? '\r\n' : 'connection: close\r\n\r\n';
    // The head and the first bytes of the body go in one write.
    const n = this.bodyBytes(body);
    if (n < 0) return this.badGateway('answered with a malformed chunked body');
    this.headSent = true;
    if (n > 0) {
      const out = Buffer.allocUnsafe(head.length + n);
      out.write(head, 0, 'latin1');
      body.copy(out, head.length, 0, n);
      this.toClient(out);
    } else {
      this.toClient(head);
    }
    this.afterBody(body, n);
  }

  /** How many bytes of `data` belong to the answer's body; marks the body's end. */
  bodyBytes(data: Buffer): number {
    switch (this.rState) {
      case RSt.Length:
        return Math.min(this.rLeft, data.length);
      case RSt.Chunked: {
        const n = this.rChunks!.feed(data, 0);
        return this.rChunks!.error ? -1 : n;
      }
      case RSt.Close:
        return data.length;
      default:
        return 0;
    }
  }

  answerBody(data: Buffer): void {
    if (this.rState === RSt.Done) {
      // Bytes after a complete answer: this connection is not to be trusted again.
      if (data.length > 0) this.upReusable = false;
      return;
    }
    const n = this.bodyBytes(data);
    if (n < 0) return this.badBody();
    if (n > 0) this.toClient(n === data.length ? data : data.subarray(0, n));
    this.afterBody(data, n);
  }

  /** The answer's chunked framing is broken after its head went out: the client sees the connection end. */
  badBody(): void {
    this.dropUpstream();
    this.socket.destroy();
  }

  afterBody(data: Buffer, n: number): void {
    switch (this.rState) {
      case RSt.Done:
        this.answerDone(data.length > 0);
        break;
      case RSt.Length:
        this.rLeft -= n;
        if (this.rLeft === 0) this.answerDone(n < data.length);
        break;
      case RSt.Chunked:
        if (this.rChunks!.done) this.answerDone(n < data.length);
        break;
      default:
        break;
    }
  }

  toClient(data: Buffer | string): void {
    const ok = typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
    if (!ok && this.up && !this.upPaused) {
      this.upPaused = true;
      this.up.socket.pause();
    }
  }

  answerDone(extra: boolean): void {
    this.rState = RSt.Done;
    if (extra) this.upReusable = false;
    // The instance answered before the whole request came: the rest of it is not read.
    if (!this.reqDone) {
      this.upReusable = false;
      this.keepAlive = false;
      this.reqDone = true;
    }
    this.finish();
  }

  /** The exchange is over both ways: the instance's connection goes back to the pool, the next request is read. */
  finish(): void {
    const up = this.up;
    if (up) {
      this.up = null;
      up.owner = null;
      if (this.upReusable && !up.socket.destroyed) {
        if (this.upPaused) up.socket.resume();
        this.fast.release(up);
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

  onUpEnd(up: Upstream): void {
    if (this.up !== up || this.rState !== RSt.Close) return;
    this.upReusable = false;
    this.answerDone(false);
  }

  onUpClose(up: Upstream): void {
    if (this.up !== up) return;
    this.up = null;
    up.owner = null;
    // A pooled connection the instance closed just as it was reused: a request without
    // a body that can be repeated is sent again, once, on a new connection.
    if (this.rState === RSt.Head && !this.rbuf && up.reused && !this.reqHasBody && RETRYABLE.has(this.method) && !this.retried) {
      this.retried = true;
      this.send(this.fast.acquire(up.port, true), null);
      return;
    }
    const err = this.upError as NodeJS.ErrnoException | undefined;
    this.fail(502, `${this.instance} did not answer (${err?.code ?? err?.message ?? 'the connection closed'}); it may have just stopped. Its state and logs: tessera app list, tessera app logs ${this.instance}.`);
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

  badGateway(what: string): void {
    this.dropUpstream();
    this.fail(502, `${this.instance} ${what}.`);
  }

  dropUpstream(): void {
    const up = this.up;
    if (!up) return;
    this.up = null;
    up.owner = null;
    up.socket.destroy();
  }

  /** The exchange failed: an error page when nothing of the answer was sent, else the connection ends. */
  fail(status: 502 | 504, text: string): void {
    if (this.headSent) this.socket.destroy();
    else this.refuse(status, status === 502 ? 'The application did not answer' : 'The application did not answer in time', text);
  }

  /** Answers with an error page and closes the connection. */
  refuse(status: number, title: string, text: string): void {
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

/**
 * Accepts the platform's connections ahead of Node's HTTP server (see the top of this
 * file). `handOff` gives a connection to the HTTP server.
 */
export class FastPath {
  readonly #idle = new Map<number, Upstream[]>();
  readonly conns = new Set<ClientConn>();
  /** Requests forwarded by the fast path (not handed to the HTTP server). */
  exchanges = 0;
  #closed = false;

  readonly timeouts: FastPathTimeouts;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(
    readonly lookup: (project: string, instance: string) => ProxyTarget | undefined,
    readonly handOffTo: (socket: Socket) => void,
    timeouts: Partial<FastPathTimeouts> = {},
  ) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
  }

  accept(socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.conns.add(new ClientConn(this, socket));
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
    for (const conn of this.conns) {
      const progress = conn.progress();
      if (progress !== conn.lastProgress) {
        conn.lastProgress = progress;
        conn.quietSince = now;
      } else if (now - conn.quietSince >= (conn.state === St.Exchange ? this.timeouts.exchangeMs : this.timeouts.headMs)) {
        conn.timedOut();
      }
    }
    for (const idle of this.#idle.values()) {
      for (const up of idle.filter((u) => now - u.idleSince >= POOL_IDLE_MS)) up.socket.destroy();
    }
  }

  /** A pooled connection to the port (the most recently used first), or a new one. */
  acquire(port: number, fresh = false): Upstream {
    const idle = fresh ? undefined : this.#idle.get(port);
    if (idle) {
      const now = Date.now();
      for (let up = idle.pop(); up; up = idle.pop()) {
        if (!up.socket.destroyed && now - up.idleSince < POOL_IDLE_MS) {
          up.reused = true;
          return up;
        }
        up.socket.destroy();
      }
    }
    return new Upstream(this, port);
  }

  release(up: Upstream): void {
    let idle = this.#idle.get(up.port);
    if (!idle) this.#idle.set(up.port, (idle = []));
    if (this.#closed || idle.length >= POOL_MAX_IDLE) {
      up.socket.destroy();
      return;
    }
    up.idleSince = Date.now();
    idle.push(up);
  }

  dropIdle(up: Upstream): void {
    const idle = this.#idle.get(up.port);
    const i = idle?.indexOf(up) ?? -1;
    if (i >= 0) idle!.splice(i, 1);
  }

  /** Closes the idle connections to a port whose instance is gone. */
  forget(port: number): void {
    const idle = this.#idle.get(port);
    this.#idle.delete(port);
    for (const up of idle ?? []) up.socket.destroy();
  }

  /** Ends every connection the fast path holds. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const conn of this.conns) conn.socket.destroy();
    this.conns.clear();
    for (const port of [...this.#idle.keys()]) this.forget(port);
  }
}

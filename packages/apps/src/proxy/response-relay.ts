import type { Socket } from 'node:net';
import type { AppProxyFastPath } from './app-proxy-fast-path.ts';
import { ChunkedFraming } from './chunked-framing.ts';
import { DIGITS, HEAD_END, MAX_ANSWER_HEAD, parseHead, RESPONSE_DROP, type Field } from './http-head.ts';
import { confineCookie } from './app-paths.ts';
import type { Upstream, UpstreamOwner } from './upstream-pool.ts';

const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const RETRYABLE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Where the answer of an exchange is: its head, a body of known length, chunked, until the connection closes, or over. */
export const enum RSt { Head, Length, Chunked, Close, Done }

/**
 * The answer half of a client connection on the application proxy's fast path: reads
 * the instance's answer head strictly, passes the head on rewritten for this hop and the
 * body as it came, with backpressure, and knows where the answer ends so that both
 * connections carry the next exchange. The request half (ClientConnection) extends it.
 */
export abstract class ResponseRelay implements UpstreamOwner {
  readonly socket: Socket;
  readonly fast: AppProxyFastPath;
  // The exchange in progress.
  up: Upstream | null = null;
  upError: Error | undefined;
  upPaused = false;
  upReusable = true;
  method = '';
  reqHasBody = false;
  reqDone = true;
  keepAlive = true;
  retried = false;
  instance = '';
  prefix = '';
  strip = false;
  rState = RSt.Done;
  rbuf: Buffer | null = null;
  rLeft = 0;
  rChunks: ChunkedFraming | null = null;
  headSent = false;

  constructor(fast: AppProxyFastPath, socket: Socket) {
    this.fast = fast;
    this.socket = socket;
  }

  /** Sends the request head, and what of the body is here, to the instance. */
  abstract send(up: Upstream, body: Buffer | null): void;
  /** The exchange is over both ways. */
  abstract finish(): void;
  /** Answers with an error page and closes the connection. */
  abstract refuse(status: number, title: string, text: string): void;
  /** The instance reads the request body again. */
  abstract onUpDrain(): void;

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
    if (this.rState === RSt.Chunked) this.rChunks = new ChunkedFraming();
    if (upClose || this.rState === RSt.Close) this.upReusable = false;
    // A close-delimited answer ends the client's connection too.
    if (this.rState === RSt.Close) this.keepAlive = false;

    let head = `HTTP/1.1 ${status} ${reason}\r\n`;
    for (const [name, lower, value] of fields) {
      // Service-Worker-Allowed: an app may not register a service worker beyond its own path.
      if (RESPONSE_DROP.has(lower) || lower === 'service-worker-allowed') continue;
      let v = value;
      if (this.strip && lower === 'location' && v.startsWith('/') && !v.startsWith('//')) v = `${this.prefix}${v}`;
      else if (lower === 'set-cookie') v = confineCookie(v, this.prefix, this.strip);
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
      this.send(this.fast.pool.acquire(up.port, true), null);
      return;
    }
    const err = this.upError as NodeJS.ErrnoException | undefined;
    this.fail(502, `${this.instance} did not answer (${err?.code ?? err?.message ?? 'the connection closed'}); it may have just stopped. Its state and logs: tessera app list, tessera app logs ${this.instance}.`);
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
}

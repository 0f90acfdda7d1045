import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { SubpathProxy, type ProxyTarget } from '../subpath-proxy.ts';

// The fast path on raw sockets: a platform server as app.ts builds it (the proxy first,
// the "API" after it), an app in Node's HTTP server, and a scripted raw app for answers
// no well-behaved server gives. Module bindings are live: the test files read what the
// hooks of useProxyTestBed set.
export const P = '/applications/project/p/release';
export let app: Server;
export let raw: NetServer;
export let platform: Server;
export let proxy: SubpathProxy;
export let port: number;
export let appPort: number;
export let downPort: number;
/** Requests the app saw (method and path), and how the last upload ended. */
export const seen: string[] = [];
export let appBytesWritten = 0;
export let uploadEnded: Promise<string> = Promise.resolve('');
export const uploads: IncomingMessage[] = [];

/** Listens on a free port of 127.0.0.1. */
export function listen(server: Server | NetServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** Starts the app, the scripted raw app and the platform before the tests of a file; stops them after. */
export function useProxyTestBed(): void {
  beforeAll(async () => {
    app = createHttpServer((req, res) => {
      const path = req.url!.replace(/^\/applications\/project\/p\/release\/a/, '');
      seen.push(`${req.method} ${path}`);
      if (path === '/hello' || path.startsWith('/n/')) {
        res.end(`hello ${path}`);
      } else if (path === '/chunks') {
        res.write('ab');
        setTimeout(() => res.end('cd'), 5);
      } else if (path === '/headers') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(req.headers));
      } else if (path === '/echo') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        req.pipe(res);
      } else if (path === '/count') {
        uploadEnded = new Promise((resolve) => {
          req.on('close', () => resolve(req.complete ? 'complete' : 'aborted'));
        });
        let n = 0;
        req.on('data', (c: Buffer) => (n += c.length));
        req.on('end', () => res.end(String(n)));
      } else if (path === '/stall') {
        // Reads nothing: the upload must stop at the sockets' buffers.
        uploads.push(req);
        req.pause();
        uploadEnded = new Promise((resolve) => {
          req.on('close', () => resolve(req.complete ? 'complete' : 'aborted'));
        });
      } else if (path === '/drip') {
        // Ten bytes, 100 ms apart: slow, but never quiet for long.
        let n = 0;
        const timer = setInterval(() => {
          if (++n === 10) {
            clearInterval(timer);
            res.end('x');
          } else {
            res.write('x');
          }
        }, 100);
      } else if (path === '/nocontent') {
        res.writeHead(204);
        res.end();
      } else if (path === '/notmodified') {
        res.writeHead(304, { etag: '"x"' });
        res.end();
      } else if (path === '/redirect') {
        res.writeHead(302, { location: '/there', 'set-cookie': ['a=1; Path=/', 'b=2'] });
        res.end();
      } else if (path === '/sw') {
        // An app that tries to reach beyond its instance: a service worker for `/`, cookies for every path and a domain.
        res.writeHead(200, { 'service-worker-allowed': '/', 'set-cookie': ['a=1; Path=/', 'b=2; Domain=platform.test', `c=3; Path=${P}/a/x; HttpOnly`], 'content-length': '2' });
        res.end('sw');
      } else if (path.startsWith('/bytes/')) {
        let left = Number(path.slice(7));
        appBytesWritten = 0;
        res.writeHead(200, { 'content-length': String(left) });
        const chunk = Buffer.alloc(64 * 1024, 97);
        const more = (): void => {
          while (left > 0) {
            const piece = chunk.subarray(0, Math.min(chunk.length, left));
            left -= piece.length;
            appBytesWritten += piece.length;
            if (!res.write(piece)) return void res.once('drain', more);
          }
          res.end();
        };
        more();
      } else {
        res.writeHead(404);
        res.end('not found');
      }
    });
    appPort = await listen(app);
    // Scripted answers, by the path of the request.
    raw = createNetServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (data) => {
        const path = /^\S+ (\S+)/.exec(data.toString('latin1'))![1]!.replace(/^.*\/release\/raw/, '');
        seen.push(`raw ${path}`);
        if (path === '/cut') {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789');
          setTimeout(() => socket.destroy(), 20);
        } else if (path === '/badchunk') {
          socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n');
          setTimeout(() => socket.write('zz\r\n'), 20);
        } else if (path === '/badchunk-at-once') {
          socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n');
        } else if (path === '/clte') {
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
        } else if (path === '/untilclose') {
          socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it, until the end');
        } else if (path === '/hints') {
          socket.write('HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        } else if (path === '/silent') {
          socket.destroy();
        }
        // '/never': no answer at all.
      });
    });
    const rawPort = await listen(raw);
    const closed = createNetServer();
    downPort = await listen(closed);
    await new Promise((r) => closed.close(r));

    const targets: Record<string, ProxyTarget> = {
      a: { state: 'running', port: appPort, ingress: 'subpath', reason: null },
      s: { state: 'running', port: appPort, ingress: 'strip', reason: null },
      raw: { state: 'running', port: rawPort, ingress: 'subpath', reason: null },
      down: { state: 'running', port: downPort, ingress: 'subpath', reason: null },
      booting: { state: 'starting', port: null, ingress: 'subpath', reason: null },
    };
    proxy = new SubpathProxy((project, instance) => (project === 'p' ? targets[instance] : undefined));
    platform = createHttpServer((req, res) => {
      if (!proxy.handle(req, res)) res.end(`api ${req.method} ${req.url}`);
    });
    platform.on('upgrade', (req, socket, head) => {
      if (!proxy.upgrade(req, socket, head)) socket.destroy();
    });
    proxy.attach(platform);
    port = await listen(platform);
    // The app answers s's requests with the prefix stripped.
    targets.s!.port = appPort;
  });

  afterAll(async () => {
    proxy.close();
    platform.closeAllConnections();
    app.closeAllConnections();
    await Promise.all([platform, app, raw].map((s) => new Promise((r) => s.close(r))));
  });

  beforeEach(() => {
    seen.length = 0;
  });
}

/** A client on a raw socket: what it sent is exactly what the proxy reads. */
export class Client {
  readonly socket: Socket;
  data = Buffer.alloc(0);
  closed = false;
  readonly #waiters = new Set<() => void>();

  constructor(to = port) {
    this.socket = connect({ port: to, host: '127.0.0.1' });
    this.socket.on('data', (d: Buffer) => {
      this.data = Buffer.concat([this.data, d]);
      for (const w of this.#waiters) w();
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters) w();
    });
  }

  send(data: string | Buffer): this {
    this.socket.write(data);
    return this;
  }

  get text(): string {
    return this.data.toString('latin1');
  }

  /** Waits until `n` whole answers arrived (their framing read by `answers`), or the connection closed. */
  async answers(n: number, methods: string[] = []): Promise<Answer[]> {
    await this.until(() => readAnswers(this.data, methods).length >= n || this.closed);
    return readAnswers(this.data, methods);
  }

  until(done: () => boolean, ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        this.#waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out; received: ${this.text.slice(0, 500)}`));
      }, ms);
      this.#waiters.add(check);
      check();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The complete answers in `data`, framed by Content-Length, chunked or (for HEAD, 204, 304) no body. */
export function readAnswers(data: Buffer, methods: string[]): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf('\r\n\r\n', at);
    if (end < 0) return out;
    const lines = data.toString('latin1', at, end).split('\r\n');
    const status = Number(lines[0]!.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      const k = l.slice(0, i).toLowerCase();
      headers[k] = headers[k] ? `${headers[k]}\n${l.slice(i + 1).trim()}` : l.slice(i + 1).trim();
    }
    let p = end + 4;
    let body = '';
    if (status < 200) {
      at = p;
      continue;
    }
    if (methods[out.length] === 'HEAD' || status === 204 || status === 304) {
      // no body
    } else if (headers['transfer-encoding'] === 'chunked') {
      for (;;) {
        const le = data.indexOf('\r\n', p);
        if (le < 0) return out;
        const size = parseInt(data.toString('latin1', p, le), 16);
        if (!Number.isInteger(size)) throw new Error(`not a chunk size at ${p}: ${data.toString('latin1', p, le)}`);
        if (data.length < le + 2 + size + 2) return out;
        body += data.toString('latin1', le + 2, le + 2 + size);
        p = le + 2 + size + 2;
        if (size === 0) break;
      }
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (data.length < p + n) return out;
      body = data.toString('latin1', p, p + n);
      p += n;
    } else {
      body = data.toString('latin1', p);
      p = data.length;
    }
    out.push({ status, headers, body });
    at = p;
  }
}

/** A GET request head. */
export const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: platform.test\r\n${extra}\r\n`;

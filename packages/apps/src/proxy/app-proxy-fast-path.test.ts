import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SubpathProxy } from './subpath-proxy.ts';
import { app, appBytesWritten, appPort, Client, get, listen, P, port, proxy, raw, readAnswers, seen, uploadEnded, uploads, useProxyTestBed } from './__fixtures__/proxy-test-bed.ts';

// The fast path on raw sockets: a platform server as app.ts builds it (the proxy first,
// the "API" after it), an app in Node's HTTP server, and a scripted raw app for answers
// no well-behaved server gives (__fixtures__/proxy-test-bed.ts).
useProxyTestBed();

describe('the fast path', () => {
  it('forwards a request to a running instance with the X-Forwarded headers of this hop, and keeps the connection', async () => {
    const before = proxy.fastExchanges;
    const c = new Client().send(get(`${P}/a/headers`, 'X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Host: evil.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nX-Kept: yes\r\n'));
    const [a] = await c.answers(1);
    expect(a!.status).toBe(200);
    const h = JSON.parse(a!.body) as Record<string, string>;
    expect(h).toMatchObject({
      host: 'platform.test', 'x-forwarded-for': '10.0.0.1, 127.0.0.1', 'x-forwarded-host': 'platform.test',
      'x-forwarded-proto': 'http', 'x-forwarded-prefix': `${P}/a`, 'x-kept': 'yes',
    });
    expect(h['x-secret']).toBeUndefined();
    expect(proxy.fastExchanges).toBe(before + 1);
    // The same connection carries the next request.
    c.send(get(`${P}/a/hello`));
    const answers = await c.answers(2);
    expect(answers[1]).toMatchObject({ status: 200, body: `hello /hello` });
    expect(c.closed).toBe(false);
    expect(proxy.fastExchanges).toBe(before + 2);
    c.close();
  });

  it('closes the connection after the answer when the client asks for it, and when the client half-closes', async () => {
    const c = new Client().send(get(`${P}/a/n/1`, 'Connection: close\r\n') + get(`${P}/a/n/2`));
    await c.until(() => c.closed);
    const answers = readAnswers(c.data, []);
    expect(answers.map((a) => a.body)).toEqual(['hello /n/1']);
    expect(answers[0]!.headers.connection).toBe('close');
    expect(seen).toEqual(['GET /n/1']);
    // A client that sends its request and ends its side still gets the whole answer.
    const d = new Client().send(get(`${P}/a/n/3`));
    d.socket.end();
    await d.until(() => d.closed);
    expect(readAnswers(d.data, []).map((a) => a.body)).toEqual(['hello /n/3']);
  });

  it('answers pipelined requests in order', async () => {
    const c = new Client().send(get(`${P}/a/n/1`) + get(`${P}/a/n/2`) + `POST ${P}/a/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello` + get(`${P}/a/n/3`));
    const answers = await c.answers(4);
    expect(answers.map((a) => a.body)).toEqual(['hello /n/1', 'hello /n/2', 'hello', 'hello /n/3']);
    expect(seen).toEqual(['GET /n/1', 'GET /n/2', 'POST /echo', 'GET /n/3']);
    c.close();
  });

  it('gives a keep-alive connection to the API server from its first request that is not an application\'s, and it stays there', async () => {
    const before = proxy.fastExchanges;
    const c = new Client().send(get(`${P}/a/n/1`));
    await c.answers(1);
    c.send(get('/api/health'));
    await c.answers(2);
    c.send(get(`${P}/a/n/2`));
    const answers = await c.answers(3);
    expect(answers.map((a) => a.body)).toEqual(['hello /n/1', 'api GET /api/health', 'hello /n/2']);
    // The third went through the SubpathProxy behind the HTTP server.
    expect(proxy.fastExchanges).toBe(before + 1);
    c.close();

    // API first, then an application, pipelined in one write.
    const d = new Client().send(get('/api/a') + get(`${P}/a/n/3`) + get('/api/b'));
    expect((await d.answers(3)).map((a) => a.body)).toEqual(['api GET /api/a', 'hello /n/3', 'api GET /api/b']);
    d.close();
  });

  it('streams chunked request bodies (extensions and trailers too) and chunked answers', async () => {
    const c = new Client().send(`POST ${P}/a/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n`);
    await new Promise((r) => setTimeout(r, 20));
    c.send('7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n' + get(`${P}/a/chunks`));
    const answers = await c.answers(2);
    expect(answers[0]).toMatchObject({ status: 200, body: 'hello, world' });
    expect(answers[1]).toMatchObject({ status: 200, body: 'abcd', headers: { 'transfer-encoding': 'chunked' } });
    expect(c.closed).toBe(false);
    c.close();
  });

  it('knows that HEAD, 204 and 304 answers have no body, and reads on', async () => {
    const c = new Client().send(`HEAD ${P}/a/hello HTTP/1.1\r\nHost: x\r\n\r\n` + get(`${P}/a/nocontent`) + get(`${P}/a/notmodified`) + get(`${P}/a/n/after`));
    const answers = await c.answers(4, ['HEAD']);
    expect(answers.map((a) => a.status)).toEqual([200, 204, 304, 200]);
    expect(answers[0]!.body).toBe('');
    expect(answers[3]!.body).toBe('hello /n/after');
    c.close();
  });

  it('skips informational answers, and ends the connection after a close-delimited answer', async () => {
    const c = new Client().send(get(`${P}/raw/hints`));
    expect((await c.answers(1))[0]).toMatchObject({ status: 200, body: 'ok' });
    c.close();
    const d = new Client().send(get(`${P}/raw/untilclose`));
    await d.until(() => d.closed);
    expect(d.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(d.text).toMatch(/\r\nconnection: close\r\n/);
    expect(d.text.endsWith('\r\n\r\nall of it, until the end')).toBe(true);
  });

  it('rewrites the path, redirects and cookie paths of an instance with ingress "strip"', async () => {
    const c = new Client().send(get(`${P}/s/redirect`));
    const [a] = await c.answers(1);
    expect(seen).toEqual(['GET /redirect']);
    expect(a!.headers.location).toBe(`${P}/s/there`);
    expect(a!.headers['set-cookie']).toBe(`a=1; Path=${P}/s/\nb=2; Path=${P}/s/`);
    c.close();
  });

  it.each([
    ['Content-Length with Transfer-Encoding', 'Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['Transfer-Encoding with Content-Length', 'Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n'],
    ['two Content-Lengths', 'Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc'],
    ['a list in Content-Length', 'Content-Length: 3, 3\r\n\r\nabc'],
    ['a signed Content-Length', 'Content-Length: +3\r\n\r\nabc'],
    ['a Transfer-Encoding that is not chunked', 'Transfer-Encoding: gzip\r\n\r\nabc'],
    ['chunked twice', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['obs-fold', 'X-A: 1\r\n folded: yes\r\nContent-Length: 0\r\n\r\n'],
    ['whitespace before the colon', 'Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n'],
    ['a bare LF in a header', 'X-A: 1\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['a bare CR in a header', 'X-A: 1\rContent-Length: 5\r\n\r\nhello'],
    ['a NUL in a value', 'X-A: a\0b\r\n\r\n'],
  ])('refuses %s with 400 and closes the connection; the smuggled request never reaches the app', async (_name, rest) => {
    const smuggled = get(`${P}/a/n/smuggled`);
    const c = new Client().send(`POST ${P}/a/echo HTTP/1.1\r\nHost: x\r\n${rest}${smuggled}`);
    await c.until(() => c.closed);
    expect(c.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(seen).toEqual([]);
  });

  it.each([
    ['a size that is not hex', 'zz\r\nhello\r\n0\r\n\r\n'],
    ['a negative size', '-5\r\nhello\r\n0\r\n\r\n'],
    ['a 0x size', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['a space before the size', ' 5\r\nhello\r\n0\r\n\r\n'],
    ['data longer than its size', '3\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF after the size', '5\nhello\r\n0\r\n\r\n'],
    ['an overlong size', '10000000000000\r\nhello\r\n0\r\n\r\n'],
  ])('refuses a chunked body with %s; the smuggled request never reaches the app', async (_name, body) => {
    const c = new Client().send(`POST ${P}/a/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}${get(`${P}/a/n/smuggled`)}`);
    await c.until(() => c.closed);
    expect(c.text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(seen.filter((s) => s.includes('smuggled'))).toEqual([]);
  });

  it('refuses a request without a Host, or with two', async () => {
    for (const head of [`GET ${P}/a/n/1 HTTP/1.1\r\n\r\n`, `GET ${P}/a/n/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`]) {
      const c = new Client().send(head);
      await c.until(() => c.closed);
      expect(c.text).toMatch(/^HTTP\/1\.1 400 /);
    }
    expect(seen).toEqual([]);
  });

  it('answers 502 with a page when the instance does not answer, and when it answers with ambiguous framing', async () => {
    for (const path of [`${P}/down/`, `${P}/raw/silent`, `${P}/raw/clte`, `${P}/raw/badchunk-at-once`]) {
      const c = new Client().send(get(path));
      const [a] = await c.answers(1);
      expect(a!.status).toBe(502);
      expect(a!.body).toContain('The application did not answer');
      c.close();
    }
  });

  it('ends the client connection when the instance closes in the middle of a body, or breaks its chunked framing', async () => {
    for (const [path, body] of [['cut', '0123456789'], ['badchunk', '2\r\nok\r\n']]) {
      const c = new Client().send(get(`${P}/raw/${path}`));
      await c.until(() => c.closed);
      expect(c.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(c.text.endsWith(`\r\n\r\n${body}`)).toBe(true);
    }
  });

  it('survives a client reset in the middle of an upload; the app sees the request aborted', async () => {
    const c = new Client().send(`POST ${P}/a/count HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(100_000)}`);
    await new Promise((r) => setTimeout(r, 100));
    c.socket.resetAndDestroy();
    expect(await uploadEnded).toBe('aborted');
    const d = new Client().send(get(`${P}/a/n/still-there`));
    expect((await d.answers(1))[0]!.body).toBe('hello /n/still-there');
    d.close();
  });

  it('holds back an upload the app does not read: what the client sent stops at the sockets\' buffers', async () => {
    const c = new Client().send(`POST ${P}/a/stall HTTP/1.1\r\nHost: x\r\nContent-Length: ${32 * 1024 * 1024}\r\n\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 120);
    for (let i = 0; i < 32; i++) c.socket.write(chunk);
    await new Promise((r) => setTimeout(r, 500));
    const accepted = c.socket.bytesWritten - c.socket.writableLength;
    // Three sockets' buffers (client, proxy both sides, app) hold a few MB at most; buffering would take all 32.
    expect(accepted).toBeLessThan(12 * 1024 * 1024);
    c.close();
    // A paused request sees its connection end once it reads again.
    uploads.at(-1)!.resume();
    expect(await uploadEnded).toBe('aborted');
  });

  it('streams a 32 MB upload and a 64 MB download through, with backpressure', async () => {
    const up = new Client().send(`POST ${P}/a/count HTTP/1.1\r\nHost: x\r\nContent-Length: ${32 * 1024 * 1024}\r\n\r\n`);
    const chunk = Buffer.alloc(1024 * 1024, 120);
    for (let i = 0; i < 32; i++) {
      if (!up.socket.write(chunk)) await new Promise((r) => up.socket.once('drain', r));
    }
    expect((await up.answers(1))[0]!.body).toBe(String(32 * 1024 * 1024));
    up.close();

    const size = 64 * 1024 * 1024;
    const down = connect({ port, host: '127.0.0.1' });
    down.write(get(`${P}/a/bytes/${size}`));
    let received = 0;
    down.on('data', (d: Buffer) => (received += d.length));
    // A client that does not read stops the app: it has written little more than what the sockets hold.
    down.pause();
    await new Promise((r) => setTimeout(r, 500));
    expect(appBytesWritten).toBeGreaterThan(0);
    expect(appBytesWritten).toBeLessThan(16 * 1024 * 1024);
    down.resume();
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (received >= size) resolve();
      };
      down.on('data', check);
      check();
    });
    expect(received).toBeGreaterThan(size);
    down.destroy();
  });

  it('hands rare cases to the HTTP server: unknown and starting instances, path tricks, the missing slash, Expect, HTTP/1.0', async () => {
    const before = proxy.fastExchanges;
    const cases: [string, number][] = [
      [get(`${P}/nope/`), 404],
      [get(`${P}/booting/`), 503],
      [get(`${P}/a/%2e%2e/b/`), 400],
      [get(`${P}/a`), 308],
      [`POST ${P}/a/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nok`, 200],
      [`GET ${P}/a/hello HTTP/1.0\r\nHost: x\r\n\r\n`, 200],
    ];
    for (const [request, status] of cases) {
      const c = new Client().send(request);
      const [a] = await c.answers(1);
      expect(a!.status, request).toBe(status);
      c.close();
    }
    expect(proxy.fastExchanges).toBe(before);
  });

  it('refuses a request head over 16 KiB with 431', async () => {
    const c = new Client().send(`GET ${P}/a/hello HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(17 * 1024)}\r\n\r\n`);
    await c.until(() => c.closed);
    expect(c.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(seen).toEqual([]);
  });

  it('reuses its connections to the app, and opens a new one when the app closed an idle one', async () => {
    const c = new Client().send(get(`${P}/a/n/1`));
    await c.answers(1);
    // The app closes its idle keep-alive connections (as after its keepAliveTimeout).
    app.closeIdleConnections();
    await new Promise((r) => setTimeout(r, 50));
    c.send(get(`${P}/a/n/2`));
    const answers = await c.answers(2);
    expect(answers[1]!.body).toBe('hello /n/2');
    c.close();
  });
});

describe('the fast path\'s timeouts', () => {
  let quick: Server;
  let quickProxy: SubpathProxy;
  let quickPort: number;
  beforeAll(async () => {
    const rawPort = (raw.address() as AddressInfo).port;
    quickProxy = new SubpathProxy((_p, instance) => ({ state: 'running', port: instance === 'raw' ? rawPort : appPort, ingress: 'subpath', reason: null }));
    quick = createHttpServer((req, res) => {
      if (!quickProxy.handle(req, res)) res.end('api');
    });
    quickProxy.attach(quick, { headMs: 400, exchangeMs: 400, sweepMs: 50 });
    quickPort = await listen(quick);
  });
  afterAll(async () => {
    quickProxy.close();
    await new Promise((r) => quick.close(r));
  });
  const client = (): Client => new Client(quickPort);

  it('closes a connection that stops in the middle of a request head, and one left idle between requests', async () => {
    const c = client().send(`GET ${P}/a/hello HTTP/1.1\r\nHost:`);
    const t = Date.now();
    await c.until(() => c.closed, 3000);
    expect(Date.now() - t).toBeGreaterThanOrEqual(350);
    expect(c.text).toBe('');
    const d = client().send(get(`${P}/a/hello`));
    await d.answers(1);
    await d.until(() => d.closed, 3000);
    expect(readAnswers(d.data, [])).toHaveLength(1);
  });

  it('answers 504 when the app says nothing, and leaves alone an answer that is slow but moving', async () => {
    const c = client().send(get(`${P}/raw/never`));
    const [a] = await c.answers(1);
    expect(a!.status).toBe(504);
    c.close();
    const d = client().send(get(`${P}/a/drip`));
    const [b] = await d.answers(1);
    expect(b).toMatchObject({ status: 200, body: 'x'.repeat(10) });
    d.close();
  });
});

describe('the fast path and access control', () => {
  let gated: Server;
  let gatedProxy: SubpathProxy;
  let gatedPort: number;
  const granted = new Set<string>();
  let asked = 0;
  beforeAll(async () => {
    gatedProxy = new SubpathProxy(() => ({ state: 'running', port: appPort, ingress: 'subpath', reason: null }));
    // As the platform wires it: admit only callers granted a moment ago; ask access control about the others.
    gatedProxy.admit = (_m, headers) => granted.has(headers.authorization ?? '');
    gatedProxy.check = async (_m, headers) => {
      asked++;
      await new Promise((r) => setTimeout(r, 20)); // a database lookup
      if (headers.authorization !== 'Bearer member') return false;
      granted.add(headers.authorization);
      return true;
    };
    // What the fast path hands off, the platform's HTTP server refuses here.
    gated = createHttpServer((_req, res) => {
      res.writeHead(404);
      res.end('refused by the server');
    });
    gatedProxy.attach(gated);
    gatedPort = await listen(gated);
  });
  afterAll(async () => {
    gatedProxy.close();
    await new Promise((r) => gated.close(r));
  });

  it("asks about a caller it has not seen and keeps the connection when they may pass; hands it off when not", async () => {
    const before = gatedProxy.fastExchanges;
    const c = new Client(gatedPort).send(get(`${P}/a/n/1`, 'Authorization: Bearer member\r\n') + get(`${P}/a/n/2`, 'Authorization: Bearer member\r\n'));
    const answers = await c.answers(2);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(gatedProxy.fastExchanges - before).toBe(2);
    expect(asked).toBe(1);
    c.close();

    const d = new Client(gatedPort).send(get(`${P}/a/n/3`, 'Authorization: Bearer outsider\r\n'));
    const [refused] = await d.answers(1);
    expect(refused).toMatchObject({ status: 404, body: 'refused by the server' });
    expect(gatedProxy.fastExchanges - before).toBe(2);
    d.close();
  });
});

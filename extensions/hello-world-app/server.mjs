// hello-world-app: a web app that serves under its subpath (INGRESS_PATH) on PORT, as
// Tessera's application contract asks. Node's standard library only.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';

const port = Number(process.env.PORT);
const base = process.env.INGRESS_PATH ?? '';
const name = process.env.DISPLAY_NAME ?? 'Tessera';
const escape = (s) => s.replace(/[<&"]/g, (c) => ({ '<': '&lt;', '&': '&amp;', '"': '&quot;' })[c]);

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  if (!url.pathname.startsWith(`${base}/`)) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end(`not under ${base}/\n`);
    return;
  }
  const path = url.pathname.slice(base.length);
  if (path === '/healthz') {
    res.end('ok\n');
  } else if (path === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><meta charset="utf-8"><title>Hello</title><h1>Hello, ${escape(name)}!</h1>
<p>Served by an application instance at <code>${escape(base)}/</code>.</p>
<form method="post" action="echo"><input name="text" value="hi"><button>Echo</button></form>`);
  } else if (path === '/echo' && req.method === 'POST') {
    // Streams the body back as it comes: nothing is held in memory.
    res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/octet-stream' });
    req.pipe(res);
  } else if (path === '/headers') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
  } else if (path === '/redirect') {
    res.writeHead(302, { location: `${base}/` });
    res.end();
  } else if (path === '/cookie') {
    res.writeHead(200, { 'set-cookie': `visited=yes; Path=${base}/; HttpOnly`, 'content-type': 'text/plain' });
    res.end('cookie set\n');
  } else if (path.startsWith('/bytes/')) {
    const n = Number(path.slice('/bytes/'.length));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n) });
    const chunk = Buffer.alloc(64 * 1024, 97);
    let left = n;
    const more = () => {
      while (left > 0) {
        const piece = chunk.subarray(0, Math.min(chunk.length, left));
        left -= piece.length;
        if (!res.write(piece)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  }
});

// A WebSocket echo at <base>/ws (RFC 6455: text frames of any size, unfragmented).
server.on('upgrade', (req, socket) => {
  if (req.url !== `${base}/ws` || req.headers.upgrade?.toLowerCase() !== 'websocket') return socket.destroy();
  const accept = createHash('sha1').update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  socket.on('data', (data) => {
    buf = Buffer.concat([buf, data]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 0x0f;
      let len = buf[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = (buf[1] & 0x80) !== 0;
      const need = off + (masked ? 4 : 0) + len;
      if (buf.length < need) return;
      const mask = masked ? buf.subarray(off, off + 4) : undefined;
      const payload = Buffer.from(buf.subarray(off + (masked ? 4 : 0), need));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      buf = buf.subarray(need);
      if (op === 8) return void socket.end(Buffer.from([0x88, 0]));
      if (op !== 1) continue;
      const text = Buffer.from(`echo: ${payload.toString('utf8')}`);
      const head = text.length < 126 ? Buffer.from([0x81, text.length]) : Buffer.from([0x81, 126, text.length >> 8, text.length & 0xff]);
      socket.write(Buffer.concat([head, text]));
    }
  });
  socket.on('error', () => socket.destroy());
});

server.listen(port, '127.0.0.1', () => console.log(`hello-world-app for ${name} on 127.0.0.1:${port}${base}/`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

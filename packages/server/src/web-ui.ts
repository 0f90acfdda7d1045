import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Where the built UI is: TESSERA_WEB_DIR, else packages/web/dist of this checkout. */
export const DEFAULT_WEB_DIR = process.env.TESSERA_WEB_DIR ?? resolve(fileURLToPath(new URL('.', import.meta.url)), '../../web/dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.txt']);
/**
 * Paths that belong to the API, DICOMweb and the app proxy (/applications/project/...):
 * never answered with the UI's index.html. /applications itself is the UI's page.
 */
const NOT_UI = /^\/(api|dicom-web)(\/|$)|^\/applications\/project(\/|$)|^\/projects\/[^/]+\/dicom-web(\/|$)/;

interface Cached {
  body: Buffer;
  gzip?: Buffer;
  mtimeMs: number;
}

/**
 * Serves the web UI (packages/web/dist) at `/`: hashed `/assets/*` immutable for a year,
 * index.html `no-cache`, gzip when asked, and index.html for any other GET that is no
 * file (client routes), except under /api, /dicom-web, /projects/<p>/dicom-web and /applications/project.
 */
export async function webUiRoutes(app: FastifyInstance, opts: { dir?: string } = {}): Promise<void> {
  const dir = opts.dir ?? DEFAULT_WEB_DIR;
  const cache = new Map<string, Cached>();

  const read = (file: string): Cached | undefined => {
    let st;
    try {
      st = statSync(file, { throwIfNoEntry: false });
    } catch (err) {
      // A path that cannot name a file of the UI (a part of it is a file, or it is too long) is not one.
      if (['ENOTDIR', 'ENAMETOOLONG'].includes((err as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw err;
    }
    if (!st?.isFile()) return undefined;
    const hit = cache.get(file);
    if (hit && hit.mtimeMs === st.mtimeMs) return hit;
    const entry: Cached = { body: readFileSync(file), mtimeMs: st.mtimeMs };
    cache.set(file, entry);
    return entry;
  };

  const send = (req: FastifyRequest, reply: FastifyReply, file: string, entry: Cached, cacheControl: string) => {
    const ext = extname(file);
    reply.header('cache-control', cacheControl).header('x-content-type-options', 'nosniff').type(TYPES[ext] ?? 'application/octet-stream');
    if (COMPRESSIBLE.has(ext) && entry.body.length > 1024 && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
      entry.gzip ??= gzipSync(entry.body, { level: 9 });
      reply.header('content-encoding', 'gzip').header('vary', 'accept-encoding');
      return reply.send(entry.gzip);
    }
    return reply.send(entry.body);
  };

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    let path: string;
    try {
      path = decodeURIComponent(req.url.split('?')[0] ?? '/');
    } catch {
      return reply.callNotFound();
    }
    if (NOT_UI.test(path)) return reply.callNotFound();
    // No file of the UI has a NUL byte or a control character in its name, or a name this long.
    if (/[\x00-\x1f]/.test(path) || path.length > 1024) return reply.callNotFound();
    const file = normalize(join(dir, path));
    if ((file + sep).startsWith(dir + sep) && path !== '/') {
      const entry = read(file);
      if (entry) return send(req, reply, file, entry, path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
      // A missing asset or file is a 404, not the page (a stale index.html asking for an old
      // chunk). Client routes may end in a DICOM UID (/viewer/1.2.840.../1.2.840...), whose
      // "extension" is all digits: those are routes.
      if (path.startsWith('/assets/') || /\.[0-9]*[a-z][a-z0-9]*$/i.test(path)) return reply.callNotFound();
    }
    const index = join(dir, 'index.html');
    const entry = read(index);
    if (!entry) {
      return reply
        .status(503)
        .header('cache-control', 'no-cache')
        .type('text/html; charset=utf-8')
        .send(`<!doctype html><title>Tessera</title><p>The web UI is not built (no ${index}). <code>npm start</code> builds it; or run <code>npm run build -w @tessera/web</code>. The API is at <a href="/api/openapi.json">/api/openapi.json</a>.</p>`);
    }
    return send(req, reply, index, entry, 'no-cache');
  };
  if (!existsSync(dir)) app.log.warn(`the web UI is not built (${dir} is missing): / answers with a note`);
  app.get('/', handler);
  app.get('/*', handler);
}

// ohif-viewer: serves the built OHIF viewer (the npm package @ohif/app) under this
// instance's subpath (INGRESS_PATH) on PORT, configured to read the project's studies
// from <subpath>/dicom-web on its own origin. This server answers those reads (GET and
// HEAD only) by asking the platform's DICOMweb, ${TESSERA_API_URL}/projects/<project>/dicom-web,
// with the instance's scoped credential (TESSERA_API_TOKEN; none with access control off).
// So the viewer only ever talks to its own origin, which with access control on is the
// applications' origin, not the platform's; the browser's cookies and Authorization never
// go on to the platform.
//
// @ohif/app is built for the root path: its index.html loads /app.bundle.js and sets
// window.PUBLIC_URL = "/", and its webpack runtimes load chunks, workers and wasm from
// "/". This server rewrites those few places as it serves them, so the viewer runs under
// any subpath; everything else is served as shipped. Node's standard library only.
import { spawn } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { homedir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream';
import { gzip } from 'node:zlib';
import { promisify } from 'node:util';

const gzipAsync = promisify(gzip);
const port = Number(process.env.PORT);
const base = process.env.INGRESS_PATH ?? '';
const project = process.env.TESSERA_PROJECT ?? 'default';
const version = process.env.OHIF_VERSION || '3.13.2';
const given = process.env.OHIF_DIST || '';
/** Where the viewer reads DICOMweb, under the instance's subpath. */
const DICOMWEB = '/dicom-web';
const apiUrl = process.env.TESSERA_API_URL ?? '';
const apiToken = process.env.TESSERA_API_TOKEN ?? '';
const cacheRoot = process.env.CACHE_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tessera');

const log = (m) => console.log(`ohif-viewer: ${m}`);
const fail = (m) => {
  console.error(`ohif-viewer: ${m}`);
  process.exit(1);
};
if (!Number.isInteger(port) || port <= 0) fail('PORT is not set: this is a Tessera application; launch it with tessera app launch ohif-viewer');
if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) fail(`ohif_version "${version}" is not a version such as 3.13.2`);

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.map': 'application/json', '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.ico': 'image/x-icon', '.jpg': 'image/jpeg', '.gif': 'image/gif',
  '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf', '.txt': 'text/plain; charset=utf-8', '.xml': 'application/xml',
  '.onnx': 'application/octet-stream',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.wasm', '.svg', '.txt', '.xml']);
/** Webpack's public path as @ohif/app ships it, in the app bundle and in each worker's runtime. */
const PUBLIC_PATH = '__webpack_require__.p = "/";';

function run(command, args, opts = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let err = '';
    child.stdout.on('data', () => {});
    child.stderr.on('data', (d) => { err = (err + d).slice(-4000); });
    child.on('error', (e) => reject(new Error(`${command} could not start: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolvePromise() : reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${err.trim()}`))));
  });
}

/** The folder holding index.html of the given package (.tgz) or folder. */
async function findDist(dir) {
  for (const d of [dir, join(dir, 'dist'), join(dir, 'package', 'dist')]) if (existsSync(join(d, 'index.html')) && existsSync(join(d, 'app-config.js'))) return d;
  return undefined;
}

async function extract(tgz, final) {
  await mkdir(join(final, '..'), { recursive: true });
  const tmp = await mkdtemp(`${final}.part-`);
  try {
    log(`unpacking ${tgz}`);
    await run('tar', ['xzf', tgz, '-C', tmp]);
    if (!(await findDist(tmp))) throw new Error(`${tgz} is not an @ohif/app package: it has no dist/index.html`);
    // Another instance may have finished the same work meanwhile: the first one stays.
    await rename(tmp, final).catch(async (e) => {
      if (!(await findDist(final))) throw e;
      await rm(tmp, { recursive: true, force: true });
    });
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Finds or fetches the viewer; returns its dist folder. */
async function prepare() {
  if (given) {
    const st = await stat(given).catch(() => undefined);
    if (!st) throw new Error(`ohif_dist "${given}" does not exist on the server`);
    if (st.isDirectory()) {
      const d = await findDist(given);
      if (!d) throw new Error(`ohif_dist "${given}" holds no OHIF build (no index.html and app-config.js in it, its dist/ or package/dist/)`);
      return d;
    }
    const final = join(cacheRoot, 'ohif', `local-${st.size}-${Math.floor(st.mtimeMs)}`);
    if (!(await findDist(final))) await extract(resolve(given), final);
    return findDist(final);
  }
  const final = join(cacheRoot, 'ohif', `app-${version}`);
  const cached = await findDist(final);
  if (cached) {
    log(`using the cached viewer ${version} in ${final}`);
    return cached;
  }
  await mkdir(join(cacheRoot, 'ohif'), { recursive: true });
  const dl = await mkdtemp(join(cacheRoot, 'ohif', 'download-'));
  try {
    log(`fetching @ohif/app@${version} (about 50 MB) from the npm registry into ${final}; this happens once`);
    const t0 = Date.now();
    // npm checks the package's integrity against the registry, and uses the proxy and
    // registry settings of the machine.
    await run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['pack', `@ohif/app@${version}`, '--pack-destination', dl, '--silent'], { cwd: dl }).catch((e) => {
      throw new Error(`could not fetch @ohif/app@${version} from the npm registry (${e.message}). Without network, download it elsewhere (npm pack @ohif/app@${version}) and launch with -p ohif_dist=<path to the .tgz>`);
    });
    const tgz = (await readdir(dl)).find((f) => f.endsWith('.tgz'));
    if (!tgz) throw new Error('npm pack wrote no package');
    log(`fetched in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await extract(join(dl, tgz), final);
  } finally {
    await rm(dl, { recursive: true, force: true });
  }
  return findDist(final);
}

/** The viewer's configuration: the project's DICOMweb under this instance's subpath, the router under the subpath. */
function appConfig() {
  return `// Written by Tessera's ohif-viewer for project ${JSON.stringify(project)}.
(function () {
  var root = window.location.origin + ${JSON.stringify(`${base}${DICOMWEB}`)};
  window.config = {
    name: 'tessera',
    routerBasename: ${JSON.stringify(`${base}/`)},
    extensions: [],
    modes: [],
    customizationService: {},
    showStudyList: true,
    maxNumberOfWebWorkers: 3,
    showWarningMessageForCrossOrigin: false,
    showCPUFallbackMessage: true,
    showLoadingIndicator: true,
    strictZSpacingForVolumeViewport: true,
    groupEnabledModesFirst: true,
    maxNumRequests: { interaction: 100, thumbnail: 5, prefetch: 25 },
    showErrorDetails: 'always',
    investigationalUseDialog: { option: 'never' },
    defaultDataSourceName: 'tessera',
    dataSources: [
      {
        namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',
        sourceName: 'tessera',
        configuration: {
          friendlyName: ${JSON.stringify(`Tessera project ${project}`)},
          name: 'tessera',
          wadoUriRoot: root,
          qidoRoot: root,
          wadoRoot: root,
          qidoSupportsIncludeField: true,
          imageRendering: 'wadors',
          thumbnailRendering: 'wadors',
          enableStudyLazyLoad: true,
          supportsFuzzyMatching: false,
          supportsWildcard: true,
          staticWado: false,
          // Reads only: this instance forwards no uploads (STOW-RS) to the platform.
          dicomUploadEnabled: false,
          singlepart: 'bulkdata,video',
          bulkDataURI: { enabled: true, relativeResolution: 'studies' },
          omitQuotationForMultipartRequest: true,
        },
      },
    ],
  };
})();
`;
}

let dist; // set once the viewer is ready
let problem; // why it could not be prepared
/** Rewritten (and compressed) bodies, by path and encoding. */
const bodies = new Map();

/** A file's body as served: with the subpath put in where the build says "/". */
async function body(rel, file) {
  const key = rel;
  if (!bodies.has(key)) {
    bodies.set(key, (async () => {
      if (rel === '/app-config.js') return Buffer.from(appConfig());
      if (rel === '/index.html') {
        const html = (await readFile(file, 'utf8'))
          .replaceAll('window.PUBLIC_URL="/"', `window.PUBLIC_URL=${JSON.stringify(`${base}/`)}`)
          .replace(/(\s(?:src|href|content))="\/(?!\/)/g, `$1="${base}/`);
        return Buffer.from(html);
      }
      const buf = await readFile(file);
      // The stylesheet's fonts are named from the root too: url(/….woff2).
      if (rel.endsWith('.css') && buf.includes('url(/')) return Buffer.from(buf.toString('utf8').replace(/url\(\/(?!\/)/g, `url(${base}/`));
      if (rel.endsWith('.js') && buf.includes(PUBLIC_PATH)) return Buffer.from(buf.toString('utf8').replaceAll(PUBLIC_PATH, `__webpack_require__.p = ${JSON.stringify(`${base}/`)};`));
      return buf;
    })());
    bodies.get(key).catch(() => bodies.delete(key));
  }
  return bodies.get(key);
}
const gzipped = new Map();
function gzBody(rel, file) {
  if (!gzipped.has(rel)) {
    gzipped.set(rel, body(rel, file).then((b) => gzipAsync(b, { level: 6 })));
    gzipped.get(rel).catch(() => gzipped.delete(rel));
  }
  return gzipped.get(rel);
}
/** Files read whole to be rewritten; the others stream from disk unless compressed. */
const rewritten = (rel) => rel === '/index.html' || rel === '/app-config.js' || rel.endsWith('.js') || rel.endsWith('.css');

function page(res, status, title, text, retry) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...(retry ? { 'retry-after': '3' } : {}) });
  res.end(`<!doctype html><meta charset="utf-8"><title>${title}</title>${retry ? '<meta http-equiv="refresh" content="3">' : ''}<body style="font-family:sans-serif;max-width:40em;margin:4em auto"><h1>${title}</h1><p>${text.replace(/[<&]/g, (c) => (c === '<' ? '&lt;' : '&amp;'))}</p></body>`);
}

/** Request headers passed on to the platform; nothing else (cookies, Authorization) is. */
const ASKED = ['accept', 'range', 'if-none-match'];
/** Response headers passed back; the body streams, chunked when it has no length. */
const ANSWERED = ['content-type', 'content-length', 'content-range', 'accept-ranges', 'etag', 'last-modified', 'cache-control', 'vary', 'content-encoding', 'retry-after', 'x-content-type-options'];

/**
 * <base>/dicom-web/<rest>?<query>: forwarded to the platform's DICOMweb of this project with
 * the instance's token. `raw` is the request's path as sent (not normalized by URL parsing).
 */
function dicomweb(req, res, raw, query) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    return res.end('the viewer only reads DICOMweb (GET, HEAD)\n');
  }
  const rest = raw.slice(base.length + DICOMWEB.length);
  // No encoded slash, backslash or dot segment: the request stays within the project's DICOMweb.
  let segments;
  try {
    segments = rest.split('/').map((p) => decodeURIComponent(p));
  } catch {
    segments = undefined;
  }
  if (!segments || /%2f|%5c|\\/i.test(rest) || segments.some((p) => p === '.' || p === '..')) {
    return page(res, 400, 'Bad path', 'A DICOMweb path has no encoded slash, backslash or dot segment.');
  }
  let target;
  try {
    target = new URL(apiUrl);
  } catch {
    return page(res, 502, 'The platform cannot be reached', 'TESSERA_API_URL is not set: launch the viewer with tessera app launch ohif-viewer.');
  }
  const path = `${target.pathname.replace(/\/$/, '')}/projects/${encodeURIComponent(project)}${DICOMWEB}${rest}${query}`;
  const headers = {};
  for (const h of ASKED) if (req.headers[h] !== undefined) headers[h] = req.headers[h];
  if (apiToken) headers.authorization = `Bearer ${apiToken}`;
  const upstream = (target.protocol === 'https:' ? httpsRequest : httpRequest)({
    protocol: target.protocol, hostname: target.hostname.replace(/^\[|\]$/g, ''), port: target.port, method: req.method, path, headers,
  });
  upstream.on('response', (answer) => {
    const out = {};
    for (const h of ANSWERED) if (answer.headers[h] !== undefined) out[h] = answer.headers[h];
    res.writeHead(answer.statusCode ?? 502, out);
    pipeline(answer, res, () => {});
  });
  let gone = false;
  upstream.on('error', (e) => {
    if (gone) return;
    if (res.headersSent) return res.destroy();
    console.error(`ohif-viewer: DICOMweb at ${target.origin}: ${e.message}`);
    page(res, 502, 'The platform cannot be reached', `The viewer could not reach Tessera's DICOMweb at ${target.origin} (${e.message}). Is the Tessera server running?`);
  });
  // A viewer that stops waiting (a study closed) ends the request to the platform too.
  res.on('close', () => {
    if (res.writableFinished) return;
    gone = true;
    upstream.destroy();
  });
  upstream.end();
}

async function serve(req, res) {
  // DICOMweb before anything parses the URL, which would resolve dot segments away.
  const q = req.url.indexOf('?');
  const raw = q < 0 ? req.url : req.url.slice(0, q);
  if (raw === `${base}${DICOMWEB}` || raw.startsWith(`${base}${DICOMWEB}/`)) return dicomweb(req, res, raw, q < 0 ? '' : req.url.slice(q));
  const url = new URL(req.url, 'http://app');
  if (!url.pathname.startsWith(`${base}/`)) return page(res, 404, 'Not found', `The viewer serves under ${base}/.`);
  let rel;
  try {
    rel = decodeURIComponent(url.pathname.slice(base.length));
  } catch {
    return page(res, 400, 'Bad path', 'The path is not valid percent-encoding.');
  }
  if (rel === '/healthz') {
    res.writeHead(dist ? 200 : 503, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    return res.end(dist ? 'ok\n' : `${problem ?? 'preparing the viewer'}\n`);
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
    return res.end('the viewer only serves files\n');
  }
  if (!dist) return page(res, problem ? 500 : 503, problem ? 'The viewer could not be prepared' : 'Preparing the viewer', problem ?? 'The viewer is being fetched; this page reloads.', !problem);
  if (rel === '/' || rel === '') rel = '/index.html';
  const file = normalize(join(dist, rel));
  if (!file.startsWith(dist + sep)) return page(res, 400, 'Bad path', 'The path leaves the viewer\'s folder.');
  const st = rel === '/app-config.js' ? { isFile: () => true } : await stat(file).catch(() => undefined);
  let target = rel;
  let path = file;
  if (!st?.isFile()) {
    // A route of the viewer (/viewer?StudyInstanceUIDs=..., /local, ...) is the app's page;
    // a missing asset is a 404.
    if (extname(rel) && !rel.startsWith('/viewer')) return page(res, 404, 'Not found', `${rel} is not a file of the viewer.`);
    target = '/index.html';
    path = join(dist, 'index.html');
  }
  const ext = target === '/app-config.js' ? '.js' : extname(target);
  const immutable = /\.[0-9a-f]{16}\.(js|wasm)$|^\/[0-9a-f]{16}\.wasm$/.test(target);
  const headers = {
    'content-type': TYPES[ext] ?? 'application/octet-stream',
    'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
    'x-content-type-options': 'nosniff',
    vary: 'accept-encoding',
  };
  const wantsGzip = COMPRESSIBLE.has(ext) && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
  if (wantsGzip || rewritten(target)) {
    const b = wantsGzip ? await gzBody(target, path) : await body(target, path);
    res.writeHead(200, { ...headers, 'content-length': b.length, ...(wantsGzip ? { 'content-encoding': 'gzip' } : {}) });
    return res.end(req.method === 'HEAD' ? undefined : b);
  }
  const size = (await stat(path)).size;
  res.writeHead(200, { ...headers, 'content-length': size });
  if (req.method === 'HEAD') return res.end();
  createReadStream(path).on('error', () => res.destroy()).pipe(res);
}

// This start's secret, which the platform's proxy sends with every request it forwards:
// without it, a request came from some other process of this machine that found the port
// on 127.0.0.1, and reading DICOMweb through this server (with the instance's token) is
// not for it.
const proxySecret = Buffer.from(process.env.TESSERA_PROXY_SECRET ?? '');
function fromProxy(req) {
  if (proxySecret.length === 0) return true;
  const sent = Buffer.from(String(req.headers['x-tessera-proxy-secret'] ?? ''));
  return sent.length === proxySecret.length && timingSafeEqual(sent, proxySecret);
}

const server = createServer((req, res) => {
  if (!fromProxy(req)) return page(res, 403, 'Open the viewer from Tessera', 'This server answers requests that come through Tessera only.');
  serve(req, res).catch((e) => {
    console.error(`ohif-viewer: ${req.url}: ${e.stack ?? e}`);
    if (!res.headersSent) page(res, 500, 'Error', String(e.message ?? e));
    else res.destroy();
  });
});
server.listen(port, '127.0.0.1', () => log(`listening on 127.0.0.1:${port}, serving ${base}/ for project ${project}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

prepare().then(
  (d) => {
    dist = resolve(d);
    log(`ready: ${dist}`);
  },
  (e) => {
    problem = e.message;
    console.error(`ohif-viewer: ${problem}`);
    // Ends the process: the platform reports the instance failed with these lines.
    setTimeout(() => process.exit(1), 100);
  },
);

import type { FastifyInstance } from 'fastify';
import { EXTENSION_STATES, extensionRoutes as routes } from '@tessera/api';
import type { ExtensionManager } from '@tessera/extension-packages';
import { TesseraError } from '@tessera/model';
import { pageOf, parseSort, sortBy } from '../http/lists.ts';
import { serve } from '../http/serve-route.ts';

/** The contract's PACKAGE_MEDIA_TYPES (`consumes` of the upload), with parameters after them. */
const PACKAGE_TYPE = /^(application\/gzip|application\/x-gzip|application\/x-tar|application\/octet-stream)/;

/** The extensions domain: the catalog, uploaded packages, installs. */
export async function extensionRoutes(app: FastifyInstance, opts: { manager: ExtensionManager }): Promise<void> {
  const { manager } = opts;
  // The upload's handler reads the package from the request itself.
  app.addContentTypeParser(PACKAGE_TYPE, (_req, _payload, done) => done(null));

  serve(app, routes.list, async (request) => {
    const { kind, keyword, state, q } = request.query;
    const states = state?.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = states?.filter((s) => !(EXTENSION_STATES as readonly string[]).includes(s)) ?? [];
    if (bad.length > 0) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `unknown extension state ${bad.map((b) => `"${b}"`).join(', ')}; use ${EXTENSION_STATES.join(', ')}`, {
        details: [{ where: 'querystring.state', message: `must be among ${EXTENSION_STATES.join(', ')} (got ${JSON.stringify(state)})` }],
      });
    }
    const sort = parseSort<'name' | 'kind' | 'state' | 'title' | 'installed_at'>(request.query.sort, request.query.order, 'name');
    const text = q?.toLowerCase();
    const items = (await manager.catalog()).filter((e) =>
      (!kind || e.kind === kind) &&
      (!keyword || e.keywords.includes(keyword)) &&
      (!states || states.includes(e.state)) &&
      (!text || `${e.name} ${e.title} ${e.description}`.toLowerCase().includes(text)));
    const sorted = sortBy(items, (e) => (sort.field === 'installed_at' ? (e.installed?.updated_at ?? null) : e[sort.field]), sort.order);
    return { ...pageOf(sorted, request.query.limit ?? 1000, request.query.offset ?? 0), problems: manager.problems() };
  });

  serve(app, routes.get, async (request) => manager.get(request.params.name));

  serve(app, routes.upload, async (request, reply) => {
    const type = request.headers['content-type'] ?? '';
    if (!PACKAGE_TYPE.test(type)) {
      throw new TesseraError('TESSERA_UNSUPPORTED_MEDIA_TYPE', `an extension package is sent as application/gzip (the .tgz that \`tessera ext build\` writes), not ${type || 'without a content type'}`);
    }
    const length = Number(request.headers['content-length']);
    if (Number.isFinite(length) && length > manager.maxPackageBytes) {
      throw new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', `the extension package was refused: it is larger than the limit of ${Math.round(manager.maxPackageBytes / 1024 / 1024)} MB (TESSERA_EXTENSION_MAX_PACKAGE_MB); nothing of it was kept`);
    }
    let result;
    try {
      result = await manager.uploadPackage(request.raw);
    } catch (err) {
      // Answering while the client still sends makes it see a broken pipe instead of the
      // answer: read the rest first (up to the size limit, for at most 30 s), then answer.
      await drain(request.raw, manager.maxPackageBytes, 30_000);
      throw err;
    }
    return reply.code(201).send(result);
  }, { bodyLimit: Number.MAX_SAFE_INTEGER });

  serve(app, routes.install, async (request, reply) => {
    const { entry, done } = await manager.install(request.params.name, request.body ?? {});
    if (!request.query.wait) return reply.code(entry.state === 'installing' ? 202 : 200).send(entry);
    await done;
    return manager.get(request.params.name);
  });

  serve(app, routes.uninstall, async (request) => manager.uninstall(request.params.name));

  serve(app, routes.deleteVersion, async (request) => manager.deleteVersion(request.params.name, request.params.version));
}

function drain(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean; destroy?: () => void }, maxBytes: number, maxMs: number): Promise<void> {
  // Ended, or destroyed (a body cut off by the HTTP limits): nothing more will come.
  if (stream.readableEnded || stream.destroyed) return Promise.resolve();
  return new Promise((done) => {
    let bytes = 0;
    const stop = (): void => {
      clearTimeout(timer);
      stream.removeListener('data', count);
      done();
    };
    const count = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        stream.destroy?.();
        stop();
      }
    };
    const timer = setTimeout(() => {
      stream.destroy?.();
      stop();
    }, maxMs);
    stream.on('data', count);
    stream.once('end', stop);
    stream.once('close', stop);
    stream.once('error', stop);
    stream.resume();
  });
}

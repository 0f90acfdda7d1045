import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { EXTENSION_KEYWORDS } from '@tessera/extensions';
import { TesseraError } from '@tessera/model';
import { errorResponses, OrderParam, PageParams, pageOf, parseSort, sortBy, SortParam } from '../http/common.schema.ts';
import type { CatalogEntry, ExtensionManager } from './extension-manager.ts';

const Open = (description: string) => Type.Object({}, { additionalProperties: true, description });
const errors = { ...errorResponses, 413: { $ref: 'ErrorResponse#' }, 415: { $ref: 'ErrorResponse#' }, 503: { $ref: 'ErrorResponse#' } };
const NameParams = Type.Object({ name: Type.String({ minLength: 1 }) });
const CATALOG_STATES = ['not_installed', 'installing', 'installed', 'error', 'uninstalling'];
/** `sort` fields of the catalog (`installed_at`: when the installed version was installed, or its install began). */
const CATALOG_SORTS = ['name', 'kind', 'state', 'title', 'installed_at'] as const;
const CatalogQuery = Type.Object({
  kind: Type.Optional(Type.Unsafe<'workflow' | 'application'>({ type: 'string', enum: ['workflow', 'application'] })),
  keyword: Type.Optional(Type.Unsafe<string>({ type: 'string', enum: [...EXTENSION_KEYWORDS] })),
  state: Type.Optional(Type.String({ description: `Comma-separated: ${CATALOG_STATES.join(', ')}` })),
  q: Type.Optional(Type.String({ description: 'Text in the name, title or description' })),
  sort: SortParam(CATALOG_SORTS, 'name'),
  order: OrderParam,
  ...PageParams(1000, 1000),
});
const InstallBody = Type.Object(
  {
    version: Type.Optional(Type.String({ description: 'Version to install (default: the newest that fits this Tessera).' })),
    params: Type.Optional(Type.Object({}, { additionalProperties: true, description: "Values of the extension's install parameters (manifest `parameters`)." })),
  },
  { additionalProperties: false },
);
const InstallQuery = Type.Object({
  wait: Type.Optional(Type.Boolean({ description: 'Answer when the install has ended (200, or the error) instead of at once (202).' })),
});

/** The extensions domain: the catalog, uploaded packages, installs. */
export async function extensionRoutes(app: FastifyInstance, opts: { manager: ExtensionManager }): Promise<void> {
  const { manager } = opts;
  app.addContentTypeParser(/^(application\/gzip|application\/x-gzip|application\/x-tar|application\/octet-stream)/, (_req, _payload, done) => done(null));

  app.get<{ Querystring: Static<typeof CatalogQuery> }>('/api/extensions', {
    schema: {
      tags: ['extensions'],
      summary: 'The catalog: every available extension with its versions, kind, keywords, parameters and state',
      querystring: CatalogQuery,
      response: {
        200: Type.Object({ items: Type.Array(Open('A catalog entry')), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer(), problems: Type.Array(Open('A built-in extension that is not in the catalog, and why')) }),
        ...errorResponses,
      },
    },
  }, async (request) => {
    const { kind, keyword, state, q } = request.query;
    const states = state?.split(',').map((s) => s.trim()).filter(Boolean);
    const bad = states?.filter((s) => !CATALOG_STATES.includes(s)) ?? [];
    if (bad.length > 0) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `unknown extension state ${bad.map((b) => `"${b}"`).join(', ')}; use ${CATALOG_STATES.join(', ')}`, {
        details: [{ where: 'querystring.state', message: `must be among ${CATALOG_STATES.join(', ')} (got ${JSON.stringify(state)})` }],
      });
    }
    const sort = parseSort<(typeof CATALOG_SORTS)[number]>(request.query.sort, request.query.order, 'name');
    const text = q?.toLowerCase();
    const items = (await manager.catalog()).filter((e: CatalogEntry) =>
      (!kind || e.kind === kind) &&
      (!keyword || e.keywords.includes(keyword)) &&
      (!states || states.includes(e.state)) &&
      (!text || `${e.name} ${e.title} ${e.description}`.toLowerCase().includes(text)));
    const sorted = sortBy(items, (e) => (sort.field === 'installed_at' ? (e.installed?.updated_at ?? null) : e[sort.field]), sort.order);
    return { ...pageOf(sorted, request.query.limit ?? 1000, request.query.offset ?? 0), problems: manager.problems() };
  });

  app.get<{ Params: Static<typeof NameParams> }>('/api/extensions/:name', {
    schema: { tags: ['extensions'], summary: 'One catalog entry', params: NameParams, response: { 200: Open('A catalog entry'), ...errors } },
  }, async (request) => manager.get(request.params.name));

  app.post('/api/extensions/packages', {
    bodyLimit: Number.MAX_SAFE_INTEGER,
    schema: {
      tags: ['extensions'],
      summary: 'Upload an extension package (.tgz from `tessera ext build`) into the catalog; it is checked whole, and not installed',
      consumes: ['application/gzip'],
      response: { 201: Open('The package: name, version, kind, sha256, bytes, replaced'), ...errors },
    },
  }, async (request, reply) => {
    const type = request.headers['content-type'] ?? '';
    if (!/^(application\/gzip|application\/x-gzip|application\/x-tar|application\/octet-stream)/.test(type)) {
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
  });

  app.post<{ Params: Static<typeof NameParams>; Body: Static<typeof InstallBody>; Querystring: Static<typeof InstallQuery> }>('/api/extensions/:name/install', {
    schema: {
      tags: ['extensions'],
      summary: 'Install, upgrade, downgrade or reconfigure an extension (202: started; the entry shows its state until installed or error)',
      params: NameParams,
      querystring: InstallQuery,
      body: InstallBody,
      response: { 200: Open('The catalog entry, installed'), 202: Open('The catalog entry, installing'), ...errors },
    },
  }, async (request, reply) => {
    const { entry, done } = await manager.install(request.params.name, request.body ?? {});
    if (!request.query.wait) return reply.code(entry.state === 'installing' ? 202 : 200).send(entry);
    await done;
    return manager.get(request.params.name);
  });

  app.delete<{ Params: Static<typeof NameParams> }>('/api/extensions/:name', {
    schema: {
      tags: ['extensions'],
      summary: "Uninstall an extension: its workflows go at once, its images once no run of it is still going",
      params: NameParams,
      response: { 200: Open('The catalog entry, not installed'), ...errors },
    },
  }, async (request) => {
    await manager.uninstall(request.params.name);
    return manager.get(request.params.name).catch(() => ({ name: request.params.name, state: 'not_installed' }));
  });
}

function drain(stream: NodeJS.ReadableStream & { readableEnded?: boolean; destroy?: () => void }, maxBytes: number, maxMs: number): Promise<void> {
  if (stream.readableEnded) return Promise.resolve();
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

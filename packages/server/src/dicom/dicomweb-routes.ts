import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { defaultDicomWebRoutes, DICOM_JSON, projectDicomWebRoutes } from '@tessera/api';
import {
  decodeFrameToNative,
  extractFrame,
  frameMediaType,
  instanceMetadata,
  instanceRefs,
  multipartRelated,
  parseAccept,
  pixelModuleOf,
  qidoSearch,
  readMultipart,
  readHeader,
  readPart10,
  renderFrame,
  storeStatusOf,
  toDicomJson,
  type DicomService,
  type FileResult,
  type InstanceRef,
  type QidoLevel,
} from '@tessera/dicom';
import { TesseraError } from '@tessera/model';
import { serve } from '../http/serve-route.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { readBody } from '../http/read-body.ts';

export interface DicomWebRoutesOptions {
  dicom: DicomService;
  projects: ProjectStore;
  /** Public base URL of the server (for RetrieveURLs), resolved per request. */
  publicUrl: () => string;
}

type Params = { project?: string; study?: string; series?: string; instance?: string; frames?: string; tag?: string };
type Query = Record<string, string | string[] | undefined>;
type RenderedQuery = { viewport?: string; window?: string; quality?: string };
/** What the handlers read of a request: the same under both roots, which differ only in `project`. */
interface DicomWebRequest {
  params: Params;
  headers: IncomingHttpHeaders;
}

/** Both roots' route sets: the same keys, the per-project one with a `project` path parameter. */
type DicomWebRouteSet = typeof defaultDicomWebRoutes | typeof projectDicomWebRoutes;

/**
 * DICOMweb (PS3.18): QIDO-RS, WADO-RS and STOW-RS over the store. Served twice, from the
 * same contract (packages/api/src/dicomweb.ts): at `/dicom-web` for the default project
 * and at `/projects/:project/dicom-web`.
 */
export async function dicomWebRoutes(app: FastifyInstance, opts: DicomWebRoutesOptions): Promise<void> {
  // STOW bodies are read as streams by the handler (multipart parsing with limits), never buffered by Fastify.
  app.addContentTypeParser(/^(multipart\/|application\/dicom)/, (_req, _payload, done) => done(null));
  for (const routes of [defaultDicomWebRoutes, projectDicomWebRoutes]) serveRoot(app, routes, opts);
}

function serveRoot(app: FastifyInstance, routes: DicomWebRouteSet, opts: DicomWebRoutesOptions): void {
  const { dicom, projects } = opts;
  const project = async (params: Params) => (params.project ? projects.require(params.project) : projects.ensureDefault());
  const base = (params: Params) => `${opts.publicUrl()}${params.project ? `/projects/${params.project}` : ''}/dicom-web`;

  // ---------------------------------------------------------------- QIDO-RS
  const qido = (level: QidoLevel) => async (req: DicomWebRequest & { query: Query }, reply: FastifyReply) => {
    const p = await project(req.params);
    const r = await qidoSearch(dicom.db, { level, projectId: p.id, studyUid: req.params.study, seriesUid: req.params.series, query: req.query, baseUrl: base(req.params) });
    let json = r.json;
    if (r.fromFiles.length > 0) json = await withFileAttributes(dicom, json, r.paths, r.fromFiles);
    if (r.more) reply.header('Warning', '299 tessera "There are more matching results: use limit and offset"');
    if (r.count === 0) return reply.status(204).send();
    return reply.type(DICOM_JSON).send(json);
  };
  serve(app, routes.searchStudies, qido('study'));
  serve(app, routes.searchSeries, qido('series'));
  serve(app, routes.searchInstances, qido('instance'));
  serve(app, routes.searchStudySeries, qido('series'));
  serve(app, routes.searchStudyInstances, qido('instance'));
  serve(app, routes.searchSeriesInstances, qido('instance'));

  // ---------------------------------------------------------------- WADO-RS
  const refs = async (params: Params) => instanceRefs(dicom.db, { projectId: (await project(params)).id, studyUid: params.study, seriesUid: params.series, sopUid: params.instance });
  const retrieve = async (req: DicomWebRequest, reply: FastifyReply) => {
    const list = await refs(req.params);
    checkInstanceAccept(req.headers.accept, list);
    const b = base(req.params);
    const body = multipartRelated(
      (async function* () {
        for (const ref of list) {
          yield { contentType: `application/dicom; transfer-syntax=${ref.transfer_syntax}`, body: () => dicom.store.readFile(ref.path), headers: { 'Content-Location': `${b}/studies/${ref.study_uid}/series/${ref.series_uid}/instances/${ref.sop_uid}` } };
        }
      })(),
      { type: 'application/dicom' },
    );
    return reply.type(body.contentType).send(body.stream);
  };
  serve(app, routes.retrieveStudy, retrieve);
  serve(app, routes.retrieveSeries, retrieve);
  serve(app, routes.retrieveInstance, retrieve);

  const metadata = async (req: DicomWebRequest, reply: FastifyReply) => {
    const list = await refs(req.params);
    const out: string[] = [];
    for (const ref of list) out.push(JSON.stringify(await instanceMetadata(dicom.store, ref, base(req.params))));
    return reply.type(DICOM_JSON).send(`[${out.join(',')}]`);
  };
  serve(app, routes.retrieveStudyMetadata, metadata);
  serve(app, routes.retrieveSeriesMetadata, metadata);
  serve(app, routes.retrieveInstanceMetadata, metadata);

  serve(app, routes.retrieveFrames, async (req: DicomWebRequest, reply: FastifyReply) => {
    const [ref] = await refs(req.params);
    const { pm, numbers } = await framesOf(dicom, ref!, req.params.frames!);
    const stored = frameMediaType(ref!.transfer_syntax);
    const wanted = parseAccept(req.headers.accept);
    // As stored when the client takes any transfer syntax or the stored media type; else uncompressed.
    const asStored =
      wanted.length === 0 ||
      wanted.some((a) => a.params['transfer-syntax'] === '*' || a.params['transfer-syntax'] === ref!.transfer_syntax || a.params.type === stored || a.type === stored || a.type === '*/*') ||
      stored === 'application/octet-stream';
    const native = ref!.transfer_syntax === '1.2.840.10008.1.2.1' || ref!.transfer_syntax === '1.2.840.10008.1.2';
    const mediaType = asStored ? stored : 'application/octet-stream';
    const ts = asStored && !native && ref!.transfer_syntax !== '1.2.840.10008.1.2.2' ? ref!.transfer_syntax : '1.2.840.10008.1.2.1';
    const frame = (n: number) => servable(ref!, async () => (asStored && ref!.transfer_syntax !== '1.2.840.10008.1.2.2' ? extractFrame(pm, n - 1) : await decodeFrameToNative(pm, n - 1)));
    // Every frame is found in the value, and the first one made, before the answer starts: a bad one is a 406, not a broken stream.
    for (const n of numbers) await servable(ref!, async () => extractFrame(pm, n - 1));
    const first = await frame(numbers[0]!);
    const body = multipartRelated(
      (async function* () {
        for (const [i, n] of numbers.entries()) yield { contentType: `${mediaType}; transfer-syntax=${ts}`, body: i === 0 ? first : await frame(n) };
      })(),
      { type: mediaType },
    );
    return reply.type(body.contentType).send(body.stream);
  });

  serve(app, routes.retrieveBulkData, async (req: DicomWebRequest, reply: FastifyReply) => {
    const [ref] = await refs(req.params);
    const file = readPart10(await dicom.store.readFile(ref!.path));
    const tag = parseInt(req.params.tag ?? '', 16) >>> 0;
    const el = file.dataset.elements.get(tag);
    if (!el || el.items) throw new TesseraError('TESSERA_NOT_FOUND', `instance ${ref!.sop_uid} has no top-level bulk data element ${req.params.tag}`);
    const body = multipartRelated(
      (async function* () {
        yield { contentType: 'application/octet-stream', body: file.dataset.buffer.subarray(el.offset, el.offset + el.length) };
      })(),
      { type: 'application/octet-stream' },
    );
    return reply.type(body.contentType).send(body.stream);
  });

  // Rendered and thumbnail resources: the first (or named) frame of the middle instance.
  const rendered = (thumbnail: boolean) => async (req: DicomWebRequest & { query: RenderedQuery }, reply: FastifyReply) => {
    const list = await refs(req.params);
    const ref = list[Math.floor(list.length / 2)]!;
    const part10 = readPart10(await dicom.store.readFile(ref.path));
    const pm = pixelModuleOf(part10.dataset, part10.transferSyntaxUid);
    if (!pm) throw new TesseraError('TESSERA_NOT_ACCEPTABLE', `instance ${ref.sop_uid} has no pixel data to render`);
    const accept = parseAccept(req.headers.accept);
    const png = accept.some((a) => a.type === 'image/png') && !accept.some((a) => a.type === 'image/jpeg' && a.q >= (accept.find((b) => b.type === 'image/png')?.q ?? 0));
    const known = accept.length === 0 || accept.some((a) => ['image/png', 'image/jpeg', 'image/*', '*/*'].includes(a.type));
    if (!known) throw new TesseraError('TESSERA_NOT_ACCEPTABLE', `rendered images are image/jpeg or image/png; the Accept header asks for ${req.headers.accept}`);
    const q = req.query;
    const viewport = q.viewport ? Math.max(...q.viewport.split(',').slice(0, 2).map(Number).filter(Number.isFinite)) : thumbnail ? 128 : undefined;
    const win = q.window ? q.window.split(',').map(Number) : undefined;
    const frame = req.params.frames ? Number(req.params.frames.split(',')[0]) - 1 : Math.floor(pm.numberOfFrames / 2);
    const image = await servable(ref, () => renderFrame(pm, frame, {
      format: png ? 'png' : 'jpeg',
      quality: q.quality ? Number(q.quality) : undefined,
      maxSize: viewport && Number.isFinite(viewport) ? viewport : undefined,
      window: win && win.length >= 2 && win.every(Number.isFinite) ? { center: win[0]!, width: win[1]! } : undefined,
    }));
    return reply.type(png ? 'image/png' : 'image/jpeg').send(image);
  };
  serve(app, routes.retrieveStudyRendered, rendered(false));
  serve(app, routes.retrieveSeriesRendered, rendered(false));
  serve(app, routes.retrieveInstanceRendered, rendered(false));
  serve(app, routes.retrieveFramesRendered, rendered(false));
  serve(app, routes.retrieveStudyThumbnail, rendered(true));
  serve(app, routes.retrieveSeriesThumbnail, rendered(true));
  serve(app, routes.retrieveInstanceThumbnail, rendered(true));
  serve(app, routes.retrieveFramesThumbnail, rendered(true));

  // ---------------------------------------------------------------- STOW-RS
  const stow = async (req: DicomWebRequest & { query: { dataset?: string }; raw: IncomingMessage }, reply: FastifyReply) => {
    const p = await project(req.params);
    const target = dicom.target(p.id, req.query.dataset);
    const contentType = req.headers['content-type'] ?? '';
    const results: FileResult[] = [];
    const limits = { maxPartBytes: dicom.options.maxInstanceBytes, maxTotalBytes: dicom.options.maxUploadBytes };
    if (/^application\/dicom\s*(;|$)/i.test(contentType)) {
      // A single instance as the whole body (a convenience many clients use).
      const body = await readBody(req.raw, limits.maxPartBytes, 'the instance', 'TESSERA_DICOM_MAX_INSTANCE_MB');
      results.push(await dicom.importFile(target, body, 'part 1', req.params.study));
    } else {
      if (!/^multipart\/related/i.test(contentType)) {
        throw new TesseraError('TESSERA_UNSUPPORTED_MEDIA_TYPE', `STOW-RS takes multipart/related; type="application/dicom", not "${contentType || 'no content type'}"`);
      }
      let n = 0;
      const batch = dicom.batch(target);
      const refused: FileResult[] = [];
      try {
        for await (const part of readMultipart(req.raw.iterator({ destroyOnReturn: false }), contentType, limits)) {
          n++;
          const type = (part.contentType ?? 'application/dicom').split(';')[0]!.trim().toLowerCase();
          if (type !== 'application/dicom') {
            refused.push({ file: `part ${n}`, status: 'rejected', error: { code: 'TESSERA_UNSUPPORTED_MEDIA_TYPE', message: `part ${n} is ${type}; Tessera's STOW-RS takes application/dicom parts` } });
            continue;
          }
          await batch.add(part.body, `part ${n}`, req.params.study);
        }
      } catch (err) {
        // The body broke off after some parts were stored: say which were, and why the rest was not.
        const done = await batch.results();
        if (!(err instanceof TesseraError) || !done.some((r) => r.status !== 'rejected')) throw err;
        if (!req.raw.complete) reply.header('connection', 'close');
        refused.push({ file: `part ${n + 1} and after`, status: 'rejected', error: { code: err.code, message: err.message } });
      }
      results.push(...(await batch.results()), ...refused);
      if (n === 0) throw new TesseraError('TESSERA_INVALID_REQUEST', 'the STOW-RS body has no parts');
    }
    const stored = results.filter((r) => r.status !== 'rejected');
    const failed = results.filter((r) => r.status === 'rejected');
    // Nothing stored, for our fault only: a 500, not a 409 that blames the request.
    if (stored.length === 0 && failed.length > 0 && failed.every((f) => f.error?.code === 'TESSERA_INTERNAL')) {
      throw new TesseraError('TESSERA_INTERNAL', `no instance was stored: ${failed.map((f) => `${f.file}: ${f.error!.message}`).join('; ')}`);
    }
    const b = base(req.params);
    const body: Record<string, unknown> = {};
    const studies = new Set(stored.map((r) => r.study_instance_uid));
    if (studies.size === 1) body['00081190'] = { vr: 'UR', Value: [`${b}/studies/${[...studies][0]}`] };
    if (failed.length > 0) {
      body['00081198'] = {
        vr: 'SQ',
        Value: failed.map((f) => {
          const { status, comment } = storeStatusOf(f.error ?? 'rejected', { protocol: 'stow-rs' });
          return {
            ...(f.sop_class_uid ? { '00081150': { vr: 'UI', Value: [f.sop_class_uid] } } : {}),
            ...(f.sop_instance_uid ? { '00081155': { vr: 'UI', Value: [f.sop_instance_uid] } } : {}),
            '00081197': { vr: 'US', Value: [status] },
            '00090010': { vr: 'LO', Value: ['TESSERA'] },
            '00091001': { vr: 'LT', Value: [`${f.file}: ${comment}`] },
          };
        }),
      };
    }
    if (stored.length > 0) {
      body['00081199'] = {
        vr: 'SQ',
        Value: stored.map((r) => ({
          '00081150': { vr: 'UI', Value: [r.sop_class_uid] },
          '00081155': { vr: 'UI', Value: [r.sop_instance_uid] },
          '00081190': { vr: 'UR', Value: [`${b}/studies/${r.study_instance_uid}/series/${r.series_instance_uid}/instances/${r.sop_instance_uid}`] },
        })),
      };
    }
    const status = failed.length === 0 ? 200 : stored.length === 0 ? 409 : 202;
    return reply.status(status).type(DICOM_JSON).send(JSON.stringify(body));
  };
  serve(app, routes.storeInstances, stow);
  serve(app, routes.storeStudyInstances, stow);
}

/** WADO-RS instances are sent as stored: a client that asks for one specific other transfer syntax gets a 406 saying so. */
function checkInstanceAccept(accept: string | undefined, list: InstanceRef[]): void {
  const entries = parseAccept(accept).filter((a) => a.type === 'multipart/related' || a.type === 'application/dicom');
  if (entries.length === 0) return;
  for (const e of entries) {
    const ts = e.params['transfer-syntax'];
    if (!ts || ts === '*' || list.every((r) => r.transfer_syntax === ts)) return;
  }
  const stored = [...new Set(list.map((r) => r.transfer_syntax))].join(', ');
  throw new TesseraError('TESSERA_NOT_ACCEPTABLE', `the instances are stored as ${stored} and Tessera does not transcode; ask with transfer-syntax=* (Accept: multipart/related; type="application/dicom"; transfer-syntax=*)`);
}

async function framesOf(dicom: DicomService, ref: InstanceRef, frames: string) {
  const part10 = readPart10(await dicom.store.readFile(ref.path));
  const pm = pixelModuleOf(part10.dataset, part10.transferSyntaxUid);
  if (!pm) throw new TesseraError('TESSERA_NOT_FOUND', `instance ${ref.sop_uid} has no pixel data`);
  const numbers = frames.split(',').map((s) => Number(s.trim()));
  for (const n of numbers) {
    if (!Number.isInteger(n) || n < 1 || n > pm.numberOfFrames) {
      throw new TesseraError('TESSERA_NOT_FOUND', `frame ${frames} does not exist: instance ${ref.sop_uid} has ${pm.numberOfFrames} frame(s), numbered from 1`);
    }
  }
  return { pm, numbers };
}

/**
 * Makes frames or an image of a stored instance. Pixel data that contradicts its own
 * header (shorter than Rows x Columns x ... say, a codestream of another size) is the
 * instance's fault, not the request's: 406 naming the instance and the mismatch.
 */
async function servable<T>(ref: InstanceRef, make: () => Promise<T>): Promise<T> {
  try {
    return await make();
  } catch (err) {
    if (err instanceof TesseraError && err.code === 'TESSERA_INVALID_DICOM') {
      throw new TesseraError('TESSERA_NOT_ACCEPTABLE', `instance ${ref.sop_uid} cannot be served as pixels: ${err.message}`, { cause: err });
    }
    throw err;
  }
}

/** QIDO includefield of instance-level attributes that only the files hold. */
async function withFileAttributes(dicom: DicomService, json: string, paths: string[], tags: number[]): Promise<string> {
  const list = JSON.parse(json) as Record<string, unknown>[];
  for (let i = 0; i < list.length; i++) {
    const p = await readHeader(dicom.store, paths[i]!);
    Object.assign(list[i]!, toDicomJson(p.dataset, { only: tags }));
  }
  return JSON.stringify(list);
}

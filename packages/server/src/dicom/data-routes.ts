import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { dataRoutes as routes, type ImportError, type ImportResult, type Series, type SeriesSort } from '@tessera/api';
import { readMultipart, searchSeries, seriesFacets, seriesTagsJson, typedTags, zipStream, type DicomJson, type DicomService, type FileResult, type IngestTarget, type SeriesRow } from '@tessera/dicom';
import { ERROR_CODES, TesseraError, type ErrorCode } from '@tessera/model';
import { iso, parseSort } from '../http/lists.ts';
import { limitBytes, readBody } from '../http/read-body.ts';
import { serve } from '../http/serve-route.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { ProjectStore } from '../projects/project-store.ts';
import { filterFromQuery } from './series-filter.ts';

export interface DataRoutesOptions {
  dicom: DicomService;
  projects: ProjectStore;
  events?: EventBus;
}

/** A series as the API shows it. */
export function seriesJson(s: SeriesRow, projectName: string): Series {
  return {
    series_instance_uid: s.series_uid,
    study_instance_uid: s.study_uid,
    project: projectName,
    modality: s.modality,
    series_number: s.series_number,
    series_description: s.series_description,
    body_part: s.body_part,
    manufacturer: s.manufacturer,
    series_date: isoDate(s.series_date),
    patient_id: s.patient_id,
    patient_name: s.patient_name,
    study_date: isoDate(s.study_date),
    study_description: s.study_description,
    instances: Number(s.num_instances),
    size_bytes: Number(s.size_bytes),
    created_at: iso(Number(s.created_at))!,
    updated_at: iso(Number(s.updated_at))!,
    complete: s.completed_at !== null,
    thumbnail: s.thumbnail ? `/api/series/${s.series_uid}/thumbnail?project=${projectName}` : null,
    thumbnail_error: s.thumbnail_error ?? null,
  };
}

function isoDate(d: string | null): string | null {
  return d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}

/** The metadata index, uploads and downloads: /api/series, /api/dicom/import, /api/*\/download. */
export async function dataRoutes(app: FastifyInstance, opts: DataRoutesOptions): Promise<void> {
  const { dicom, projects } = opts;
  app.addContentTypeParser(/^(multipart\/form-data|application\/dicom|application\/zip|application\/x-zip-compressed|application\/octet-stream)/, (_req, _payload, done) => done(null));
  const project = (name: string | undefined) => (name ? projects.require(name) : projects.ensureDefault());
  const datasetId = async (projectId: string, name: string | undefined) => (name ? (await dicom.datasets.require(projectId, name)).id : undefined);
  const seriesRow = (projectId: string, uid: string) =>
    dicom.db.selectFrom('dicom_series').selectAll().where('project_id', '=', projectId).where('series_uid', '=', uid).executeTakeFirst();

  serve(app, routes.list, async (req) => {
    const q = req.query;
    const p = await project(q.project);
    const filter = filterFromQuery(q, p.id, await datasetId(p.id, q.dataset));
    const sort = parseSort<SeriesSort>(q.sort, q.order, '-created_at', 'desc');
    const r = await searchSeries(dicom.db, { ...filter, sort: sort.field, order: sort.order, limit: q.limit ?? 100, offset: q.offset ?? 0 });
    return { items: r.items.map((s) => seriesJson(s, p.name)), total: r.total, limit: q.limit ?? 100, offset: q.offset ?? 0 };
  });

  serve(app, routes.facets, async (req) => {
    const q = req.query;
    const p = await project(q.project);
    return seriesFacets(dicom.db, filterFromQuery(q, p.id, await datasetId(p.id, q.dataset)));
  });

  serve(app, routes.get, async (req) => {
    const { uid } = req.params;
    const p = await project(req.query.project);
    const row = await seriesRow(p.id, uid);
    if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `series ${uid} does not exist in project "${p.name}"`);
    const tags = (await seriesTagsJson(dicom.db, p.id, uid)) ?? '{}';
    return { ...seriesJson(row, p.name), datasets: await dicom.datasets.datasetsOf(p.id, uid), tags: typedTags(JSON.parse(tags) as DicomJson) };
  });

  serve(app, routes.instances, async (req) => {
    const { uid } = req.params;
    const q = req.query;
    const p = await project(q.project);
    const counted = await dicom.db.selectFrom('dicom_instances').select((eb) => eb.fn.countAll<number>().as('n')).where('project_id', '=', p.id).where('series_uid', '=', uid).executeTakeFirstOrThrow();
    const rows = await dicom.db
      .selectFrom('dicom_instances')
      .select(['sop_uid', 'sop_class_uid', 'instance_number', 'transfer_syntax', 'size_bytes', 'received_at'])
      .where('project_id', '=', p.id)
      .where('series_uid', '=', uid)
      .orderBy('instance_number')
      .orderBy('sop_uid')
      .limit(q.limit ?? 1000)
      .offset(q.offset ?? 0)
      .execute();
    return {
      items: rows.map((r) => ({ sop_instance_uid: r.sop_uid, sop_class_uid: r.sop_class_uid, instance_number: r.instance_number, transfer_syntax: r.transfer_syntax, size_bytes: Number(r.size_bytes), received_at: iso(Number(r.received_at))! })),
      total: Number(counted.n),
      limit: q.limit ?? 1000,
      offset: q.offset ?? 0,
    };
  });

  serve(app, routes.thumbnail, async (req, reply) => {
    const { uid } = req.params;
    const p = await project(req.query.project);
    const row = await dicom.db.selectFrom('dicom_series').select(['thumbnail', 'thumbnail_error', 'completed_at']).where('project_id', '=', p.id).where('series_uid', '=', uid).executeTakeFirst();
    if (!row) throw new TesseraError('TESSERA_NOT_FOUND', `series ${uid} does not exist in project "${p.name}"`);
    if (!row.thumbnail) {
      const why = row.thumbnail_error ?? (row.completed_at === null ? 'the series is still arriving; its thumbnail is made once it is complete' : 'the thumbnail is being made');
      throw new TesseraError('TESSERA_NOT_FOUND', `series ${uid} has no thumbnail: ${why}`);
    }
    reply.header('cache-control', 'max-age=60');
    return reply.type('image/png').send(await dicom.store.readFile(row.thumbnail));
  });

  serve(app, routes.delete, async (req) => {
    const { uid } = req.params;
    const p = await project(req.query.project);
    return { deleted: uid, instances: await dicom.store.deleteSeries(p.id, uid) };
  });

  serve(app, routes.deleteMany, async (req) => {
    const b = req.body;
    const p = await project(b.project);
    const results: { series: string; instances?: number; error?: string }[] = [];
    for (const uid of b.series) {
      try {
        results.push({ series: uid, instances: await dicom.store.deleteSeries(p.id, uid) });
      } catch (err) {
        if (!(err instanceof TesseraError) || err.code !== 'TESSERA_NOT_FOUND') throw err;
        results.push({ series: uid, error: err.message });
      }
    }
    return { deleted: results.filter((r) => r.error === undefined).length, results };
  });

  // ------------------------------------------------------------------ import
  serve(app, routes.import, async (req, reply) => {
    const q = req.query;
    const p = await project(q.project);
    const target = await dicom.target(p.id, q.dataset);
    // target() always names the dataset (the import-date one by default).
    const dataset = target.datasetName!;
    // As sent: a multipart boundary is case-sensitive (browsers' FormData boundaries are mixed-case).
    const contentType = req.headers['content-type'] ?? '';
    const uploadId = q.upload_id ?? `up-${randomBytes(6).toString('hex')}`;
    const announce = (state: 'running' | 'done' | 'failed', files: number, r: FileResult[] = []): void =>
      opts.events?.publish({
        type: 'import', project: p.name, id: uploadId, dataset, state, files,
        stored: r.filter((x) => x.status === 'stored' || x.status === 'replaced').length, duplicates: r.filter((x) => x.status === 'duplicate').length, rejected: r.filter((x) => x.status === 'rejected').length,
      });
    announce('running', 0);
    // Parts received so far, told at most every 250 ms.
    let last = Date.now();
    const progress = (files: number): void => {
      if (Date.now() - last < 250) return;
      last = Date.now();
      announce('running', files);
    };
    let results: FileResult[];
    try {
      results = await importBody(dicom, target, req, contentType, progress);
    } catch (err) {
      announce('failed', 0);
      throw err;
    }
    announce(results.some((r) => r.status !== 'rejected') || results.length === 0 ? 'done' : 'failed', results.length, results);
    const summary: ImportResult = {
      upload_id: uploadId,
      project: p.name,
      dataset,
      stored: results.filter((r) => r.status === 'stored' || r.status === 'replaced').length,
      duplicates: results.filter((r) => r.status === 'duplicate').length,
      rejected: results.filter((r) => r.status === 'rejected').length,
      files: results,
    };
    if (results.length > 0 && summary.rejected === results.length) {
      // Nothing stored, for our fault alone (a bug met by every file): a 500 in the plain error format.
      if (results.every((r) => r.error?.code === 'TESSERA_INTERNAL')) {
        throw new TesseraError('TESSERA_INTERNAL', `no file was stored: ${results.slice(0, 3).map((r) => `${r.file}: ${r.error!.message}`).join('; ')}`);
      }
      const first = results[0]!.error!;
      const status = results.every((r) => r.error?.code === first.code) && first.code in ERROR_CODES ? ERROR_CODES[first.code as ErrorCode].status : 400;
      const refused: ImportError = {
        error: {
          code: results.length === 1 ? first.code : 'TESSERA_INVALID_DICOM',
          message:
            results.length === 1
              ? `${results[0]!.file}: ${first.message}; nothing was stored`
              : `none of the ${results.length} files was stored: ${results.slice(0, 3).map((r) => `${r.file}: ${r.error?.message}`).join('; ')}; see "files" for each one`,
          details: results.map((r) => ({ where: r.file, message: r.error?.message ?? '' })),
        },
        ...summary,
      };
      return reply.status(status).send(refused);
    }
    return summary;
  });

  // ------------------------------------------------------------------ export
  const sendZip = async (reply: FastifyReply, name: string, projectId: string, where: { study?: string; series?: string[] }) => {
    let q = dicom.db.selectFrom('dicom_instances').select(['path', 'study_uid', 'series_uid', 'sop_uid']).where('project_id', '=', projectId);
    if (where.study) {
      const study = where.study;
      q = q.where('series_uid', 'in', (eb) => eb.selectFrom('dicom_series').select('series_uid').where('project_id', '=', projectId).where('study_uid', '=', study));
    }
    if (where.series) q = q.where('series_uid', 'in', where.series.length ? where.series : ['-']);
    const rows = await q.orderBy('study_uid').orderBy('series_uid').orderBy('instance_number').execute();
    if (rows.length === 0) {
      const what = where.study ? `study ${where.study} does not exist in this project` : where.series?.length === 1 && name.startsWith('series-') ? `series ${where.series[0]} does not exist in this project` : `${name.replace(/^dataset-/, 'dataset ')} has no series to download`;
      throw new TesseraError('TESSERA_NOT_FOUND', what);
    }
    const stream = zipStream(
      (async function* () {
        for (const r of rows) yield { name: `${r.study_uid}/${r.series_uid}/${r.sop_uid}.dcm`, file: dicom.store.filePath(r.path) };
      })(),
    );
    reply.header('content-disposition', `attachment; filename="${name.replace(/[^A-Za-z0-9._-]/g, '_')}.zip"`);
    return reply.type('application/zip').send(stream);
  };
  serve(app, routes.downloadSeries, async (req, reply) => {
    const { uid } = req.params;
    const p = await project(req.query.project);
    return sendZip(reply, `series-${uid}`, p.id, { series: [uid] });
  });
  serve(app, routes.downloadStudy, async (req, reply) => {
    const { uid } = req.params;
    const p = await project(req.query.project);
    return sendZip(reply, `study-${uid}`, p.id, { study: uid });
  });
  serve(app, routes.downloadDataset, async (req, reply) => {
    const { name } = req.params;
    const p = await project(req.query.project);
    const d = await dicom.datasets.require(p.id, name);
    return sendZip(reply, `dataset-${name}`, p.id, { series: await dicom.datasets.seriesOf(d.id) });
  });
}

/** Reads an upload body of any accepted kind and imports what it holds. */
async function importBody(dicom: DicomService, target: IngestTarget, req: FastifyRequest, contentType: string, progress: (files: number) => void): Promise<FileResult[]> {
  const mediaType = contentType.toLowerCase();
  const max = dicom.options.maxUploadBytes;
  if (mediaType.startsWith('application/dicom')) {
    return [await dicom.importFile(target, await readBody(req.raw, dicom.options.maxInstanceBytes, 'the file', 'TESSERA_DICOM_MAX_INSTANCE_MB'), filenameOf(req) ?? 'upload.dcm')];
  }
  if (mediaType.startsWith('application/zip') || mediaType.startsWith('application/x-zip-compressed')) {
    return withTempFile(async (file) => {
      await pipeline(req.raw, limitBytes(max, 'the archive', 'TESSERA_DICOM_MAX_UPLOAD_MB'), createWriteStream(file));
      return dicom.importZip(target, file);
    });
  }
  if (mediaType.startsWith('multipart/form-data')) {
    const results: FileResult[] = [];
    let batch = dicom.batch(target);
    let n = 0;
    try {
    for await (const part of readMultipart(req.raw.iterator({ destroyOnReturn: false }), contentType, { maxPartBytes: max, maxTotalBytes: max })) {
      n++;
      const name = part.filename ?? `part ${n}`;
      if (/\.zip$/i.test(name) || part.contentType === 'application/zip') {
        // Results stay in the order of the parts: the files before the archive first.
        results.push(...(await batch.results()));
        batch = dicom.batch(target);
        try {
          const zipped = await withTempFile(async (file) => {
            await pipeline(Readable.from([part.body]), createWriteStream(file));
            return dicom.importZip(target, file);
          });
          results.push(...zipped.map((r) => ({ ...r, file: `${name}/${r.file}` })));
          progress(n + zipped.length);
        } catch (err) {
          if (!(err instanceof TesseraError) || err.kind !== 'user') throw err;
          results.push({ file: name, status: 'rejected', error: { code: err.code, message: err.message } });
        }
      } else {
        await batch.add(part.body, name);
        progress(n);
      }
    }
    } catch (err) {
      // The body broke off after some files were stored: report them, and why the rest was not.
      results.push(...(await batch.results()));
      if (!(err instanceof TesseraError) || !results.some((r) => r.status !== 'rejected')) throw err;
      return [...results, { file: `part ${n + 1} and after`, status: 'rejected', error: { code: err.code, message: err.message } }];
    }
    results.push(...(await batch.results()));
    return results;
  }
  throw new TesseraError('TESSERA_UNSUPPORTED_MEDIA_TYPE', `upload a DICOM file as application/dicom, a .zip as application/zip, or files as multipart/form-data; got "${contentType || 'no content type'}"`);
}

function filenameOf(req: FastifyRequest): string | undefined {
  const cd = req.headers['content-disposition'];
  return cd ? /filename="?([^";]+)"?/.exec(cd)?.[1] : undefined;
}

async function withTempFile<T>(fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'tessera-upload-'));
  try {
    return await fn(join(dir, 'upload.zip'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

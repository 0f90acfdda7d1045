import { open } from 'node:fs/promises';
import type { Kysely } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { PIXEL_DATA } from '../parse/dataset-reader.ts';
import { toDicomJson, type DicomJson } from '../parse/dataset-values.ts';
import { tagHex } from '../parse/data-dictionary.ts';
import { readPart10, type Part10 } from '../parse/part10-reader.ts';
import type { DicomStore } from '../store/dicom-store.ts';
import type { DicomTables } from '../store/dicom-tables.ts';

export interface InstanceRef {
  sop_uid: string;
  series_uid: string;
  study_uid: string;
  sop_class_uid: string;
  transfer_syntax: string;
  path: string;
  size_bytes: number;
}

/** The instances of a study, a series or one instance, in series then instance-number order; 404 when there are none. */
export async function instanceRefs(db: Kysely<DicomTables>, q: { projectId: string; studyUid?: string; seriesUid?: string; sopUid?: string }): Promise<InstanceRef[]> {
  let query = db
    .selectFrom('dicom_instances')
    .select(['sop_uid', 'series_uid', 'study_uid', 'sop_class_uid', 'transfer_syntax', 'path', 'size_bytes'])
    .where('project_id', '=', q.projectId);
  if (q.studyUid) {
    const studyUid = q.studyUid;
    // Through the series: dicom_instances has no study index.
    query = query.where('series_uid', 'in', (eb) => eb.selectFrom('dicom_series').select('series_uid').where('project_id', '=', q.projectId).where('study_uid', '=', studyUid));
  }
  if (q.seriesUid) query = query.where('series_uid', '=', q.seriesUid);
  if (q.sopUid) query = query.where('sop_uid', '=', q.sopUid);
  const rows = await query.orderBy('series_uid').orderBy('instance_number').orderBy('sop_uid').execute();
  if (rows.length === 0) {
    const what = q.sopUid ? `instance ${q.sopUid}` : q.seriesUid ? `series ${q.seriesUid}` : `study ${q.studyUid}`;
    const where = q.sopUid && q.seriesUid ? ` in series ${q.seriesUid}` : q.seriesUid && q.studyUid ? ` in study ${q.studyUid}` : '';
    throw new TesseraError('TESSERA_NOT_FOUND', `${what}${where} does not exist in this project`);
  }
  return rows.map((r) => ({ ...r, size_bytes: Number(r.size_bytes) }));
}

const HEAD_BYTES = 64 * 1024;

/**
 * Reads a stored instance up to its pixel data. Most headers fit in the first
 * 64 KB, so large images are not read whole just for their attributes.
 */
export async function readHeader(store: DicomStore, relative: string): Promise<Part10> {
  const fh = await open(store.filePath(relative), 'r').catch((err: Error) => {
    throw new TesseraError('TESSERA_STORAGE', `the stored file ${relative} cannot be read: ${err.message}`, { cause: err });
  });
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, HEAD_BYTES));
    await fh.read(head, 0, head.length, 0);
    if (size > HEAD_BYTES) {
      try {
        return readPart10(head, { stopAtTag: PIXEL_DATA });
      } catch {
        // The header is longer than the head (or deflated): read it all.
      }
      const all = Buffer.alloc(size);
      await fh.read(all, 0, size, 0);
      return readPart10(all, { stopAtTag: PIXEL_DATA });
    }
    return readPart10(head, { stopAtTag: PIXEL_DATA });
  } finally {
    await fh.close();
  }
}

/** WADO-RS metadata of one instance (DICOM JSON), pixel data as a BulkDataURI. */
export async function instanceMetadata(store: DicomStore, ref: InstanceRef, baseUrl: string): Promise<DicomJson> {
  const p = await readHeader(store, ref.path);
  const instanceUrl = `${baseUrl}/studies/${ref.study_uid}/series/${ref.series_uid}/instances/${ref.sop_uid}`;
  const json = toDicomJson(p.dataset, {
    skipMeta: true,
    inlineBinaryMax: 64 * 1024,
    bulkDataUri: (path) => `${instanceUrl}/bulkdata/${path.map(tagHex).join('/')}`,
  });
  // The header was read up to the pixel data: point to it for images.
  if (json['00280010']) json['7FE00010'] = { vr: ref.transfer_syntax === '1.2.840.10008.1.2' ? 'OW' : 'OB', BulkDataURI: `${instanceUrl}/frames/1` };
  json['00020010'] = { vr: 'UI', Value: [ref.transfer_syntax] };
  json['00081190'] = { vr: 'UR', Value: [instanceUrl] };
  return json;
}

/** The media type a frame of this transfer syntax is sent as (PS3.18 §8.7.3). */
export function frameMediaType(transferSyntaxUid: string): string {
  if (/^1\.2\.840\.10008\.1\.2\.4\.(50|51|57|70)$/.test(transferSyntaxUid)) return 'image/jpeg';
  if (/^1\.2\.840\.10008\.1\.2\.4\.(80|81)$/.test(transferSyntaxUid)) return 'image/jls';
  if (/^1\.2\.840\.10008\.1\.2\.4\.(90|91)$/.test(transferSyntaxUid)) return 'image/jp2';
  if (/^1\.2\.840\.10008\.1\.2\.4\.20[123]$/.test(transferSyntaxUid)) return 'image/jphc';
  if (transferSyntaxUid === '1.2.840.10008.1.2.5') return 'image/dicom-rle';
  return 'application/octet-stream';
}

/** A parsed Accept header: media types with their parameters, best first. */
export interface AcceptEntry {
  type: string;
  params: Record<string, string>;
  q: number;
}

export function parseAccept(header: string | undefined): AcceptEntry[] {
  if (!header) return [];
  const entries: AcceptEntry[] = [];
  // Commas separate entries, but may appear inside a quoted type="..." parameter.
  for (const raw of header.match(/(?:[^,"]|"[^"]*")+/g) ?? []) {
    const [type, ...rest] = raw.split(';').map((s) => s.trim());
    if (!type) continue;
    const params: Record<string, string> = {};
    for (const p of rest) {
      const i = p.indexOf('=');
      if (i > 0) params[p.slice(0, i).trim().toLowerCase()] = p.slice(i + 1).trim().replace(/^"|"$/g, '');
    }
    const q = params.q !== undefined ? Number(params.q) : 1;
    entries.push({ type: type.toLowerCase(), params, q: Number.isFinite(q) ? q : 1 });
  }
  return entries.sort((a, b) => b.q - a.q);
}

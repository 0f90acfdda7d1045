import { cstore, isStoredStatus, type CStoreOutcome } from './cstore-client.ts';
import type { HostileInput } from './dicom-mutator.ts';

export type Channel = 'c-store' | 'stow-rs' | 'upload';
export const CHANNELS: readonly Channel[] = ['c-store', 'stow-rs', 'upload'];

/** What a server answered to one input or one read: a status class a report can count. */
export interface Answer {
  /** e.g. `200`, `409`, `C-STORE 0xC000`, `association-rejected`, `hang`. */
  label: string;
  /** The instance was acknowledged as stored. */
  stored: boolean;
  /** The server's fault or worse: a 5xx, a hang past the timeout, a refused connection. */
  fault: boolean;
  detail?: string;
  /** The SOP Instance UID the server said it stored, when it says (uploads, STOW-RS). */
  sop?: string;
}

export interface StoredInstance {
  study: string;
  series: string;
  sop: string;
}

/** A DICOM server under attack: Tessera, or Orthanc as the peer. */
export interface Target {
  name: string;
  send(channel: Channel, input: HostileInput): Promise<Answer>;
  /** Every instance the server lists over QIDO-RS. */
  instances(): Promise<StoredInstance[]>;
  /** The reads a viewer makes of an instance (metadata, rendered, thumbnail, frame 1), each as an answer. */
  read(instance: StoredInstance): Promise<Array<[string, Answer]>>;
  /** True while the server answers at all. */
  alive(): Promise<boolean>;
}

export interface TargetOptions {
  name: string;
  baseUrl: string;
  dicomWebRoot: string;
  dicomPort: number;
  calledAe: string;
  timeoutMs: number;
  /** How a single file is uploaded outside STOW-RS. */
  uploadUrl: string;
  /** Orthanc's DICOMweb plugin has no /thumbnail. */
  thumbnails: boolean;
  /** The SOP Instance UID an upload's answer acknowledges as stored, if any. */
  uploadStored: (status: number, body: unknown) => Promise<string | undefined>;
  /** Sent as `Authorization: Bearer` with every HTTP request (a server with access control on). */
  token?: string;
}

const BOUNDARY = 'hostile-4a1c9e';

async function send(url: string, init: RequestInit, timeoutMs: number): Promise<{ status: number; body: unknown; text: string } | Answer> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: fine for images and frames
    }
    return { status: res.status, body, text };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    if (e.name === 'TimeoutError') return { label: 'hang', stored: false, fault: true, detail: `no answer in ${timeoutMs} ms` };
    return { label: 'connection-failed', stored: false, fault: true, detail: e.cause?.code ?? e.message };
  }
}

const isAnswer = (r: unknown): r is Answer => typeof r === 'object' && r !== null && 'label' in r;

function httpAnswer(status: number, stored: boolean, text: string): Answer {
  return { label: String(status), stored, fault: status >= 500, detail: status >= 400 ? text.slice(0, 300) : undefined };
}

/** The SOP Instance UID a STOW-RS answer lists as stored (ReferencedSOPSequence), if any. */
function stowStored(body: unknown): string | undefined {
  const refs = (body as Record<string, { Value?: Array<Record<string, { Value?: string[] }>> }> | undefined)?.['00081199']?.Value ?? [];
  return refs[0]?.['00081155']?.Value?.[0];
}

function cstoreAnswer(o: CStoreOutcome): Answer {
  if (o.kind === 'status') {
    const label = `C-STORE 0x${o.status.toString(16).padStart(4, '0').toUpperCase()}`;
    // 0x0110 "processing failure" and 0xA7xx "out of resources" say the server failed, not the input.
    const fault = o.status === 0x0110 || (o.status & 0xff00) === 0xa700;
    return { label, stored: isStoredStatus(o.status), fault, detail: o.comment };
  }
  return { label: o.kind, stored: false, fault: o.kind === 'hang' || o.kind === 'connect-failed', detail: o.detail };
}

export function dicomTarget(o: TargetOptions): Target {
  const web = `${o.baseUrl}${o.dicomWebRoot}`;
  const auth: Record<string, string> = o.token ? { authorization: `Bearer ${o.token}` } : {};
  const request = (url: string, init: RequestInit, timeoutMs: number) => send(url, { ...init, headers: { ...(init.headers as Record<string, string> | undefined), ...auth } }, timeoutMs);
  return {
    name: o.name,
    async send(channel, input) {
      if (channel === 'c-store') {
        return cstoreAnswer(
          await cstore({ port: o.dicomPort, calledAe: o.calledAe, sopClassUid: input.sopClassUid, sopInstanceUid: input.sopInstanceUid, transferSyntax: input.transferSyntax, dataset: input.dataset, timeoutMs: o.timeoutMs }),
        );
      }
      if (channel === 'stow-rs') {
        const body = Buffer.concat([Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), input.file, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
        const r = await request(`${web}/studies`, { method: 'POST', headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, accept: 'application/dicom+json' }, body }, o.timeoutMs);
        if (isAnswer(r)) return r;
        const sop = r.status < 300 ? stowStored(r.body) : undefined;
        return { ...httpAnswer(r.status, sop !== undefined, r.text), sop };
      }
      const r = await request(o.uploadUrl, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(input.file) }, o.timeoutMs);
      if (isAnswer(r)) return r;
      const sop = await o.uploadStored(r.status, r.body);
      return { ...httpAnswer(r.status, sop !== undefined, r.text), sop };
    },
    async instances() {
      const out: StoredInstance[] = [];
      for (let offset = 0; ; offset += 500) {
        const r = await request(`${web}/instances?limit=500&offset=${offset}&includefield=0020000D,0020000E`, { headers: { accept: 'application/dicom+json' } }, 60_000);
        if (isAnswer(r)) throw new Error(`listing instances failed: ${r.label} ${r.detail ?? ''}`);
        if (r.status === 204) break;
        if (r.status !== 200) throw new Error(`listing instances answered ${r.status}: ${r.text.slice(0, 300)}`);
        const page = r.body as Array<Record<string, { Value?: string[] }>>;
        for (const i of page) {
          const sop = i['00080018']?.Value?.[0];
          if (sop) out.push({ study: i['0020000D']?.Value?.[0] ?? '', series: i['0020000E']?.Value?.[0] ?? '', sop });
        }
        if (page.length < 500) break;
      }
      return out;
    },
    async read(inst) {
      const base = `${web}/studies/${inst.study}/series/${inst.series}/instances/${inst.sop}`;
      const reads: Array<[string, string, string]> = [
        ['metadata', `${base}/metadata`, 'application/dicom+json'],
        ['rendered', `${base}/rendered`, 'image/jpeg'],
        ['rendered-png', `${base}/rendered`, 'image/png'],
        ['frame', `${base}/frames/1`, 'multipart/related; type="application/octet-stream"; transfer-syntax=*'],
      ];
      if (o.thumbnails) reads.push(['thumbnail', `${base}/thumbnail`, 'image/jpeg']);
      const out: Array<[string, Answer]> = [];
      for (const [what, url, accept] of reads) {
        const r = await request(url, { headers: { accept } }, o.timeoutMs);
        out.push([what, isAnswer(r) ? r : httpAnswer(r.status, false, r.text)]);
      }
      return out;
    },
    async alive() {
      const r = await request(`${web}/studies?limit=1`, { headers: { accept: 'application/dicom+json' } }, 10_000);
      return !isAnswer(r) && r.status < 500;
    },
  };
}

/** Tessera: `/dicom-web`, the DICOM listener's default AE, uploads to `/api/dicom/import`. */
export function tesseraTarget(options: { baseUrl: string; dicomPort: number; timeoutMs: number; token?: string }): Target {
  return dicomTarget({
    token: options.token,
    name: 'Tessera',
    baseUrl: options.baseUrl,
    dicomWebRoot: '/dicom-web',
    dicomPort: options.dicomPort,
    calledAe: 'TESSERA',
    timeoutMs: options.timeoutMs,
    uploadUrl: `${options.baseUrl}/api/dicom/import?dataset=hostile-upload`,
    thumbnails: true,
    uploadStored: async (status, body) => {
      const files = (body as { files?: Array<{ status: string; sop_instance_uid?: string }> } | undefined)?.files ?? [];
      return status === 200 ? files.find((f) => f.status === 'stored' || f.status === 'replaced')?.sop_instance_uid : undefined;
    },
  });
}

/** Orthanc with its DICOMweb plugin: the peer the bench compares with. */
export function orthancTarget(options: { baseUrl: string; dicomPort: number; timeoutMs: number }): Target {
  return dicomTarget({
    name: 'Orthanc',
    baseUrl: options.baseUrl,
    dicomWebRoot: '/dicom-web',
    dicomPort: options.dicomPort,
    calledAe: 'ORTHANC',
    timeoutMs: options.timeoutMs,
    uploadUrl: `${options.baseUrl}/instances`,
    thumbnails: false,
    // Orthanc answers with its own ID, not the UID: the UID is then looked up by that ID.
    uploadStored: async (status, body) => {
      const b = body as { Status?: string; ID?: string } | undefined;
      if (status !== 200 || (b?.Status !== 'Success' && b?.Status !== 'AlreadyStored') || !b.ID) return undefined;
      const tags = await send(`${options.baseUrl}/instances/${b.ID}/simplified-tags`, {}, options.timeoutMs);
      return isAnswer(tags) ? `orthanc instance ${b.ID}` : ((tags.body as { SOPInstanceUID?: string } | undefined)?.SOPInstanceUID ?? `orthanc instance ${b.ID}`);
    },
  });
}

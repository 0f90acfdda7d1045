/**
 * DICOMweb load for the benchmarks: a STOW-RS client and QIDO-RS timings,
 * used identically for Tessera and Orthanc.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { percentile } from './stats.ts';

export interface HttpResult {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

interface RequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  body?: Buffer;
  agent?: Agent;
  timeoutMs?: number;
}

/**
 * One HTTP request over a keep-alive agent, so that connection setup does not
 * count in any figure. A request on a kept-alive socket that the server closed
 * meanwhile (Orthanc closes idle ones after 1 s) is sent again once, on a new socket.
 */
export async function httpRequest(url: string, o: RequestOptions): Promise<HttpResult> {
  try {
    return await once(url, o);
  } catch (err) {
    if ((err as { reusedSocket?: boolean }).reusedSocket) return once(url, o);
    throw err;
  }
}

function once(url: string, o: RequestOptions): Promise<HttpResult> {
  const timeoutMs = o.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers, agent: o.agent ?? defaultAgent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${o.method ?? 'GET'} ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      const stale = req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
      reject(stale ? Object.assign(err, { reusedSocket: true }) : err);
    });
    req.end(o.body);
  });
}

const defaultAgent = new Agent({ keepAlive: true, maxSockets: 16 });

export interface StowOptions {
  /** DICOMweb base: the instances are posted to `<url>/studies`. */
  url: string;
  files: readonly string[];
  /** Requests in flight at once. */
  concurrency: number;
  /** Instances per multipart request. */
  instancesPerRequest: number;
}

export interface StowResult {
  instances: number;
  requests: number;
  ms: number;
  perSecond: number;
  /** Time of each request, from sending to the whole answer (ms). */
  requestMs: number[];
}

/**
 * Posts the files as multipart/related; type="application/dicom" bodies and
 * checks every answer: status 200 and, in its JSON, one ReferencedSOPSequence
 * item per instance sent and no FailedSOPSequence item. Throws on the first
 * failure. Files are read as they are sent (from the page cache after the
 * first run), so that 100,000 of them need not fit in memory.
 */
export async function stow(o: StowOptions): Promise<StowResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  const batches: (readonly string[])[] = [];
  for (let i = 0; i < o.files.length; i += o.instancesPerRequest) batches.push(o.files.slice(i, i + o.instancesPerRequest));
  const requestMs: number[] = [];
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      const boundary = `tessera-bench-${randomBytes(12).toString('hex')}`;
      const parts: Buffer[] = [];
      for (const f of batch) {
        parts.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1'), await readFile(f), Buffer.from('\r\n', 'latin1'));
      }
      parts.push(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
      const body = Buffer.concat(parts);
      const r0 = performance.now();
      const res = await httpRequest(`${o.url}/studies`, {
        method: 'POST',
        agent,
        body,
        headers: {
          'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
          'content-length': body.length,
          accept: 'application/dicom+json',
        },
      });
      requestMs.push(performance.now() - r0);
      checkStow(res, batch.length, batch[0]!);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(o.concurrency, batches.length) }, worker));
  } finally {
    agent.destroy();
  }
  const ms = performance.now() - t0;
  return { instances: o.files.length, requests: batches.length, ms, perSecond: o.files.length / (ms / 1000), requestMs };
}

type DicomJson = Record<string, { vr?: string; Value?: unknown[] }>;

function checkStow(res: HttpResult, sent: number, first: string): void {
  const text = res.body.toString('utf8');
  if (res.status !== 200) throw new Error(`STOW of ${sent} instance(s) (first ${first}) answered ${res.status}: ${text.slice(0, 500)}`);
  let json: DicomJson;
  try {
    json = JSON.parse(text) as DicomJson;
  } catch {
    throw new Error(`STOW answered 200 without a DICOM JSON body: ${text.slice(0, 200)}`);
  }
  const failed = json['00081198']?.Value?.length ?? 0;
  const stored = json['00081199']?.Value?.length ?? 0;
  if (failed > 0 || stored !== sent) throw new Error(`STOW of ${sent} instance(s) (first ${first}): ${stored} stored, ${failed} failed: ${text.slice(0, 500)}`);
}

export interface QidoOptions {
  /** DICOMweb base, e.g. http://127.0.0.1:18142/dicom-web */
  url: string;
  /** Path and query under the base, e.g. `/studies?PatientName=SMITH*`. */
  path: string;
  /** Timed requests. */
  reps: number;
  /** Results every answer must hold; a mismatch throws. */
  expect?: number;
  /** Send one untimed request first (default true): the first one pays for cold caches. */
  warmup?: boolean;
  /** Stop early once this much time went into timed requests and at least 3 were timed. */
  budgetMs?: number;
}

export interface QidoResult {
  p50: number;
  p95: number;
  ms: number[];
  results: number;
  /** Size of one answer in bytes. */
  bytes: number;
}

/** Times a QIDO-RS request (Accept: application/dicom+json), one at a time, and checks the number of results of each answer. */
export async function qido(o: QidoOptions): Promise<QidoResult> {
  const ms: number[] = [];
  let results = 0;
  let bytes = 0;
  const first = o.warmup === false ? 1 : 0;
  let spent = 0;
  for (let i = first; i <= o.reps; i++) {
    if (o.budgetMs !== undefined && ms.length >= 3 && spent > o.budgetMs) break;
    const t0 = performance.now();
    const res = await httpRequest(`${o.url}${o.path}`, { headers: { accept: 'application/dicom+json' } });
    const elapsed = performance.now() - t0;
    results = qidoCount(res, o.path);
    bytes = res.body.length;
    if (o.expect !== undefined && results !== o.expect) throw new Error(`QIDO ${o.path}: expected ${o.expect} results, got ${results}`);
    if (i > 0) {
      ms.push(elapsed);
      spent += elapsed;
    }
  }
  return { p50: percentile(ms, 50), p95: percentile(ms, 95), ms, results, bytes };
}

/** Number of results in a QIDO answer; 204 (no content) is zero results. */
export function qidoCount(res: HttpResult, path: string): number {
  if (res.status === 204) return 0;
  if (res.status !== 200) throw new Error(`QIDO ${path} answered ${res.status}: ${res.body.toString('utf8').slice(0, 300)}`);
  const json = JSON.parse(res.body.toString('utf8')) as unknown;
  if (!Array.isArray(json)) throw new Error(`QIDO ${path}: the answer is not a JSON array`);
  return json.length;
}

/** Instances the server lists under these studies (one QIDO per study, a few at a time). */
export async function countInstances(url: string, studyUids: readonly string[], concurrency = 4): Promise<number> {
  let total = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < studyUids.length) {
      const path = `/studies/${studyUids[next++]!}/instances`;
      // Not `total += await ...`: that reads `total` before the await and loses the other workers' counts.
      const n = qidoCount(await httpRequest(`${url}${path}`, { headers: { accept: 'application/dicom+json' } }), path);
      total += n;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, studyUids.length) }, worker));
  return total;
}

/**
 * Instances the server counts under these studies, from the study-level
 * NumberOfStudyRelatedInstances (one QIDO per study): cheaper than listing
 * instances when there are 100,000 of them.
 */
export async function countStudyInstances(url: string, studyUids: readonly string[], concurrency = 4): Promise<number> {
  let total = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < studyUids.length) {
      const path = `/studies?StudyInstanceUID=${studyUids[next++]!}&includefield=00201208`;
      const res = await httpRequest(`${url}${path}`, { headers: { accept: 'application/dicom+json' } });
      if (qidoCount(res, path) !== 1) throw new Error(`QIDO ${path}: expected 1 study`);
      const [study] = JSON.parse(res.body.toString('utf8')) as DicomJson[];
      const n = Number(study!['00201208']?.Value?.[0] ?? Number.NaN);
      if (!Number.isFinite(n)) throw new Error(`QIDO ${path}: no NumberOfStudyRelatedInstances (0020,1208) in the answer`);
      total += n;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, studyUids.length) }, worker));
  return total;
}

/**
 * Polls until the studies list `expected` instances, for servers that index
 * after they acknowledge a store. Returns the time from the call until then
 * (ms); throws with the last count after `timeoutMs`.
 */
export async function waitQueryable(url: string, studyUids: readonly string[], expected: number, timeoutMs = 60_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const n = await countInstances(url, studyUids);
    if (n === expected) return performance.now() - t0;
    if (n > expected) throw new Error(`${url}: ${n} instances listed under the studies, more than the ${expected} sent`);
    if (performance.now() - t0 > timeoutMs) throw new Error(`${url}: ${n} of ${expected} instances queryable after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

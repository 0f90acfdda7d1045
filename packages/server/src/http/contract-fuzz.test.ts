import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allRoutes } from '@tessera/api';
import { pydicomFile, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { inputsFor, seeded, type FuzzInput } from '../__fixtures__/contract-fuzz-inputs.ts';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const CT_SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';
const CT_SOP = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';
const SEED = Number(process.env.TESSERA_FUZZ_SEED ?? 13);

interface Answer {
  status: number;
  type: string;
  text: string;
}

/** Sends one request as it is (node:http: no URL normalization, so `..` and `%00` reach the server). */
function send(base: URL, input: FuzzInput, token: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: base.hostname, port: base.port, method: input.method, path: input.path, headers: { authorization: `Bearer ${token}`, ...input.headers, ...(input.body ? { 'content-length': String(input.body.length) } : {}) }, timeout: 15_000 },
      (res) => {
        const type = String(res.headers['content-type'] ?? '');
        // A stream (the event stream, a followed log) is judged by its status: it is not read to its end.
        if (type.startsWith('text/event-stream') || res.headers['transfer-encoding'] === 'chunked' && (res.statusCode ?? 0) < 300) {
          res.destroy();
          resolve({ status: res.statusCode ?? 0, type, text: '' });
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within 15 s to ${input.method} ${input.path.slice(0, 200)} (${input.what})`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may close the connection on a refused upload before reading it all: that is an answer, not a crash, when a status came.
      if (err.code === 'EPIPE' || err.code === 'ECONNRESET') resolve({ status: -1, type: '', text: err.code });
      else reject(err);
    });
    req.end(input.body);
  });
}

describe.skipIf(skipDicomTools)('every route of the contract, fed malformed input generated from its schemas, signed in as an admin and as a scientist', () => {
  let s: TestServer;
  let tokens: Array<[string, string]>;
  let base: URL;
  let jobId: string;
  let runId: string;
  beforeAll(async () => {
    // Access control on, signed in: the requests reach the handlers, not the 401 in front of them.
    s = await startTestServer({ auth: 'on' });
    base = new URL(s.url);
    const auth = { authorization: `Bearer ${s.token!}` };
    // Something to find, so that a bad parameter beside good ones reaches the handlers: an instance, a dataset, a project.
    const up = await fetch(`${s.url}/api/dicom/import?dataset=fuzz-set`, { method: 'POST', headers: { 'content-type': 'application/dicom', ...auth }, body: new Uint8Array(readFileSync(pydicomFile('CT_small.dcm'))) });
    expect(up.status).toBe(200);
    expect((await s.call('POST', '/api/projects', { name: 'fuzz' })).status).toBe(201);
    // A known-good instance that no fuzzed request names (a valid-by-chance DELETE may remove the one above).
    expect((await s.call('POST', '/api/projects', { name: 'keep' })).status).toBe(201);
    const keep = await fetch(`${s.url}/api/dicom/import?project=keep`, { method: 'POST', headers: { 'content-type': 'application/dicom', ...auth }, body: new Uint8Array(readFileSync(pydicomFile('CT_small.dcm'))) });
    expect(keep.status).toBe(200);
    // A job whose run has ended, with a task, a log and a result: ids that reach the workflow handlers.
    await writeShellExtension(s.extRoot, 'fuzz-ext', [{ id: 'fuzz-wf', tasks: [{ id: 'work', level: 'batch', sh: 'echo fuzz; mkdir -p "$OPERATOR_OUT_DIR" 2>/dev/null; true' }] }]);
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const job = await s.call('POST', '/api/jobs', { workflow: 'fuzz-wf' });
    expect(job.status, JSON.stringify(job.body)).toBe(201);
    jobId = job.body.id as string;
    runId = job.body.runs[0].id as string;
    await waitFor(async () => ['success', 'failed'].includes((await s.call('GET', `/api/runs/${runId}`)).body.state), 20_000, `run ${runId} to end`);
    tokens = [['admin', s.token!], ['scientist', await s.userToken('fuzz-scientist', { admin: 'scientist', fuzz: 'scientist', keep: 'scientist' })]];
  });
  afterAll(async () => s?.close());

  it('never answers 5xx, and every error is in the error format, naming no path of the install', { timeout: 120_000 }, async () => {
    const rnd = seeded(SEED);
    const valid: Record<string, string> = { project: 'admin', study: CT_STUDY, series: CT_SERIES, instance: CT_SOP, uid: CT_SERIES, frames: '1', tag: '7FE00010', name: 'fuzz-set', id: 'no-such-id', run: 'no-such-run', task: 'no-such-task', '*': 'a.txt' };
    const problems: string[] = [];
    const secrets = [s.home, process.cwd()];
    let sent = 0;
    let unauthenticated = 0;
    const started = Date.now();
    for (const [who, token] of tokens)
    for (const route of allRoutes) {
      // A name that names a project where one is meant, a dataset elsewhere, never an installed extension (no image builds).
      const names = {
        ...valid,
        name: route.url.startsWith('/api/projects') ? 'fuzz' : route.url.startsWith('/api/extensions') ? 'no-such-extension' : 'fuzz-set',
        id: route.url.startsWith('/api/jobs') ? jobId : route.url.startsWith('/api/runs') ? runId : route.url.startsWith('/api/workflows') ? 'fuzz-wf' : 'no-such-id',
        run: runId,
        task: 'work',
      };
      for (const input of inputsFor(route, names, rnd, Number(process.env.TESSERA_FUZZ_PER_KIND ?? 6))) {
        const a = await send(base, input, token);
        sent++;
        if (a.status === 401) unauthenticated++;
        const where = `${route.method} ${route.url} with ${input.what} as ${who}`;
        if (a.status >= 500) problems.push(`${where}: ${a.status} ${a.text.slice(0, 300)}`);
        // A HEAD answer has no body to judge: only its status.
        if (input.method === 'HEAD') continue;
        if (a.status >= 400 && !a.type.startsWith('application/json') && !a.type.startsWith('application/dicom+json')) {
          problems.push(`${where}: ${a.status} answered as ${a.type || 'no content type'}, not JSON: ${a.text.slice(0, 200)}`);
        }
        if (a.status >= 400 && a.type.startsWith('application/json')) {
          let parsed: { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined;
          try {
            parsed = JSON.parse(a.text) as typeof parsed;
          } catch {
            parsed = undefined;
          }
          if (typeof parsed?.error?.code !== 'string' || typeof parsed.error.message !== 'string' || !Array.isArray(parsed.error.details)) {
            problems.push(`${where}: ${a.status} not in the error format: ${a.text.slice(0, 200)}`);
          }
        }
        if (a.status >= 400 && secrets.some((p) => a.text.includes(p))) problems.push(`${where}: ${a.status} shows a path of the install: ${a.text.slice(0, 200)}`);
      }
    }
    console.log(`contract fuzz: ${sent} requests over ${allRoutes.length} routes in ${Date.now() - started} ms, ${problems.length} problems`);
    expect(problems).toEqual([]);
    // Signed in throughout: a 401 would mean the input never reached the handler (only a wrong current password at /api/auth/password is one).
    expect(unauthenticated).toBeLessThan(sent / 100);
    // The server still serves.
    expect((await s.call('GET', '/api/health')).status).toBe(200);
    expect((await fetch(`${s.url}/projects/keep/dicom-web/studies/${CT_STUDY}/series/${CT_SERIES}/instances/${CT_SOP}/rendered`, { headers: { authorization: `Bearer ${s.token!}` } })).status).toBe(200);
  });
});

/**
 * Access control's cost (issue 14): QIDO-RS p50 and STOW-RS throughput with access control
 * on (a bearer token, checked against the database, cached for a second) and off
 * (TESSERA_AUTH=off): both servers run at once, each in its own process, and the
 * requests alternate between them.
 *
 *   npx tsx bench/access-control.ts [--instances 300] [--queries 400] [--rounds 3]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { writeSampleCt } from '@tessera/dicom';

const REPO = resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { instances: { type: 'string', default: '300' }, queries: { type: 'string', default: '400' }, rounds: { type: 'string', default: '3' } } });
const INSTANCES = Number(values.instances);
const QUERIES = Number(values.queries);
const ROUNDS = Number(values.rounds);

async function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

async function start(auth: 'on' | 'off'): Promise<{ url: string; token: string | undefined; child: ChildProcess; home: string }> {
  const home = mkdtempSync(join(tmpdir(), 'tessera-bench-auth-'));
  const port = await freePort();
  const child = spawn(process.execPath, [join(REPO, 'bin/tessera-server.mjs')], {
    env: { ...process.env, TESSERA_HOME: join(home, 'home'), PORT: String(port), DICOM_PORT: 'off', TESSERA_AUTH: auth, XDG_STATE_HOME: join(home, 'state'), TESSERA_LOG_LEVEL: 'error', TESSERA_DEFAULT_EXTENSIONS: 'none', TESSERA_RUNNERS: 'process' },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (await fetch(`${url}/api/health`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const token = auth === 'on' ? (JSON.parse(readFileSync(join(home, 'state', 'tessera', 'servers', `${port}.json`), 'utf8')) as { token: string }).token : undefined;
  return { url, token, child, home };
}

const BOUNDARY = 'bench-boundary-7c1';
function multipart(files: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`), f, Buffer.from('\r\n'));
  parts.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(parts);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Server = Awaited<ReturnType<typeof start>>;

async function stow(s: Server, file: Buffer): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${s.url}/dicom-web/studies`, {
    method: 'POST',
    headers: { ...(s.token ? { authorization: `Bearer ${s.token}` } : {}), 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, accept: 'application/dicom+json' },
    body: new Uint8Array(multipart([file])),
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`STOW answered ${res.status}`);
  return performance.now() - t0;
}

async function qido(s: Server): Promise<number> {
  const t0 = performance.now();
  const res = await fetch(`${s.url}/dicom-web/studies/${STUDY}/series?limit=10`, { headers: { ...(s.token ? { authorization: `Bearer ${s.token}` } : {}), accept: 'application/dicom+json' } });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`QIDO answered ${res.status}`);
  return performance.now() - t0;
}

/**
 * Both servers run at once and the requests alternate between them, request by request
 * (which goes first alternates too): whatever else the machine does meets both alike, and
 * the per-pair difference is what access control adds.
 */
async function measure(files: Buffer[]): Promise<Record<'stowOff' | 'stowOn' | 'qidoOff' | 'qidoOn' | 'stowDiff' | 'qidoDiff', number[]>> {
  const off = await start('off');
  const on = await start('on');
  const out = { stowOff: [] as number[], stowOn: [] as number[], qidoOff: [] as number[], qidoOn: [] as number[], stowDiff: [] as number[], qidoDiff: [] as number[] };
  try {
    for (const [i, f] of files.entries()) {
      // The same instance to both (each server its own store); which goes first alternates.
      const offFirst = i % 2 === 0;
      const t1 = await stow(offFirst ? off : on, f);
      const t2 = await stow(offFirst ? on : off, f);
      const [tOff, tOn] = offFirst ? [t1, t2] : [t2, t1];
      out.stowOff.push(tOff);
      out.stowOn.push(tOn);
      out.stowDiff.push(tOn - tOff);
    }
    for (let i = 0; i < QUERIES; i++) {
      const first = i % 2 === 0 ? off : on;
      const second = first === off ? on : off;
      const t1 = await qido(first);
      const t2 = await qido(second);
      const [tOff, tOn] = first === off ? [t1, t2] : [t2, t1];
      out.qidoOff.push(tOff);
      out.qidoOn.push(tOn);
      out.qidoDiff.push(tOn - tOff);
    }
    return out;
  } finally {
    for (const s of [off, on]) {
      s.child.kill('SIGTERM');
      await new Promise((r) => s.child.once('exit', r));
      rmSync(s.home, { recursive: true, force: true });
    }
  }
}

let STUDY = '';
const work = mkdtempSync(join(tmpdir(), 'tessera-bench-auth-data-'));
const sample = await writeSampleCt(work, { slices: INSTANCES, size: 64 });
STUDY = sample.study;
const files = sample.files.map((f) => readFileSync(f));
console.log(`access control cost: ${files.length} instances by STOW-RS (one per request), ${QUERIES} QIDO-RS series queries, ${ROUNDS} rounds; off and on servers side by side, requests alternating`);
const all: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  const r = await measure(files);
  for (const [k, v] of Object.entries(r)) (all[k] ??= []).push(...v);
  const ms = (xs: number[]): string => median(xs).toFixed(3);
  console.log(`  round ${round + 1}: STOW median ${ms(r.stowOff)} ms off, ${ms(r.stowOn)} ms on (pair difference ${ms(r.stowDiff)} ms); QIDO p50 ${ms(r.qidoOff)} ms off, ${ms(r.qidoOn)} ms on (pair difference ${ms(r.qidoDiff)} ms)`);
}
rmSync(work, { recursive: true, force: true });
const m = (k: string): number => median(all[k]!);
console.log(`\nall rounds           auth off    auth on    on/off   median pair difference`);
console.log(`STOW-RS ms/instance ${m('stowOff').toFixed(3).padStart(9)} ${m('stowOn').toFixed(3).padStart(10)}    ${(m('stowOn') / m('stowOff')).toFixed(3)}    ${m('stowDiff').toFixed(3)} ms`);
console.log(`STOW-RS instances/s ${(1000 / m('stowOff')).toFixed(0).padStart(9)} ${(1000 / m('stowOn')).toFixed(0).padStart(10)}`);
console.log(`QIDO-RS p50 ms      ${m('qidoOff').toFixed(3).padStart(9)} ${m('qidoOn').toFixed(3).padStart(10)}    ${(m('qidoOn') / m('qidoOff')).toFixed(3)}    ${m('qidoDiff').toFixed(3)} ms`);

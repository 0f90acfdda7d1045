/**
 * Access control's cost (issue 14): QIDO-RS p50 and STOW-RS throughput with access control
 * on (a bearer token, checked against the database, cached for a second) and off
 * (TESSERA_AUTH=off), side by side in one run, the server in its own process.
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

async function measure(auth: 'on' | 'off', files: Buffer[]): Promise<{ stowPerSecond: number; qidoP50Ms: number; qidoP90Ms: number }> {
  const s = await start(auth);
  const headers: Record<string, string> = s.token ? { authorization: `Bearer ${s.token}` } : {};
  try {
    // STOW-RS: one instance per request, as viewers and gateways send them.
    const t0 = performance.now();
    for (const f of files) {
      const res = await fetch(`${s.url}/dicom-web/studies`, { method: 'POST', headers: { ...headers, 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, accept: 'application/dicom+json' }, body: new Uint8Array(multipart([f])) });
      if (res.status !== 200) throw new Error(`STOW answered ${res.status}: ${await res.text()}`);
    }
    const stowPerSecond = files.length / ((performance.now() - t0) / 1000);
    const times: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const q0 = performance.now();
      const res = await fetch(`${s.url}/dicom-web/studies/${STUDY}/series?limit=10`, { headers: { ...headers, accept: 'application/dicom+json' } });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`QIDO answered ${res.status}`);
      times.push(performance.now() - q0);
    }
    times.sort((a, b) => a - b);
    return { stowPerSecond, qidoP50Ms: times[Math.floor(times.length * 0.5)]!, qidoP90Ms: times[Math.floor(times.length * 0.9)]! };
  } finally {
    s.child.kill('SIGTERM');
    await new Promise((r) => s.child.once('exit', r));
    rmSync(s.home, { recursive: true, force: true });
  }
}

let STUDY = '';
const work = mkdtempSync(join(tmpdir(), 'tessera-bench-auth-data-'));
const sample = await writeSampleCt(work, { slices: INSTANCES, size: 64 });
STUDY = sample.study;
const files = sample.files.map((f) => readFileSync(f));
console.log(`access control cost: ${files.length} instances by STOW-RS, ${QUERIES} QIDO-RS series queries, ${ROUNDS} rounds, alternating off/on`);
const results: Record<'on' | 'off', Array<Awaited<ReturnType<typeof measure>>>> = { on: [], off: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const auth of round % 2 === 0 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    const r = await measure(auth, files);
    results[auth].push(r);
    console.log(`  round ${round + 1} auth ${auth.padEnd(3)}: STOW ${r.stowPerSecond.toFixed(0)} instances/s, QIDO p50 ${r.qidoP50Ms.toFixed(2)} ms, p90 ${r.qidoP90Ms.toFixed(2)} ms`);
  }
}
rmSync(work, { recursive: true, force: true });
const m = (auth: 'on' | 'off', k: 'stowPerSecond' | 'qidoP50Ms' | 'qidoP90Ms'): number => median(results[auth].map((r) => r[k]));
console.log('\nmedians            auth off    auth on    on/off');
console.log(`STOW-RS inst/s   ${m('off', 'stowPerSecond').toFixed(0).padStart(9)} ${m('on', 'stowPerSecond').toFixed(0).padStart(10)}    ${(m('on', 'stowPerSecond') / m('off', 'stowPerSecond')).toFixed(3)}`);
console.log(`QIDO p50 ms      ${m('off', 'qidoP50Ms').toFixed(2).padStart(9)} ${m('on', 'qidoP50Ms').toFixed(2).padStart(10)}    ${(m('on', 'qidoP50Ms') / m('off', 'qidoP50Ms')).toFixed(3)}`);
console.log(`QIDO p90 ms      ${m('off', 'qidoP90Ms').toFixed(2).padStart(9)} ${m('on', 'qidoP90Ms').toFixed(2).padStart(10)}    ${(m('on', 'qidoP90Ms') / m('off', 'qidoP90Ms')).toFixed(3)}`);

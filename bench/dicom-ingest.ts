/**
 * DICOM data-layer benchmark: Tessera's DICOM server beside Orthanc (with its
 * DICOMweb plugin) and DCMTK's storescp (the floor for C-STORE), on the same
 * synthetic CT instances. See bench/README.md.
 *
 *   npx tsx bench/dicom-ingest.ts [--only tessera,orthanc,storescp] [--cases cstore,stow,qido,search,scale]
 *       [--count 1000] [--reps 3] [--template ct-small|ct-512] [--associations 1]
 *       [--stow-concurrency 2] [--stow-batch 10] [--qido-count 1000] [--qido-reps 20]
 *       [--search-count 100000] [--search-reps 20] [--load-associations 2] [--orthanc-load-budget 600]
 *       [--workdir DIR] [--data-dir DIR] [--port 18766] [--dicom-port 14244] [--repo DIR] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { dcmtkVersion, startStorescp, storeScu } from './lib/dcmtk-peers.ts';
import { DEFAULT_CACHE_DIR, generateCtInstances, type CtTemplate, type GeneratedSet, type StudyInfo } from './lib/dicom-gen.ts';
import { countStudyInstances, httpRequest, qido, stow, waitQueryable } from './lib/dicomweb-load.ts';
import { portAnswers, startOrthanc } from './lib/orthanc.ts';
import { median, millis, percentile } from './lib/stats.ts';
import { TesseraServer } from './lib/tessera-server.ts';

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ALL_SYSTEMS = ['tessera', 'orthanc', 'storescp'] as const;
const ALL_CASES = ['cstore', 'stow', 'qido', 'search', 'scale'] as const;
type SystemId = (typeof ALL_SYSTEMS)[number];
const LABEL: Record<SystemId, string> = { tessera: 'Tessera', orthanc: 'Orthanc', storescp: 'storescp (floor)' };
/** Instances sent untimed into every fresh store before the timed ones: Node's JIT and SQLite's caches warm up on them. */
const WARMUP = 50;
/** Time one query shape may take per system and repetition, once it has 3 samples (Orthanc lists instances at ~5 ms each). */
const QUERY_BUDGET_MS = 10_000;

const { values: args } = parseArgs({
  options: {
    only: { type: 'string' },
    cases: { type: 'string', default: 'cstore,stow,qido' },
    count: { type: 'string', default: '1000' },
    reps: { type: 'string', default: '3' },
    template: { type: 'string', default: 'ct-small' },
    associations: { type: 'string', default: '1' },
    'stow-concurrency': { type: 'string', default: '2' },
    'stow-batch': { type: 'string', default: '10' },
    'qido-count': { type: 'string', default: '1000' },
    'qido-reps': { type: 'string', default: '20' },
    'search-count': { type: 'string', default: '100000' },
    'search-reps': { type: 'string', default: '20' },
    'load-associations': { type: 'string', default: '2' },
    'orthanc-load-budget': { type: 'string', default: '600' },
    workdir: { type: 'string' },
    'data-dir': { type: 'string', default: DEFAULT_CACHE_DIR },
    port: { type: 'string', default: '18766' },
    'dicom-port': { type: 'string', default: '14244' },
    repo: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});

function int(name: keyof typeof args): number {
  const raw = args[name] as string;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
}
function list<T extends string>(name: string, raw: string | undefined, all: readonly T[]): T[] {
  const picked = (raw ?? all.join(',')).split(',').map((s) => s.trim()) as T[];
  for (const p of picked) if (!all.includes(p)) throw new Error(`--${name}: unknown "${p}"; pick from ${all.join(', ')}`);
  return picked;
}

const REPO = resolve(args.repo ?? HERE);
const only = list('only', args.only, ALL_SYSTEMS);
const cases = list('cases', args.cases, ALL_CASES);
const count = int('count');
const reps = int('reps');
const template = args.template as CtTemplate;
if (template !== 'ct-small' && template !== 'ct-512') throw new Error(`--template: ct-small or ct-512, got "${template}"`);
const associations = int('associations');
const stowShape = { concurrency: int('stow-concurrency'), instancesPerRequest: int('stow-batch') };
const qidoCount = int('qido-count');
const qidoReps = int('qido-reps');
const searchCount = int('search-count');
const searchReps = int('search-reps');
const loadAssociations = int('load-associations');
const orthancLoadBudgetMs = int('orthanc-load-budget') * 1000;
const dataDir = args['data-dir']!;
const PORTS = { tesseraHttp: int('port'), tesseraDicom: int('dicom-port'), orthancHttp: 18142, orthancDicom: 14242, storescp: 14243 };

// ---------------------------------------------------------------------------
// Systems: each start() gives a server on a store folder, fresh or as left by a previous start.

interface Target {
  id: SystemId;
  dicomPort: number;
  aet: string;
  /** DICOMweb base (…/dicom-web); storescp has none. */
  web?: string;
  pid?: number;
  /** storescp: files written so far. */
  received?(): number;
  peakRssMb(): number;
  stop(): Promise<void>;
}

const live = new Set<Target>();

async function start(id: SystemId, home: string): Promise<Target> {
  let t: Target;
  if (id === 'orthanc') {
    const o = await startOrthanc({ dir: home, httpPort: PORTS.orthancHttp, dicomPort: PORTS.orthancDicom });
    versions.set('Orthanc', `${o.version} (DICOMweb plugin ${o.dicomWebVersion})`);
    t = { id, dicomPort: o.dicomPort, aet: o.aet, web: o.dicomWebUrl, pid: o.pid, peakRssMb: o.peakRssMb, stop: o.stop };
  } else if (id === 'storescp') {
    const s = await startStorescp({ dir: join(home, 'in'), port: PORTS.storescp });
    how.set('storescp', s.command.replace(join(home, 'in'), '<empty folder>'));
    t = { id, dicomPort: s.port, aet: s.aet, pid: s.pid, received: s.countFiles, peakRssMb: () => peakRss(s.pid), stop: s.stop };
  } else {
    t = await startTessera(home);
  }
  live.add(t);
  const stop = t.stop;
  t.stop = async () => {
    live.delete(t);
    await stop();
  };
  return t;
}

async function startTessera(home: string): Promise<Target> {
  mkdirSync(join(home, 'extensions'), { recursive: true });
  const server = await TesseraServer.start({
    repo: REPO,
    home,
    extensionsDir: join(home, 'extensions'),
    port: PORTS.tesseraHttp,
    parallelism: 2,
    logFile: `${home}.log`,
    env: { DICOM_PORT: String(PORTS.tesseraDicom) },
  });
  const fail = async (why: string): Promise<never> => {
    await server.stop();
    throw new Error(`${why}\n${server.logTail()}`);
  };
  const deadline = Date.now() + 30_000;
  while (!(await portAnswers(PORTS.tesseraDicom))) {
    if (Date.now() > deadline) await fail(`the Tessera server answers /api/health, but nothing listens on DICOM_PORT=${PORTS.tesseraDicom} after 30 s (a server without its DICOM listener?)`);
    await sleep(50);
  }
  const web = `${server.url}/dicom-web`;
  const probe = await httpRequest(`${web}/studies?limit=1`, { headers: { accept: 'application/dicom+json' } }).catch((err: Error) => ({ status: 0, body: Buffer.from(err.message) }));
  if (probe.status !== 200 && probe.status !== 204) await fail(`GET ${web}/studies answered ${probe.status}: ${probe.body.toString('utf8').slice(0, 200)}`);
  return { id: 'tessera', dicomPort: PORTS.tesseraDicom, aet: 'TESSERA', web, pid: server.pid, peakRssMb: () => server.peakRssMb(), stop: () => server.stop() };
}

function peakRss(pid: number | undefined): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system, all threads, and children it reaped) of a process so far, in ms; NaN when unknown. */
function cpuMs(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return ((f[11]! + f[12]! + f[13]! + f[14]!) * 1000) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------
// Measurements

interface Ingest {
  case: string;
  system: SystemId;
  rep: number;
  ok: boolean;
  error?: string;
  instances?: number;
  ms?: number;
  perSecond?: number;
  /** Server CPU time per instance (ms), from /proc: steadier than wall time on a shared machine. */
  cpuMsPerInstance?: number;
  /** From the end of the store to all instances listed by QIDO (or all files written): includes the listing itself. */
  verifyMs?: number;
  /** Peak resident memory of the server after the run (MB). */
  rssMb?: number;
}

interface QuerySample {
  case: string;
  system: SystemId;
  query: string;
  ms: number[];
  results: number;
  bytes: number;
  error?: string;
}

const ingests: Ingest[] = [];
const queries: QuerySample[] = [];
const notes: string[] = [];
const versions = new Map<string, string>();
const how = new Map<string, string>();
let root = '';

function log(line: string): void {
  console.log(line);
}

/** Sends a data set the way the case says: C-STORE through storescu, or STOW-RS through the Node client. */
async function send(kind: 'cstore' | 'stow', t: Target, set: GeneratedSet, assoc = associations): Promise<{ ms: number; perSecond: number }> {
  if (kind === 'stow') return stow({ url: t.web!, files: set.files(), ...stowShape });
  return storeScu({ host: '127.0.0.1', port: t.dicomPort, aet: t.aet, dir: set.dir, associations: assoc });
}

async function verify(t: Target, set: GeneratedSet, before: number): Promise<number> {
  const t0 = performance.now();
  if (t.received) {
    const n = t.received();
    if (n !== before + set.count) throw new Error(`storescp wrote ${n} files, expected ${before + set.count}`);
    return performance.now() - t0;
  }
  return waitQueryable(
    t.web!,
    set.studies.map((s) => s.uid),
    set.count,
  );
}

/** Times storing `set` into `t` (which already holds `before` instances) and checks that all of it arrived. */
async function timedIngest(caseId: string, kind: 'cstore' | 'stow', t: Target, set: GeneratedSet, rep: number, before: number): Promise<Ingest> {
  const base = { case: caseId, system: t.id, rep };
  try {
    const cpu0 = cpuMs(t.pid);
    const r = await send(kind, t, set);
    const cpu = cpuMs(t.pid) - cpu0;
    const verifyMs = await verify(t, set, before);
    return { ...base, ok: true, instances: set.count, ms: r.ms, perSecond: r.perSecond, cpuMsPerInstance: cpu / set.count, verifyMs, rssMb: t.peakRssMb() };
  } catch (err) {
    return { ...base, ok: false, error: (err as Error).message };
  }
}

function record(m: Ingest): void {
  ingests.push(m);
  const cpu = Number.isFinite(m.cpuMsPerInstance) ? `, server CPU ${millis(m.cpuMsPerInstance!, 2)} ms/instance` : '';
  log(`${m.case.padEnd(12)} ${m.system.padEnd(9)} run ${m.rep + 1}: ${m.ok ? `${m.perSecond!.toFixed(0)} instances/s (${(m.ms! / 1000).toFixed(2)} s${cpu}; verified in ${(m.verifyMs! / 1000).toFixed(2)} s)` : `FAILED: ${m.error}`}`);
}

/** A system that failed a case fails the same way again, and slowly: its later repetitions are skipped. */
function failedBefore(caseId: string, id: SystemId): boolean {
  return ingests.some((m) => m.case === caseId && m.system === id && !m.ok);
}

function home(...parts: string[]): string {
  const dir = join(root, ...parts);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  return dir;
}

function dispose(dir: string): void {
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
}

/** Fresh store per system and repetition, systems taking turns: same instances, never a duplicate. */
async function ingestCase(caseId: 'cstore' | 'stow', systems: SystemId[], set: GeneratedSet, warm: GeneratedSet): Promise<void> {
  for (let rep = 0; rep < reps; rep++) {
    for (const id of systems) {
      if (failedBefore(caseId, id)) continue;
      const dir = home(caseId, `${id}-${rep + 1}`);
      let t: Target | undefined;
      try {
        t = await start(id, dir);
        await send(caseId, t, warm);
        record(await timedIngest(caseId, caseId, t, set, rep, warm.count));
      } catch (err) {
        record({ case: caseId, system: id, rep, ok: false, error: (err as Error).message });
      } finally {
        await t?.stop();
        dispose(dir);
      }
    }
  }
}

interface QueryShape {
  id: string;
  label: string;
  path: string;
  /** Results expected from what the store holds. */
  expect: (stored: readonly StudyInfo[]) => number;
}

/** Times each query shape once more on a target (`perRound` samples each) and adds the samples to the case's. */
async function queryRound(caseId: string, t: Target, shapes: QueryShape[], perRound: number, warmup: boolean, stored: readonly StudyInfo[]): Promise<void> {
  for (const q of shapes) {
    let s = queries.find((x) => x.case === caseId && x.system === t.id && x.query === q.id);
    if (!s) {
      s = { case: caseId, system: t.id, query: q.id, ms: [], results: 0, bytes: 0 };
      queries.push(s);
    }
    if (s.error) continue;
    try {
      const r = await qido({ url: t.web!, path: q.path, reps: perRound, expect: q.expect(stored), warmup, budgetMs: QUERY_BUDGET_MS });
      s.ms.push(...r.ms);
      s.results = r.results;
      s.bytes = r.bytes;
    } catch (err) {
      s.error = (err as Error).message;
      log(`${caseId} ${t.id} ${q.id}: FAILED: ${s.error}`);
    }
  }
}

function logQueries(caseId: string): void {
  for (const s of queries.filter((x) => x.case === caseId && !x.error)) {
    log(`${caseId.padEnd(8)} ${s.system.padEnd(9)} ${s.query.padEnd(18)} p50 ${millis(percentile(s.ms, 50), 1)} ms, p95 ${millis(percentile(s.ms, 95), 1)} ms (${s.ms.length} samples, ${s.results} results)`);
  }
}

async function qidoCase(systems: SystemId[]): Promise<void> {
  const set = generateCtInstances({ dir: dataDir, count: qidoCount, studies: 1, seriesPerStudy: 2, template, label: 'qido' });
  const st = set.studies[0]!;
  const se = st.series[0]!;
  const shapes: QueryShape[] = [
    { id: 'study-instances', label: `instances of the ${num(set.count)}-instance study`, path: `/studies/${st.uid}/instances`, expect: () => set.count },
    { id: 'series-instances', label: `instances of one ${num(se.instances)}-instance series`, path: `/studies/${st.uid}/series/${se.uid}/instances`, expect: () => se.instances },
    { id: 'study-series', label: 'series of the study', path: `/studies/${st.uid}/series`, expect: () => st.series.length },
    { id: 'study-by-uid', label: 'the study, by StudyInstanceUID', path: `/studies?StudyInstanceUID=${st.uid}`, expect: () => 1 },
  ];
  shapesOf.set('qido', shapes);
  const targets: Target[] = [];
  const stored = new Map<SystemId, StudyInfo[]>();
  try {
    // Both servers stay up, idle but for the queries, so that they can take turns.
    for (const id of systems) {
      try {
        const t = await start(id, home('qido', id));
        await send('cstore', t, set);
        await verify(t, set, 0);
        targets.push(t);
        stored.set(id, set.studies);
      } catch (err) {
        notes.push(`QIDO, ${LABEL[id]}: could not be loaded: ${(err as Error).message}`);
        log(`qido ${id}: FAILED to load: ${(err as Error).message}`);
      }
    }
    const perRound = Math.ceil(qidoReps / reps);
    for (let rep = 0; rep < reps; rep++) {
      for (const t of targets) await queryRound('qido', t, shapes, perRound, rep === 0, stored.get(t.id)!);
    }
    logQueries('qido');
  } finally {
    for (const t of targets) await t.stop();
    for (const id of systems) dispose(join(root, 'qido', id));
  }
}

// ---------------------------------------------------------------------------
// search and scale: stores holding --search-count instances

const shapesOf = new Map<string, QueryShape[]>();

/** A DICOM wildcard (`*`, `?`) as an anchored regular expression. */
function wildcard(pattern: string): RegExp {
  const body = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

function searchShapes(big: GeneratedSet): QueryShape[] {
  // '^' goes unencoded: Orthanc 1.10's DICOMweb plugin does not decode %5E (nor any %XX) in query values and
  // would match nothing; a raw '^' is legal in a query string and every server reads it the same.
  const q = (params: Record<string, string>): string => `/studies?${Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v).replaceAll('%5E', '^')}`).join('&')}`;
  const pid = big.studies[Math.min(137, big.studies.length - 1)]!.patientId;
  const name = (p: string): QueryShape['expect'] => (st) => st.filter((s) => wildcard(p).test(s.patientName)).length;
  const dates = (a: string, b: string, s: StudyInfo): boolean => s.studyDate >= a && s.studyDate <= b;
  return [
    { id: 'patient-id', label: `PatientID=${pid} (exact)`, path: q({ PatientID: pid }), expect: (st) => st.filter((s) => s.patientId === pid).length },
    { id: 'name-prefix', label: 'PatientName=JONES^* (prefix wildcard)', path: q({ PatientName: 'JONES^*' }), expect: name('JONES^*') },
    { id: 'name-contains', label: 'PatientName=*SON^* (inner wildcard)', path: q({ PatientName: '*SON^*' }), expect: name('*SON^*') },
    { id: 'date-range', label: 'StudyDate=20200101-20200331', path: q({ StudyDate: '20200101-20200331' }), expect: (st) => st.filter((s) => dates('20200101', '20200331', s)).length },
    { id: 'modality', label: 'ModalitiesInStudy=MR', path: q({ ModalitiesInStudy: 'MR' }), expect: (st) => st.filter((s) => s.modality === 'MR').length },
    {
      id: 'date-modality',
      label: 'StudyDate=20180101-20181231 & ModalitiesInStudy=CT',
      path: q({ StudyDate: '20180101-20181231', ModalitiesInStudy: 'CT' }),
      expect: (st) => st.filter((s) => s.modality === 'CT' && dates('20180101', '20181231', s)).length,
    },
  ];
}

interface Load {
  system: SystemId;
  instances: number;
  ms: number;
  cpuMs: number;
  /** Rate of each 10,000-instance piece, in order: shows how ingest slows as the store grows. */
  pieces: { instances: number; perSecond: number }[];
  verifyMs?: number;
  skipped?: string;
  error?: string;
}

const loads: Load[] = [];

/** Loads the big set in pieces of 10,000 (20 chunk folders), giving up on a peer that would exceed its time budget. */
async function loadBig(t: Target, big: GeneratedSet, budgetMs: number | undefined): Promise<Load> {
  const chunks = big.chunks();
  const load: Load = { system: t.id, instances: 0, ms: 0, cpuMs: 0, pieces: [] };
  const cpu0 = cpuMs(t.pid);
  for (let i = 0; i < chunks.length; i += 20) {
    const r = await storeScu({ host: '127.0.0.1', port: t.dicomPort, aet: t.aet, files: chunks.slice(i, i + 20), associations: loadAssociations, timeoutMs: 60 * 60_000 });
    load.instances += r.instances;
    load.ms += r.ms;
    load.pieces.push({ instances: r.instances, perSecond: r.perSecond });
    const left = (big.count - load.instances) / r.perSecond;
    log(`load     ${t.id.padEnd(9)} ${load.instances} of ${big.count}: ${r.perSecond.toFixed(0)} instances/s, ${(load.ms / 1000).toFixed(0)} s so far, ~${left.toFixed(0)} s to go`);
    // Judged from the third piece on: the first ones run slow while the server and its index warm up.
    const projected = load.ms + left * 1000;
    if (budgetMs !== undefined && (load.ms > budgetMs || (i >= 40 && projected > budgetMs))) {
      load.skipped = `loading ${num(big.count)} instances would take ~${(projected / 60_000).toFixed(0)} min (${r.perSecond.toFixed(0)} instances/s at ${num(load.instances)}), over the ${budgetMs / 60_000}-min budget (--orthanc-load-budget)`;
      return load;
    }
  }
  load.cpuMs = cpuMs(t.pid) - cpu0;
  const v0 = performance.now();
  const n = await countStudyInstances(t.web!, big.studies.map((s) => s.uid));
  if (n !== big.count) throw new Error(`after loading ${big.count} instances, the studies count ${n}`);
  load.verifyMs = performance.now() - v0;
  return load;
}

async function bigCase(systems: SystemId[], warm: GeneratedSet): Promise<void> {
  const big = generateCtInstances({ dir: dataDir, count: searchCount, studies: Math.max(1, Math.round(searchCount / 100)), seriesPerStudy: 2, template: 'ct-small', modalities: ['CT', 'CT', 'CT', 'CT', 'MR'], label: 'search' });
  log(`data: ${big.count} instances in ${big.studies.length} studies at ${big.dir}${big.generatedSeconds ? ` (written in ${big.generatedSeconds.toFixed(0)} s)` : ' (cached)'}`);
  const shapes = searchShapes(big);
  shapesOf.set('search', shapes);
  const scaleSets = Array.from({ length: reps }, (_, rep) => generateCtInstances({ dir: dataDir, count, studies: Math.max(1, Math.ceil(count / 100)), seriesPerStudy: 2, template, label: `scale-${rep}` }));
  const loaded: SystemId[] = [];
  const stored = new Map<SystemId, StudyInfo[]>();
  const homes = new Map<SystemId, string>();
  for (const id of systems) {
    const dir = home('big', id);
    homes.set(id, dir);
    let t: Target | undefined;
    try {
      t = await start(id, dir);
      const load = await loadBig(t, big, id === 'orthanc' ? orthancLoadBudgetMs : undefined);
      loads.push(load);
      if (load.skipped) {
        notes.push(`search/scale, ${LABEL[id]}: not measured: ${load.skipped}.`);
        log(`load ${id}: skipped: ${load.skipped}`);
      } else {
        loaded.push(id);
        stored.set(id, [...big.studies]);
      }
    } catch (err) {
      loads.push({ system: id, instances: 0, ms: 0, cpuMs: 0, pieces: [], error: (err as Error).message });
      log(`load ${id}: FAILED: ${(err as Error).message}`);
    } finally {
      await t?.stop();
      if (!loaded.includes(id)) dispose(dir);
    }
  }
  const perRound = Math.ceil(searchReps / reps);
  for (let rep = 0; rep < reps; rep++) {
    for (const id of loaded) {
      // Restarted in every repetition: only one server runs at a time, so the other's background work cannot skew it.
      let t: Target | undefined;
      try {
        t = await start(id, homes.get(id)!);
        if (cases.includes('search')) await queryRound('search', t, shapes, perRound, true, stored.get(id)!);
        if (cases.includes('scale') && !failedBefore('scale-full', id)) {
          try {
            const w = generateCtInstances({ dir: dataDir, count: WARMUP, studies: 1, label: `scale-warmup-${rep}` });
            await send('cstore', t, w);
            stored.get(id)!.push(...w.studies);
          } catch (err) {
            throw new Error(`the ${WARMUP} warm-up instances were not stored: ${(err as Error).message}`);
          }
          record(await timedIngest('scale-full', 'cstore', t, scaleSets[rep]!, rep, 0));
          stored.get(id)!.push(...scaleSets[rep]!.studies);
        }
      } catch (err) {
        record({ case: 'scale-full', system: id, rep, ok: false, error: (err as Error).message });
      } finally {
        await t?.stop();
      }
    }
  }
  if (cases.includes('search')) logQueries('search');
  for (const id of loaded) dispose(homes.get(id)!);
  if (!cases.includes('scale')) return;
  for (let rep = 0; rep < reps; rep++) {
    for (const id of loaded) {
      if (failedBefore('scale-empty', id)) continue;
      const dir = home('scale-empty', `${id}-${rep + 1}`);
      let t: Target | undefined;
      try {
        t = await start(id, dir);
        await send('cstore', t, warm);
        record(await timedIngest('scale-empty', 'cstore', t, scaleSets[rep]!, rep, warm.count));
      } catch (err) {
        record({ case: 'scale-empty', system: id, rep, ok: false, error: (err as Error).message });
      } finally {
        await t?.stop();
        dispose(dir);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Report

const num = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a');
const times = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a');

function rates(caseId: string, id: SystemId): { ok: Ingest[]; failed?: Ingest; rate: number } {
  const all = ingests.filter((m) => m.case === caseId && m.system === id);
  const ok = all.filter((m) => m.ok);
  return { ok, failed: all.find((m) => !m.ok), rate: median(ok.map((m) => m.perSecond!)) };
}

function ingestTable(caseId: string, systems: readonly SystemId[], absent: ReadonlyMap<SystemId, string>): string {
  const tessera = rates(caseId, 'tessera').rate;
  const rows = ['| system | instances/s, median (runs) | min - max | server CPU per instance | server peak RSS | Tessera / this (rate) |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const id of systems) {
    const why = absent.get(id);
    if (why) {
      rows.push(`| ${LABEL[id]} | ${why} | | | | |`);
      continue;
    }
    const r = rates(caseId, id);
    if (r.ok.length === 0) {
      rows.push(`| ${LABEL[id]} | failed: ${(r.failed?.error ?? 'not run').split('\n')[0]!.slice(0, 200)} | | | | |`);
      continue;
    }
    const perSecond = r.ok.map((m) => m.perSecond!);
    const cpu = median(r.ok.map((m) => m.cpuMsPerInstance!));
    const rss = Math.max(...r.ok.map((m) => m.rssMb ?? Number.NaN));
    rows.push(`| ${LABEL[id]} | ${num(r.rate)} (${r.ok.length}) | ${num(Math.min(...perSecond))} - ${num(Math.max(...perSecond))} | ${millis(cpu, 2)} ms | ${Number.isFinite(rss) ? `${num(rss)} MB` : 'n/a'} | ${id === 'tessera' ? '—' : times(tessera, r.rate)} |`);
  }
  return rows.join('\n');
}

function queryTable(caseId: string, systems: readonly SystemId[]): string {
  const head = systems.map((id) => `${LABEL[id]} p50 / p95 (n)`);
  const both = systems.includes('tessera') && systems.includes('orthanc');
  const rows = [`| query | results | ${head.join(' | ')} |${both ? ' Tessera / Orthanc (p50 time) |' : ''}`, `| --- | ---: | ${systems.map(() => '---:').join(' | ')} |${both ? ' ---: |' : ''}`];
  for (const q of shapesOf.get(caseId) ?? []) {
    const of = (id: SystemId): QuerySample | undefined => queries.find((x) => x.case === caseId && x.system === id && x.query === q.id);
    const cells = systems.map((id) => {
      const s = of(id);
      if (!s) return 'not run';
      if (s.error) return `failed: ${s.error.slice(0, 100)}`;
      return `${millis(percentile(s.ms, 50), 1)} / ${millis(percentile(s.ms, 95), 1)} ms (${s.ms.length})`;
    });
    const results = systems.map((id) => of(id)).find((s) => s && !s.error)?.results;
    const p50 = (id: SystemId): number => {
      const s = of(id);
      return s && !s.error ? percentile(s.ms, 50) : Number.NaN;
    };
    rows.push(`| ${q.label} | ${results ?? 'n/a'} | ${cells.join(' | ')} |${both ? ` ${times(p50('tessera'), p50('orthanc'))} |` : ''}`);
  }
  return rows.join('\n');
}

function loadTable(): string {
  const rows = ['| system | load time | instances/s overall | first 10,000 | last 10,000 | server CPU per instance |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const l of loads) {
    if (l.error) {
      rows.push(`| ${LABEL[l.system]} | failed: ${l.error.split('\n')[0]!.slice(0, 200)} | | | | |`);
      continue;
    }
    const first = l.pieces[0]?.perSecond ?? Number.NaN;
    const last = l.pieces.at(-1)?.perSecond ?? Number.NaN;
    if (l.skipped) {
      rows.push(`| ${LABEL[l.system]} | skipped after ${num(l.instances)}: ${l.skipped} | | ${num(first)} | | |`);
      continue;
    }
    rows.push(`| ${LABEL[l.system]} | ${(l.ms / 1000).toFixed(0)} s | ${num(l.instances / (l.ms / 1000))} | ${num(first)} | ${num(last)} | ${millis(l.cpuMs / l.instances, 2)} ms |`);
  }
  return rows.join('\n');
}

function scaleTable(systems: readonly SystemId[]): string {
  const rows = [`| system | empty store, instances/s (runs) | holding ${num(searchCount)}, instances/s (runs) | full / empty | server CPU per instance, empty / full |`, '| --- | ---: | ---: | ---: | ---: |'];
  for (const id of systems) {
    const e = rates('scale-empty', id);
    const f = rates('scale-full', id);
    if (e.ok.length === 0 && f.ok.length === 0 && !e.failed && !f.failed) {
      rows.push(`| ${LABEL[id]} | not measured (see the load above) | | | |`);
      continue;
    }
    const cell = (r: ReturnType<typeof rates>): string => (r.ok.length > 0 ? `${num(r.rate)} (${r.ok.length})` : `failed: ${(r.failed?.error ?? 'not run').split('\n')[0]!.slice(0, 200)}`);
    const cpu = (r: { ok: Ingest[] }): string => millis(median(r.ok.map((m) => m.cpuMsPerInstance!)), 2);
    rows.push(`| ${LABEL[id]} | ${cell(e)} | ${cell(f)} | ${times(f.rate, e.rate)} | ${cpu(e)} / ${cpu(f)} ms |`);
  }
  return rows.join('\n');
}

/** TESSERA_* and DICOM_* variables the server inherits from the benchmark's environment: they change what is measured (fsync, durability, ...). */
function inherited(): string {
  const set = Object.entries(process.env).filter(([k]) => /^(TESSERA_|DICOM_)/.test(k));
  return set.length > 0 ? `inherited from the environment: ${set.map(([k, v]) => `${k}=${v}`).join(', ')}` : 'every other setting at its default (e.g. TESSERA_DICOM_FSYNC=false, TESSERA_DB_DURABILITY=normal)';
}

/** Commit and local changes of the measured checkout: the server may change between runs. */
function gitState(repo: string): string {
  const git = (...a: string[]): string | undefined => {
    const r = spawnSync('git', ['-C', repo, ...a], { encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trimEnd() : undefined;
  };
  const head = git('rev-parse', '--short', 'HEAD');
  if (!head) return `${repo} (not a git checkout)`;
  const dirty = (git('status', '--porcelain', '--', 'packages', 'bin') ?? '').split('\n').filter(Boolean);
  return `${repo} at ${head}${dirty.length > 0 ? `, with ${dirty.length} uncommitted change(s) under packages/ and bin/` : ', no local changes under packages/ and bin/'}`;
}

/** What fsync and creating a 39 KB file cost in the work dir: every store pays them, some per instance. */
function diskProbe(dir: string): { fsyncMs: number; createMs: number } {
  const probe = join(dir, 'probe');
  mkdirSync(probe);
  const fsyncs: number[] = [];
  const creates: number[] = [];
  const data = Buffer.alloc(39_000, 1);
  const fd = openSync(join(probe, 'sync'), 'w');
  for (let i = 0; i < 30; i++) {
    writeSync(fd, data, 0, 4096);
    const t0 = performance.now();
    fsyncSync(fd);
    fsyncs.push(performance.now() - t0);
  }
  closeSync(fd);
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    writeFileSync(join(probe, `f${i}`), data);
    creates.push(performance.now() - t0);
  }
  rmSync(probe, { recursive: true, force: true });
  return { fsyncMs: median(fsyncs), createMs: median(creates) };
}

// ---------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) log(`note: load average is ${loadBefore.toFixed(2)} before the benchmark; other work on the machine will inflate the times`);
  root = mkdtempSync(join(resolve(args.workdir ?? tmpdir()), 'tessera-dicom-bench-'));
  const disk = diskProbe(root);
  versions.set('Node', process.version);
  versions.set('DCMTK', (await dcmtkVersion()) ?? 'not installed');

  // Each system is started once up front: one that cannot start is reported as such instead of failing every case.
  const absent = new Map<SystemId, string>();
  for (const id of ALL_SYSTEMS) {
    if (!only.includes(id)) {
      absent.set(id, 'not run (--only)');
      continue;
    }
    if (id === 'storescp' && versions.get('DCMTK') === 'not installed') {
      absent.set(id, 'not installed');
      continue;
    }
    const dir = home('preflight', id);
    try {
      await (await start(id, dir)).stop();
    } catch (err) {
      const why = (err as Error).message;
      absent.set(id, `could not start: ${why.split('\n')[0]}`);
      log(`${LABEL[id]}: could not start, skipped:\n${why}`);
    } finally {
      dispose(dir);
    }
  }
  const ready = (ids: readonly SystemId[]): SystemId[] => ids.filter((id) => !absent.has(id));
  const web: SystemId[] = ['tessera', 'orthanc'];

  const warm = generateCtInstances({ dir: dataDir, count: WARMUP, studies: 1, label: 'warmup' });
  const set = generateCtInstances({ dir: dataDir, count, studies: Math.max(1, Math.ceil(count / 100)), seriesPerStudy: 2, template, label: 'ingest' });
  log(`data: ${set.count} instances (${template}, ${num(set.bytes)} bytes each) in ${set.studies.length} studies at ${set.dir}${set.generatedSeconds ? ` (written in ${set.generatedSeconds.toFixed(1)} s)` : ' (cached)'}`);

  const onSignal = (): void => {
    void Promise.all([...live].map((t) => t.stop())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (cases.includes('cstore')) await ingestCase('cstore', ready(ALL_SYSTEMS), set, warm);
    if (cases.includes('stow')) await ingestCase('stow', ready(web), set, warm);
    if (cases.includes('qido')) await qidoCase(ready(web));
    if (cases.includes('search') || cases.includes('scale')) await bigCase(ready(web), warm);
  } finally {
    for (const t of [...live]) await t.stop();
  }

  const command = `npx tsx bench/dicom-ingest.ts ${process.argv.slice(2).join(' ')}`.trim();
  const ratio = (caseId: string, other: SystemId): string => times(rates(caseId, 'tessera').rate, rates(caseId, other).rate);
  const qidoP50 = (id: SystemId): number => percentile(queries.find((q) => q.case === 'qido' && q.system === id && q.query === 'study-instances')?.ms ?? [], 50);
  const sections: string[] = [];
  if (cases.includes('cstore')) {
    sections.push(
      `### C-STORE: ${num(count)} instances, ${associations} association(s), storescu`,
      '',
      `Fresh store per run, ${WARMUP} untimed instances first; every instance checked afterwards (QIDO lists all of them, or storescp wrote all files).`,
      '',
      ingestTable('cstore', ALL_SYSTEMS, absent),
      '',
      `Tessera / Orthanc: ${ratio('cstore', 'orthanc')}; Tessera / storescp: ${ratio('cstore', 'storescp')} (rates).`,
      '',
    );
  }
  if (cases.includes('stow')) {
    sections.push(
      `### STOW-RS: ${num(count)} instances, ${stowShape.instancesPerRequest} per request, ${stowShape.concurrency} request(s) in flight`,
      '',
      ingestTable('stow', web, absent),
      '',
      `Tessera / Orthanc: ${ratio('stow', 'orthanc')} (rates).`,
      '',
    );
  }
  if (cases.includes('qido')) {
    sections.push(
      `### QIDO-RS on one ${num(qidoCount)}-instance study (2 series), one request at a time`,
      '',
      `${Math.ceil(qidoReps / reps) * reps} samples per query and system (${Math.ceil(qidoReps / reps)} per repetition, fewer once a query took ${QUERY_BUDGET_MS / 1000} s in a repetition), after one untimed request.`,
      '',
      queryTable('qido', ready(web)),
      '',
      `Instances of the ${num(qidoCount)}-instance study, p50: Tessera / Orthanc = ${times(qidoP50('tessera'), qidoP50('orthanc'))} (time; below 1 means Tessera answers faster).`,
      '',
    );
  }
  if (cases.includes('search') || cases.includes('scale')) {
    sections.push(`### Stores holding ${num(searchCount)} instances (${num(Math.round(searchCount / 100))} studies of 2 series, 1 in 5 studies MR)`, '', `Loaded with storescu, ${loadAssociations} association(s), in pieces of 10,000:`, '', loadTable(), '');
  }
  if (cases.includes('search')) sections.push('Study search (QIDO-RS, study level), server restarted before each repetition:', '', queryTable('search', ready(web)), '');
  if (cases.includes('scale')) sections.push(`C-STORE of ${num(count)} new instances into an empty store and into the loaded one:`, '', scaleTable(ready(web)), '');
  const report = [
    `Date: ${started.toISOString()}`,
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}`,
    `Versions: ${[...versions].map(([k, v]) => `${k} ${v}`).join('; ')}`,
    `Tessera code: ${gitState(REPO)}`,
    `Command: ${command}`,
    `Load average (1 min): ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`,
    `Work dir: ${dirname(root)}: fsync ${disk.fsyncMs.toFixed(3)} ms, writing a new 39 KB file ${disk.createMs.toFixed(3)} ms (medians)`,
    `Data: ${template} (${num(set.bytes)} bytes per instance), generated once into ${dataDir}`,
    '',
    'How each system runs:',
    `- Tessera: ${absent.get('tessera') ?? `node bin/tessera-server.mjs, HOST=127.0.0.1, PORT=${PORTS.tesseraHttp}, DICOM_PORT=${PORTS.tesseraDicom} (AE TESSERA), TESSERA_RUNNERS=process, TESSERA_LOG_LEVEL=warn, a fresh TESSERA_HOME per store; ${inherited()}`}`,
    `- Orthanc: ${absent.get('orthanc') ?? `SQLite index, StorageCompression false, SyncStorageArea false, DICOMweb plugin at /dicom-web/, TCP_NODELAY=1, ports ${PORTS.orthancHttp} and ${PORTS.orthancDicom}`}`,
    `- storescp: ${absent.get('storescp') ?? `${how.get('storescp') ?? 'storescp'}, TCP_NODELAY=1: receives and writes files, nothing else`}`,
    `- Sender: storescu (DCMTK ${versions.get('DCMTK')}), TCP_NODELAY=1, default PDU size; STOW-RS through a Node keep-alive client. Server CPU is read from /proc before and after each timed run.`,
    '',
    ...sections,
    ...(notes.length > 0 ? ['Notes:', ...notes.map((n) => `- ${n}`)] : []),
  ].join('\n');
  log(`\n${report}\n`);

  const outDir = join(HERE, 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const jsonFile = join(outDir, `dicom-ingest-${stamp}.json`);
  writeFileSync(jsonFile, JSON.stringify({ started, command, versions: Object.fromEntries(versions), absent: Object.fromEntries(absent), disk, ingests, queries, loads, notes }, null, 1));
  writeFileSync(join(outDir, `dicom-ingest-${stamp}.md`), `${report}\n`);
  log(`raw measurements: ${jsonFile}`);
  if (args.keep) log(`work dir kept: ${root}`);
  else rmSync(root, { recursive: true, force: true });
}

main().catch(async (err: unknown) => {
  for (const t of [...live]) await t.stop().catch(() => undefined);
  console.error(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});

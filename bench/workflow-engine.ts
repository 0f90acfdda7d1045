/**
 * Workflow-engine benchmark: Tessera's process runner beside Snakemake, cwltool
 * and a plain shell loop, on the same no-op tasks. See bench/README.md.
 *
 *   npx tsx bench/workflow-engine.ts [--quick] [--reps N] [--parallelism N]
 *       [--snakemake-cores N] [--port N] [--only shell,tessera,snakemake,cwltool]
 *       [--cases handoff-200,chain-200,chain-1000,fan-1000] [--cpu-prof] [--keep]
 *       [--workdir DIR (default: the system's temp dir)] [--repo DIR (the Tessera checkout to run)]
 *       [--probe-starts N (200; 0: no spawn probe)] [--server-heap-mb M] [--store-instances N]
 *       [--dicom-port N (14245)] [--data-dir DIR (cache of generated DICOM sets)]
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { summarizeProfile } from './lib/cpuprofile.ts';
import { DEFAULT_CACHE_DIR } from './lib/dicom-gen.ts';
import { heapBallastArgs, heapBallastEnv, heapNow } from './lib/heap.ts';
import { peakRssMb, rssMb } from './lib/proc.ts';
import { spawnProbe, spawnProbeLines, type SpawnProbe } from './lib/spawn-probe.ts';
import { median } from './lib/stats.ts';
import { loadStore } from './lib/store-load.ts';
import { describe as describeCase, goalLines, handoffTable, serverStateLines, wallTable, type Results, type ServerState } from './lib/report.ts';
import { Cwltool, ShellLoop, Snakemake, Tessera, type Measurement, type System } from './lib/systems.ts';
import { assertPlainPath, type Case } from './lib/workloads.ts';
import { gitState } from './lib/git-state.ts';

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** A case stops repeating once this much time went into it for one system (cwltool's fan takes ~30 s a run). */
const CASE_BUDGET_MS = 60_000;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    reps: { type: 'string' },
    parallelism: { type: 'string', default: '8' },
    'snakemake-cores': { type: 'string' },
    port: { type: 'string', default: '18765' },
    only: { type: 'string' },
    cases: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    workdir: { type: 'string' },
    repo: { type: 'string' },
    'probe-starts': { type: 'string', default: '200' },
    'server-heap-mb': { type: 'string', default: '0' },
    'store-instances': { type: 'string', default: '0' },
    'dicom-port': { type: 'string', default: '14245' },
    'data-dir': { type: 'string', default: DEFAULT_CACHE_DIR },
  },
});

const int = (name: string, raw: string | undefined, fallback: number): number => {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
  return n;
};

const quick = args.quick ?? false;
/** The checkout whose server is measured; another one (e.g. a `git archive` of a commit) compares versions. */
const REPO = resolve(args.repo ?? HERE);
const reps = int('reps', args.reps, quick ? 1 : 3);
const parallelism = int('parallelism', args.parallelism, 8);
const snakemakeCores = int('snakemake-cores', args['snakemake-cores'], parallelism);
const port = int('port', args.port, 18765);
/** A count that may be 0 (off). */
const count = (name: string, raw: string | undefined): number => {
  const n = Number(raw ?? '0');
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be an integer >= 0, got "${raw}"`);
  return n;
};
const probeStarts = count('probe-starts', args['probe-starts']);
const serverHeapMb = count('server-heap-mb', args['server-heap-mb']);
const storeInstances = count('store-instances', args['store-instances']);
if (storeInstances === 1) throw new Error('--store-instances: at least 2 (each study has 2 series)');
const dicomPort = int('dicom-port', args['dicom-port'], 14245);
/** Parallel storescu associations loading the store, as the DICOM benchmark loads its 100,000. */
const LOAD_ASSOCIATIONS = 2;
/** The spawn probe's Node helper with a grown heap: about what a busy server holds. */
const PROBE_HEAP_MB = 400;

const handoffDefault: Case = { id: `handoff-${quick ? 50 : 200}`, shape: 'chain', size: quick ? 50 : 200, task: 'stamp' };
const wallDefault: Case[] = quick
  ? [
      { id: 'chain-50', shape: 'chain', size: 50, task: 'touch' },
      { id: 'chain-200', shape: 'chain', size: 200, task: 'touch' },
      { id: 'fan-100', shape: 'fan', size: 100, task: 'touch' },
    ]
  : [
      { id: 'chain-200', shape: 'chain', size: 200, task: 'touch' },
      { id: 'chain-1000', shape: 'chain', size: 1000, task: 'touch' },
      { id: 'fan-1000', shape: 'fan', size: 1000, task: 'touch' },
    ];
const picked = args.cases?.split(',').map((s) => s.trim());
for (const id of picked ?? []) {
  if (![handoffDefault, ...wallDefault].some((c) => c.id === id)) throw new Error(`--cases: unknown case "${id}"; the cases are ${[handoffDefault, ...wallDefault].map((c) => c.id).join(', ')}`);
}
const handoffCase = !picked || picked.includes(handoffDefault.id) ? handoffDefault : undefined;
const wallCases = wallDefault.filter((c) => !picked || picked.includes(c.id));
/** Run once first and not reported: Python's byte-code caches, the server's JIT and the disk cache warm up on it. */
const warmup: Case = { id: 'warmup', shape: 'chain', size: 5, task: 'touch' };
const cases = [warmup, ...(handoffCase ? [handoffCase] : []), ...wallCases];

function fileCreateMs(root: string): number {
  const dir = join(root, 'create-probe');
  mkdirSync(dir);
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    closeSync(openSync(join(dir, `f${i}`), 'a'));
    times.push(performance.now() - t0);
  }
  rmSync(dir, { recursive: true, force: true });
  return median(times);
}

async function main(): Promise<void> {
  // The machine may be shared: the load says how far the figures can be trusted (read before the probe, which adds its own).
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) console.log(`note: load average is ${loadBefore.toFixed(2)} before the benchmark; other work on the machine will inflate the times`);
  const root = mkdtempSync(join(resolve(args.workdir ?? tmpdir()), 'tessera-bench-'));
  assertPlainPath(root);
  // Every task of every system creates files; on some disks that alone costs more than a process start.
  const createMs = fileCreateMs(root);
  const outDir = join(HERE, 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const profDir = join(outDir, `cpu-prof-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  // Before the systems: what a process start costs on this machine, whatever starts it.
  let probe: SpawnProbe | undefined;
  if (probeStarts > 0) {
    console.log(`spawn probe: ${probeStarts} starts of /bin/true per starter ...`);
    probe = await spawnProbe({ repo: REPO, n: probeStarts, heapMb: PROBE_HEAP_MB });
    console.log(`\nSpawn cost on this machine (${(probe.ms / 1000).toFixed(1)} s):\n${spawnProbeLines(probe).join('\n')}\n`);
  }
  // The server always loads the heap ballast module (with no ballast unless --server-heap-mb): it reports its heap on SIGUSR2.
  const heapFile = join(root, 'tessera-heap.json');
  const all: System[] = [
    new ShellLoop(root),
    new Tessera(root, {
      repo: REPO,
      port,
      parallelism,
      nodeArgs: [...heapBallastArgs(serverHeapMb), ...(args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [])],
      env: { ...heapBallastEnv(serverHeapMb, heapFile), ...(storeInstances > 0 ? { DICOM_PORT: String(dicomPort) } : {}) },
    }),
    new Snakemake(root, snakemakeCores),
    new Cwltool(root),
  ];
  const only = args.only?.split(',').map((s) => s.trim());
  const systems = all;

  const versions = new Map<string, string>();
  const absent = new Map<string, string>();
  for (const s of systems) {
    if (only && s.id !== 'shell' && !only.includes(s.id)) {
      absent.set(s.id, 'not run (--only)');
      continue;
    }
    const v = await s.detect();
    if (v === undefined) {
      console.log(`${s.label}: not installed, skipped`);
      absent.set(s.id, 'not installed');
      continue;
    }
    versions.set(s.id, v);
  }

  const results: Results = new Map(cases.map((c) => [c.id, new Map<string, Measurement[]>()]));
  const started = new Date();
  const tessera = systems.find((s): s is Tessera => s instanceof Tessera);
  const serverState: ServerState = { heapMb: serverHeapMb, storeInstances, nodeArgs: heapBallastArgs(serverHeapMb) };
  try {
    for (const s of systems.filter((x) => !absent.has(x.id))) {
      try {
        await s.prepare(cases);
      } catch (err) {
        console.log(`${s.label}: could not be prepared, skipped: ${(err as Error).message}`);
        absent.set(s.id, 'could not start');
      }
    }
    if (tessera && !absent.has('tessera')) await prepareServerState(tessera, serverState, heapFile, absent);
    const ready = systems.filter((s) => !absent.has(s.id));
    for (const c of cases) {
      const n = c === warmup ? 1 : reps;
      const spent = new Map<string, number>();
      // Systems take turns within each repetition, so that a slow drift of the machine hits all alike.
      for (let rep = 0; rep < n; rep++) {
        for (const s of ready) {
          const list = results.get(c.id)!.get(s.id) ?? [];
          results.get(c.id)!.set(s.id, list);
          if (rep > 0 && (spent.get(s.id) ?? 0) > CASE_BUDGET_MS) continue;
          if (list.some((m) => !m.ok)) continue; // a failing system fails the same way again, and slowly
          const m = await s.run(c);
          list.push(m);
          spent.set(s.id, (spent.get(s.id) ?? 0) + (Number.isFinite(m.ms) ? m.ms : 0));
          const server = m.serverMs !== undefined ? `, server ${(m.serverMs / 1000).toFixed(2)} s` : '';
          console.log(`${c.id.padEnd(12)} ${s.id.padEnd(10)} run ${rep + 1}: ${m.ok ? `${(m.ms / 1000).toFixed(2)} s${server}` : `FAILED: ${m.error}`}`);
        }
      }
    }
  } finally {
    if (tessera?.server && !absent.has('tessera')) {
      const pid = tessera.server.pid;
      serverState.after = { rssMb: rssMb(pid), peakRssMb: peakRssMb(pid), heap: await heapNow(pid, heapFile) };
    }
    for (const s of systems) await s.close().catch((err: Error) => console.log(`${s.label}: close failed: ${err.message}`));
  }

  const command = `npx tsx bench/workflow-engine.ts ${process.argv.slice(2).join(' ')}`.trim();
  const byId = new Map<string, System>(systems.map((s) => [s.id, s]));
  const report = [
    `Date: ${started.toISOString()}`,
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Linux ${release()}, Node ${process.version}`,
    `Versions: ${[...versions].map(([id, v]) => `${byId.get(id)?.label} ${v}`).join(', ')}`,
    `Tessera code: ${gitState(REPO)}`,
    `Command: ${command}`,
    `Load average (1 min): ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`,
    `Work dir: ${dirname(root)}, where creating a file costs ${createMs.toFixed(3)} ms (median of 200)`,
    '',
    ...(probe ? ['Spawn cost on this machine:', '', ...spawnProbeLines(probe), ''] : []),
    'How each system runs:',
    ...systems.map((s) => `- ${s.label}: ${absent.get(s.id) ?? s.how}`),
    '',
    ...(absent.has('tessera') ? [] : ['Tessera server during the cases:', ...serverStateLines(serverState), '']),
    ...(handoffCase
      ? [
          `Hand-off latency, ${describeCase(handoffCase)}, every task \`sh -c 'date +%s%N >> stamps && touch <file>'\`:`,
          '',
          handoffTable(handoffCase, results, systems, absent),
          '',
        ]
      : []),
    'Wall time, every task `touch <file>`; median of the runs (number of runs in parentheses):',
    '',
    wallTable(wallCases, results, absent),
    '',
    'Goals:',
    ...goalLines(wallCases, handoffCase, results),
  ].join('\n');
  console.log(`\n${report}\n`);

  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const jsonFile = join(outDir, `workflow-engine-${stamp}.json`);
  writeFileSync(jsonFile, JSON.stringify({ started, command, versions: Object.fromEntries(versions), spawnProbe: probe, server: serverState, cases, results: Object.fromEntries([...results].map(([k, v]) => [k, Object.fromEntries(v)])) }, null, 1));
  writeFileSync(join(outDir, `workflow-engine-${stamp}.md`), `${report}\n`);
  console.log(`raw measurements: ${jsonFile}`);

  if (args['cpu-prof']) {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: thread 0 is the main thread; the others are tsx's loader.
    const files = readdirSync(profDir).filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
    for (const f of files) console.log(`\nCPU profile of the Tessera server (${join(profDir, f)}):\n${summarizeProfile(join(profDir, f))}`);
  }
  if (args.keep) console.log(`work dir kept: ${root}`);
  else rmSync(root, { recursive: true, force: true });
}

/**
 * Brings the prepared Tessera server to the state the options ask for (its heap
 * ballast is allocated as it starts): loads the store, then records its memory
 * before the cases. A store that cannot be loaded takes Tessera out of the run,
 * since its figures would be labelled with a store it does not hold.
 */
async function prepareServerState(tessera: Tessera, state: ServerState, heapFile: string, absent: Map<string, string>): Promise<void> {
  const server = tessera.server!;
  state.ballast = await heapNow(server.pid, heapFile);
  if (serverHeapMb > 0) console.log(`server heap: ${state.ballast ? `grown by ${state.ballast.grownMb.toFixed(0)} MB in ${(state.ballast.allocateMs / 1000).toFixed(1)} s` : 'the ballast module did not report'}`);
  if (storeInstances > 0) {
    try {
      state.store = await loadStore({ server, dicomPort, count: storeInstances, dataDir: resolve(args['data-dir']!), associations: LOAD_ASSOCIATIONS, log: (l) => console.log(l) });
    } catch (err) {
      state.storeError = (err as Error).message;
      console.log(`Tessera: the store could not be loaded, skipped: ${state.storeError}`);
      absent.set('tessera', `could not load the store: ${state.storeError.split('\n')[0]}`);
      return;
    }
  }
  state.before = { rssMb: rssMb(server.pid), heap: await heapNow(server.pid, heapFile) };
  console.log(`\nTessera server before the cases:\n${serverStateLines(state).join('\n')}\n`);
}

main().catch((err: unknown) => {
  console.error(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});

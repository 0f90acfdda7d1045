/**
 * Where Tessera's time goes between tasks: runs the scheduler in this process
 * (no HTTP) on the benchmark's chain and fan, and times each DB commit, each
 * mkdir, each runner start and each spawn, against the moment the previous
 * task's process exited. The engine is not changed: the Node built-ins it
 * calls and the instances it uses are wrapped from the outside.
 *
 *   npx tsx bench/scheduler-breakdown.ts [--chain 200] [--fan 1000] [--parallelism 8]
 */
import childProcess, { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { median, percentile } from './lib/stats.ts';
import { TESSERA_EXTENSION, assertPlainPath, tesseraManifest, tesseraSpec, type Case } from './lib/workloads.ts';

const { values: args } = parseArgs({
  options: {
    chain: { type: 'string', default: '200' },
    fan: { type: 'string', default: '1000' },
    parallelism: { type: 'string', default: '8' },
  },
});

interface Span {
  what: 'commit' | 'mkdir' | 'runner.start' | 'spawn' | 'openSync' | 'readFileSync';
  start: number;
  end: number;
  /** Rows a commit wrote. */
  rows?: number;
}

const spans: Span[] = [];
/** performance.now() of each task's process exit and spawn, by TASK_ID. */
const exits = new Map<string, number>();
const spawns = new Map<string, number>();

function timeSync<A extends unknown[], R>(what: Span['what'], fn: (...a: A) => R): (...a: A) => R {
  return (...a: A): R => {
    const start = performance.now();
    try {
      return fn(...a);
    } finally {
      spans.push({ what, start, end: performance.now() });
    }
  };
}

function timeAsync<A extends unknown[], R>(what: Span['what'], fn: (...a: A) => Promise<R>, rows?: (...a: A) => number): (...a: A) => Promise<R> {
  return async (...a: A): Promise<R> => {
    const start = performance.now();
    try {
      return await fn(...a);
    } finally {
      spans.push({ what, start, end: performance.now(), rows: rows?.(...a) });
    }
  };
}

// Built-in ESM named exports are live bindings only after syncBuiltinESMExports(), which is why this works on the engine's imports.
const realSpawn = childProcess.spawn.bind(childProcess) as (cmd: string, argv: readonly string[], options: childProcess.SpawnOptions) => ChildProcess;
(childProcess as { spawn: unknown }).spawn = (cmd: string, argv: readonly string[], options: childProcess.SpawnOptions): ChildProcess => {
  const start = performance.now();
  const child = realSpawn(cmd, argv, options);
  spans.push({ what: 'spawn', start, end: performance.now() });
  const task = (options.env as Record<string, string> | undefined)?.TASK_ID;
  if (task) {
    spawns.set(task, start);
    child.once('exit', () => exits.set(task, performance.now()));
  }
  return child;
};
(fsPromises as { mkdir: unknown }).mkdir = timeAsync('mkdir', fsPromises.mkdir.bind(fsPromises) as (...a: unknown[]) => Promise<unknown>);
(fs as { openSync: unknown }).openSync = timeSync('openSync', fs.openSync.bind(fs) as (...a: unknown[]) => unknown);
syncBuiltinESMExports();

const { createTessera } = await import('@tessera/server');
const { loadConfig } = await import('@tessera/server');
const { ProcessRunner } = await import('@tessera/engine');
const proto = ProcessRunner.prototype as { start: (this: unknown, ...a: unknown[]) => Promise<unknown> };
const realStart = proto.start;
proto.start = function (this: unknown, ...a: unknown[]): Promise<unknown> {
  return timeAsync('runner.start', (...b: unknown[]) => realStart.apply(this, b))(...a);
};

const root = mkdtempSync(join(tmpdir(), 'tessera-breakdown-'));
assertPlainPath(root);
const cases: Case[] = [
  { id: `chain-${args.chain}`, shape: 'chain', size: Number(args.chain), task: 'touch' },
  { id: `fan-${args.fan}`, shape: 'fan', size: Number(args.fan), task: 'touch' },
];
const ext = join(root, 'extensions', TESSERA_EXTENSION);
mkdirSync(join(ext, 'workflows'), { recursive: true });
writeFileSync(join(ext, 'tessera-extension.json'), JSON.stringify(tesseraManifest(cases)));
for (const c of cases) {
  mkdirSync(join(root, c.id, 'out'), { recursive: true });
  writeFileSync(join(ext, 'workflows', `${c.id}.json`), JSON.stringify(tesseraSpec(c, { out: join(root, c.id, 'out'), stamps: join(root, c.id, 'stamps') })));
}

const tessera = await createTessera(
  loadConfig({ ...process.env, TESSERA_HOME: join(root, 'home'), TESSERA_EXTENSIONS_DIRS: join(root, 'extensions'), TESSERA_RUNNERS: 'process', TESSERA_PARALLELISM: args.parallelism, TESSERA_LOG_LEVEL: 'warn' }),
);
const store = tessera.scheduler.store;
const realWrite = store.write.bind(store);
store.write = timeAsync('commit', realWrite, (t) => (t.tasks?.length ?? 0) + (t.runs?.length ?? 0));
const project = await tessera.projects.require('admin');

const sum = (list: Span[]): number => list.reduce((a, s) => a + (s.end - s.start), 0);
const fmt = (ms: number): string => `${ms.toFixed(2)} ms`;

async function runCase(c: Case, print = true): Promise<void> {
  spans.length = 0;
  exits.clear();
  spawns.clear();
  const wf = tessera.registry.get(c.id);
  const t0 = performance.now();
  const { runs } = await tessera.scheduler.trigger({ project, workflow: { spec: wf.spec, extensionDir: wf.extension.dir }, conf: {} });
  const row = await tessera.scheduler.waitForRun(runs[0]!.id);
  const wall = performance.now() - t0;
  if (row.state !== 'success') throw new Error(`run ${row.state}: ${row.reason}`);
  if (!print) return;
  const n = c.shape === 'chain' ? c.size : c.size + 2;
  const kinds: Span['what'][] = ['commit', 'mkdir', 'openSync', 'runner.start', 'spawn'];
  const rssMb = process.memoryUsage().rss / 1024 / 1024;
  console.log(`\n${c.id}: ${n} tasks, ${fmt(wall)} in process (${fmt(wall / n)} per task), parallelism ${args.parallelism}, RSS ${rssMb.toFixed(0)} MB`);
  const commits = spans.filter((s) => s.what === 'commit');
  console.log(`  commits write ${(commits.reduce((a, s) => a + (s.rows ?? 0), 0) / n).toFixed(2)} rows per task`);
  for (const k of kinds) {
    const list = spans.filter((s) => s.what === k);
    if (list.length === 0) {
      // Since ADR 5 the log file is opened and the process spawned in the launcher process, not here.
      console.log(`  ${k.padEnd(13)} not in this process (done by the process launcher)`);
      continue;
    }
    const durations = list.map((s) => s.end - s.start);
    const head = `  ${k.padEnd(13)} ${(list.length / n).toFixed(2)} calls per task, latency p50 ${fmt(median(durations))}, p95 ${fmt(percentile(durations, 95))}`;
    // Sync calls block the event loop, so their sum is a share of the wall time; async ones overlap, and a sum would mean nothing.
    const sync = k === 'spawn' || k === 'openSync';
    console.log(sync ? `${head}; ${fmt(sum(list) / n)} per task blocking the event loop, ${((sum(list) / wall) * 100).toFixed(0)}% of the wall time` : head);
  }
  if (c.shape !== 'chain' || spawns.size === 0) return; // the hand-off window needs spawns seen in this process
  // Critical path of a chain: previous task's exit -> this task's spawn. Attribute what ran inside that window.
  const gaps: number[] = [];
  const inside = new Map<string, number[]>();
  for (let i = 1; i < c.size; i++) {
    const exit = exits.get(`t${i - 1}`);
    const spawn = spawns.get(`t${i}`);
    if (exit === undefined || spawn === undefined) continue;
    gaps.push(spawn - exit);
    for (const k of kinds) {
      const overlap = spans.filter((s) => s.what === k).reduce((a, s) => a + Math.max(0, Math.min(s.end, spawn) - Math.max(s.start, exit)), 0);
      const list = inside.get(k) ?? [];
      list.push(overlap);
      inside.set(k, list);
    }
  }
  console.log(`  exit of task i-1 -> spawn of task i (server-side hand-off, without process start/exit): p50 ${fmt(median(gaps))}, p95 ${fmt(percentile(gaps, 95))}`);
  for (const k of ['commit', 'mkdir', 'openSync'] as const) console.log(`    of which ${k.padEnd(9)} p50 ${fmt(median(inside.get(k) ?? []))}`);
  const rest = gaps.map((g, i) => g - (['commit', 'mkdir', 'openSync'] as const).reduce((a, k) => a + (inside.get(k)?.[i] ?? 0), 0));
  console.log(`    of which the rest (JS, promise hops, event loop) p50 ${fmt(median(rest))}`);
}

try {
  // The first run pays for JIT compilation and cold caches.
  await runCase(cases[0]!, false);
  for (const c of cases) await runCase(c);
} finally {
  await tessera.close();
  rmSync(root, { recursive: true, force: true });
}

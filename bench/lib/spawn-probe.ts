/**
 * What starting a process costs on this machine, measured the same way for each
 * starter: a helper process receives a request over a pipe, starts `/bin/true`,
 * reaps it and answers; the time is from writing the request to reading the answer.
 * Shared by bench/spawn-cost.ts and the spawn probe at the start of
 * bench/workflow-engine.ts, which tells a machine effect (slow forks, a loaded
 * machine) from an engine effect in its figures:
 *
 *   - shell: `/bin/sh` reading ids in a `while read` loop (the floor);
 *   - node: `child_process.spawn` in a small Node process (`node -e`);
 *   - node-heap: the same after the helper grew its JavaScript heap (heap-ballast.mjs):
 *     libuv forks on Linux, and fork copies the parent's page tables;
 *   - native: Tessera's native launcher (packages/engine/native), when it is built.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { heapBallastArgs, heapBallastEnv } from './heap.ts';
import { rssMb, timed } from './proc.ts';
import { median, percentile } from './stats.ts';

/** Where Tessera's native launcher (packages/engine/native) is built, in a checkout. */
export function nativeLauncherPath(repo: string): string {
  return join(repo, 'packages/engine/native/build/tessera-launcher');
}

/** Reads one id per line, starts /bin/true, and answers "<id> <exit code>" when it has exited. */
export const NODE_HELPER = `
const { spawn } = require('node:child_process');
require('node:readline').createInterface({ input: process.stdin }).on('line', (id) => {
  spawn('/bin/true', [], { stdio: 'ignore', detached: true }).once('exit', (code) => process.stdout.write(id + ' ' + code + '\\n'));
});`;

/** The same protocol in /bin/sh: `read` and `echo` are built in, so each request starts exactly one process. */
export const SHELL_HELPER = 'while read id; do /bin/true; echo "$id $?"; done';

export interface HelperTiming {
  /** Request to answer, one per start (warm-up starts excluded), ms. */
  ms: number[];
  /** The helper's resident memory after its starts (VmRSS), MB. */
  helperRssMb: number;
}

interface Requests {
  child: ChildProcess;
  /** Sends request `i` and resolves with the time until its answer. */
  once(i: number): Promise<number>;
}

async function timeRequests(r: Requests, n: number, warmup: number): Promise<HelperTiming> {
  const exited = new Promise<void>((resolve) => r.child.once('close', () => resolve()));
  // A helper that cannot start (or dies) closes its output, which fails the next read; these only keep the error from crashing the bench.
  let startError: Error | undefined;
  r.child.once('error', (err) => {
    startError = err;
  });
  r.child.stdin!.on('error', () => undefined);
  try {
    for (let i = 0; i < warmup; i++) await r.once(i);
    const ms: number[] = [];
    for (let i = warmup; i < warmup + n; i++) ms.push(await r.once(i));
    const helperRssMb = rssMb(r.child.pid);
    r.child.stdin!.end();
    const timer = setTimeout(() => r.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
    return { ms, helperRssMb };
  } catch (err) {
    r.child.kill('SIGKILL');
    throw startError ?? err;
  }
}

/** A line reader that fails, instead of hanging, when the helper closes its output. */
function lineReader(child: ChildProcess, label: string): () => Promise<string> {
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return async () => {
    const next = await lines.next();
    if (next.done) {
      // Its exit usually follows the end of its output within moments: wait a little for the code that says why.
      if (child.exitCode === null && child.signalCode === null) await Promise.race([once(child, 'exit'), sleep(1000)]);
      throw new Error(`${label}: the helper closed its output (exit ${child.exitCode ?? child.signalCode ?? 'unknown'})`);
    }
    return String(next.value);
  };
}

/**
 * Times `n` starts through a helper that reads one id per line and answers
 * "<id> <exit code>" once that start's process has exited, after `warmup` starts
 * that are not counted (the first ones also wait for the helper to load).
 */
export async function timeLineHelper(label: string, command: string, argv: readonly string[], n: number, o: { warmup?: number; env?: NodeJS.ProcessEnv } = {}): Promise<HelperTiming> {
  const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'inherit'], env: o.env ?? process.env });
  const read = lineReader(child, label);
  return timeRequests(
    {
      child,
      async once(i) {
        const t0 = performance.now();
        child.stdin!.write(`${i}\n`);
        const answer = await read();
        const ms = performance.now() - t0;
        if (answer !== `${i} 0`) throw new Error(`${label}: unexpected answer ${JSON.stringify(answer)} to request ${i}`);
        return ms;
      },
    },
    n,
    o.warmup ?? 0,
  );
}

/**
 * Times `n` starts through the native launcher. A request is NUL-terminated fields:
 * `spawn`, id, cwd, log file, status file (empty: none), argc, argv..., envc, env
 * `K=V`...; it answers lines `started <id> <pid>`, `error <id> <stage> <ERRNO> <message>`
 * and `exit <id> <code or -> <signal or ->`. The time runs to the `exit` line.
 */
export async function timeNativeLauncher(path: string, n: number, o: { warmup?: number } = {}): Promise<HelperTiming> {
  const child = spawn(path, [], { stdio: ['pipe', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
  const read = lineReader(child, 'native launcher');
  const env = [`PATH=${process.env.PATH ?? '/usr/bin:/bin'}`];
  const request = (id: number): string => [...['spawn', String(id), '/', '/dev/null', '', '1', '/bin/true', String(env.length)], ...env].map((f) => `${f}\0`).join('');
  return timeRequests(
    {
      child,
      async once(i) {
        const t0 = performance.now();
        child.stdin!.write(request(i));
        for (;;) {
          const line = await read();
          const [kind, id, ...rest] = line.split(' ');
          if (id !== String(i)) throw new Error(`native launcher: answer ${JSON.stringify(line)} to request ${i}`);
          if (kind === 'started') continue;
          const ms = performance.now() - t0;
          if (kind === 'exit' && rest[0] === '0' && rest[1] === '-') return ms;
          throw new Error(`native launcher: ${kind === 'exit' ? '/bin/true did not exit 0' : 'unexpected answer'}: ${JSON.stringify(line)}`);
        }
      },
    },
    n,
    o.warmup ?? 0,
  );
}

/** Mean time per start of a free-running `/bin/sh` loop of `n` starts: no pipe, no helper. */
export async function shellLoopMeanMs(n: number): Promise<number> {
  const r = await timed('/bin/sh', ['-c', `i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i+1)); done`]);
  if (r.code !== 0) throw new Error(`the /bin/sh loop failed (exit ${r.code}): ${r.stderrTail}`);
  return r.ms / n;
}

export type StarterId = 'shell' | 'node' | 'node-heap' | 'native';

export interface StarterFigures {
  id: StarterId;
  label: string;
  /** Starts timed (0 when not measured). */
  n: number;
  p50: number;
  p95: number;
  helperRssMb: number;
  /** Why it was not measured ("not built", an error). */
  skipped?: string;
}

export interface SpawnProbe {
  n: number;
  warmup: number;
  /** The heap the node-heap helper was grown to, MB. */
  heapMb: number;
  nativeLauncher: string;
  /** Free-running /bin/sh loop, mean per start: the floor without the pipe round trip. */
  shellLoopMeanMs: number;
  starters: StarterFigures[];
  /** Node helper / shell helper, at p50 and at p95. */
  nodeOverShell: { p50: number; p95: number };
  ms: number;
}

export interface SpawnProbeOptions {
  /** The checkout whose native launcher is measured. */
  repo: string;
  n?: number;
  warmup?: number;
  heapMb?: number;
}

const LABELS: Record<StarterId, string> = {
  shell: '/bin/sh `while read` loop (floor)',
  node: 'Node helper, child_process.spawn',
  'node-heap': 'Node helper with a grown heap, child_process.spawn',
  native: 'Tessera native launcher',
};

/** Measures the four starters one after another, each with `n` sequential starts of /bin/true. */
export async function spawnProbe(o: SpawnProbeOptions): Promise<SpawnProbe> {
  const n = o.n ?? 200;
  const warmup = o.warmup ?? 10;
  const heapMb = o.heapMb ?? 400;
  const nativeLauncher = nativeLauncherPath(o.repo);
  const t0 = performance.now();
  const starters: StarterFigures[] = [];
  const measure = async (id: StarterId, run: () => Promise<HelperTiming>, label = LABELS[id]): Promise<void> => {
    try {
      const t = await run();
      starters.push({ id, label, n: t.ms.length, p50: median(t.ms), p95: percentile(t.ms, 95), helperRssMb: t.helperRssMb });
    } catch (err) {
      starters.push({ id, label, n: 0, p50: Number.NaN, p95: Number.NaN, helperRssMb: Number.NaN, skipped: `failed: ${(err as Error).message.split('\n')[0]}` });
    }
  };
  const shellLoop = await shellLoopMeanMs(n);
  await measure('shell', () => timeLineHelper('shell helper', '/bin/sh', ['-c', SHELL_HELPER], n, { warmup }));
  await measure('node', () => timeLineHelper('Node helper', process.execPath, ['-e', NODE_HELPER], n, { warmup }));
  await measure(
    'node-heap',
    () => timeLineHelper('Node helper with a grown heap', process.execPath, [...heapBallastArgs(heapMb), '-e', NODE_HELPER], n, { warmup, env: { ...process.env, ...heapBallastEnv(heapMb) } }),
    `Node helper with ${heapMb} MB of heap, child_process.spawn`,
  );
  if (existsSync(nativeLauncher)) await measure('native', () => timeNativeLauncher(nativeLauncher, n, { warmup }));
  else starters.push({ id: 'native', label: LABELS.native, n: 0, p50: Number.NaN, p95: Number.NaN, helperRssMb: Number.NaN, skipped: 'not built' });
  const by = (id: StarterId): StarterFigures | undefined => starters.find((s) => s.id === id);
  const ratio = (k: 'p50' | 'p95'): number => (by('node')?.[k] ?? Number.NaN) / (by('shell')?.[k] ?? Number.NaN);
  return { n, warmup, heapMb, nativeLauncher, shellLoopMeanMs: shellLoop, starters, nodeOverShell: { p50: ratio('p50'), p95: ratio('p95') }, ms: performance.now() - t0 };
}

const ms3 = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(3)} ms` : 'n/a');

/** The probe as a Markdown table and a line with the ratio, for the console and the report. */
export function spawnProbeLines(p: SpawnProbe): string[] {
  const shell = p.starters.find((s) => s.id === 'shell');
  const rows = p.starters.map((s) => {
    if (s.skipped) return `| ${s.label} | ${s.skipped} | | | |`;
    const vsShell = shell && !shell.skipped ? `${(s.p50 / shell.p50).toFixed(2)}x` : 'n/a';
    return `| ${s.label} | ${ms3(s.p50)} | ${ms3(s.p95)} | ${vsShell} | ${Number.isFinite(s.helperRssMb) ? `${s.helperRssMb.toFixed(0)} MB` : 'n/a'} |`;
  });
  const ratio = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a');
  return [
    `${p.n} sequential starts of /bin/true per starter (after ${p.warmup} not counted), each from a request over a pipe to the exit seen by the starter and its answer read back:`,
    '',
    '| starter | p50 per start | p95 per start | p50 / shell | starter RSS |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows,
    '',
    `Node helper / shell: ${ratio(p.nodeOverShell.p50)} at p50, ${ratio(p.nodeOverShell.p95)} at p95. A free-running /bin/sh loop (no pipe) takes ${ms3(p.shellLoopMeanMs)} per start (mean).`,
  ];
}

/**
 * What the sandbox (bubblewrap, issue 14) adds to a process task: N tasks of `true`,
 * one after another, each from `ProcessRunner.start()` to its `done` (launcher, log
 * file, exit status file included), unsandboxed and sandboxed, interleaved in rounds
 * of 10 so that a change of machine load hits both alike. Then the same N tasks 8 at a
 * time, for the throughput a fan sees. Prints ms per task and the ratio.
 *
 *   npx tsx bench/sandbox-spawn.ts [N=200]
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { validateDagSpec } from '@tessera/model';
import { contractEnv, prepareWorkflowDir, type RunConf } from '../packages/engine/src/operator-contract.ts';
import { ProcessRunner } from '../packages/engine/src/runners/process/process-runner.ts';
import { probeBwrap } from '../packages/engine/src/runners/process/sandbox.ts';
import type { TaskLaunch } from '../packages/engine/src/runners/runner.ts';
import { median, percentile } from './lib/stats.ts';

const N = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 200);
const PARALLEL = 8;

const probe = probeBwrap();
if (!probe.sandbox) {
  console.error(`no sandbox to measure: ${probe.reason}; apt-get install bubblewrap`);
  process.exit(1);
}
const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-sandbox-'));
const ext = join(dir, 'ext');
await mkdir(ext);
await mkdir(join(dir, 'logs'));
const spec = validateDagSpec({
  spec_version: 1, id: 'bench', workflow_form: { type: 'object' }, data_form: { type: 'object' },
  tasks: [{ id: 'op', operator: 'op', output_dir: 'out', process: { command: ['true'] } }],
});
const task = spec.tasks[0]!;
const conf: RunConf = { workflow_form: {}, data_form: { identifiers: [] }, project_form: { id: 'p', name: 'bench' } };
const runners = {
  plain: new ProcessRunner({ homeId: `bench-${process.pid}` }),
  sandboxed: new ProcessRunner({ homeId: `bench-${process.pid}`, sandbox: probe.sandbox }),
};

let counter = 0;
/** A launch with its workflow dir made: that is the scheduler's work, not the runner's. */
async function launch(): Promise<TaskLaunch> {
  const runId = `bench-${process.pid}-${++counter}`;
  const workflowDir = join(dir, runId);
  await prepareWorkflowDir(workflowDir, conf);
  return {
    key: `${runId}/op/1.1`, runId, taskId: 'op', dagId: 'bench', task, workflowDir, extensionDir: ext,
    logFile: join(dir, 'logs', `${runId}.log`),
    env: (wd) => contractEnv({ workflowDir: wd, runId, dagId: 'bench', task, conf, services: {} }),
    conf,
  };
}

async function one(runner: ProcessRunner, l: TaskLaunch): Promise<number> {
  const t0 = performance.now();
  const outcome = await (await runner.start(l)).done;
  if (outcome.state !== 'success') throw new Error(`${JSON.stringify(outcome)}; see ${l.logFile}`);
  return performance.now() - t0;
}

/** Wall time of `n` tasks, `PARALLEL` at a time, per task. */
async function fan(runner: ProcessRunner, n: number): Promise<number> {
  const launches = await Promise.all(Array.from({ length: n }, () => launch()));
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    while (next < launches.length) await one(runner, launches[next++]!);
  }));
  return (performance.now() - t0) / n;
}

// Warm-up: the launchers start, the page cache holds bwrap, sh and true.
for (const r of Object.values(runners)) for (let i = 0; i < 10; i++) await one(r, await launch());
const times: Record<keyof typeof runners, number[]> = { plain: [], sandboxed: [] };
for (let round = 0; round < N / 10; round++) {
  for (const name of ['plain', 'sandboxed'] as const) {
    for (let i = 0; i < 10; i++) times[name].push(await one(runners[name], await launch()));
  }
}
const fanPlain = await fan(runners.plain, N);
const fanSandboxed = await fan(runners.sandboxed, N);
for (const r of Object.values(runners)) await r.close();
await rm(dir, { recursive: true, force: true });

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const row = (label: string, xs: number[]): string => `${label.padEnd(11)} mean ${mean(xs).toFixed(2)} ms  p50 ${median(xs).toFixed(2)} ms  p95 ${percentile(xs, 95).toFixed(2)} ms`;
console.log(`${probe.sandbox.version}, N = ${N} tasks of \`true\` each, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
console.log('one at a time, start() to done:');
console.log(`  ${row('unsandboxed', times.plain)}`);
console.log(`  ${row('sandboxed', times.sandboxed)}`);
console.log(`  ratio (p50) ${(median(times.sandboxed) / median(times.plain)).toFixed(2)}x, +${(median(times.sandboxed) - median(times.plain)).toFixed(2)} ms per task`);
console.log(`${PARALLEL} at a time, wall time per task:`);
console.log(`  unsandboxed ${fanPlain.toFixed(2)} ms  sandboxed ${fanSandboxed.toFixed(2)} ms  ratio ${(fanSandboxed / fanPlain).toFixed(2)}x`);

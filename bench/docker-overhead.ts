/**
 * Per-task overhead of the Docker runner against a bare `docker run --rm` of
 * the same image and command (both on the engine's default network).
 *
 *   eval "$(scripts/docker-test-env.sh | tail -1)"
 *   npx tsx bench/docker-overhead.ts [N]          # N sequential runs each, default 20
 *
 * Goal: DockerRunner per-task wall time at most 1.2x the bare `docker run --rm`.
 * With --profile, also times the engine calls the runner makes (create, attach,
 * start, wait, inspect, remove) to show where the time goes.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import { validateDagSpec } from '@tessera/model';
import { contractEnv, prepareWorkflowDir, type RunConf } from '../packages/engine/src/operator-contract.ts';
import { detectDocker } from '../packages/engine/src/runners/docker/docker-detect.ts';
import { DockerRunner } from '../packages/engine/src/runners/docker/docker-runner.ts';
import type { TaskLaunch } from '../packages/engine/src/runners/runner.ts';

const IMAGE = 'tessera-test/python:bookworm';
const COMMAND = ['true'];
const DOCKER_CLI = '/usr/bin/docker';
const args = process.argv.slice(2);
const N = Number(args.find((a) => /^\d+$/.test(a)) ?? 20);
const PROFILE = args.includes('--profile');

const detected = await detectDocker();
if (!detected.available) {
  console.error(`${detected.reason}\nstart one with: eval "$(scripts/docker-test-env.sh | tail -1)"`);
  process.exit(1);
}
const socketPath = detected.socketPath;
const docker = new Dockerode({ socketPath });
const dir = await mkdtemp(join(tmpdir(), 'tessera-bench-docker-'));
const runner = new DockerRunner({ homeId: `bench-${process.pid}`, docker });
const spec = validateDagSpec({
  spec_version: 1,
  id: 'bench',
  workflow_form: { type: 'object' },
  data_form: { type: 'object' },
  tasks: [{ id: 'op', operator: 'op', output_dir: 'out', container: { image: IMAGE, command: COMMAND } }],
});
const task = spec.tasks[0]!;
const conf: RunConf = { workflow_form: {}, data_form: { identifiers: [] }, project_form: { id: 'p', name: 'bench' } };
await mkdir(join(dir, 'logs'));

let counter = 0;
async function launch(): Promise<TaskLaunch> {
  const runId = `bench-${process.pid}-${++counter}`;
  const workflowDir = join(dir, runId);
  await prepareWorkflowDir(workflowDir, conf);
  return {
    key: `${runId}/op/1.1`,
    runId,
    taskId: 'op',
    dagId: 'bench',
    task,
    workflowDir,
    extensionDir: undefined,
    logFile: join(dir, 'logs', `${runId}.log`),
    env: (wd) => contractEnv({ workflowDir: wd, runId, dagId: 'bench', task, conf, services: {} }),
    conf,
  };
}

async function viaRunner(): Promise<number> {
  const l = await launch(); // preparing the workflow dir is the scheduler's work, not the runner's
  const t0 = performance.now();
  const outcome = await (await runner.start(l)).done;
  const ms = performance.now() - t0;
  if (outcome.state !== 'success') throw new Error(`runner: ${JSON.stringify(outcome)}`);
  return ms;
}

function viaCli(): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(DOCKER_CLI, ['run', '--rm', IMAGE, ...COMMAND], {
      env: { ...process.env, DOCKER_HOST: `unix://${socketPath}` },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`docker run exited ${code}`))));
  });
}

/** The runner's engine calls one by one, each timed. */
async function profileOnce(phases: Record<string, number[]>): Promise<void> {
  const l = await launch();
  const time = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const v = await f();
    (phases[name] ??= []).push(performance.now() - t0);
    return v;
  };
  const c = await time('create', () =>
    docker.createContainer({
      Image: IMAGE,
      Entrypoint: COMMAND,
      Env: Object.entries(l.env(`/kaapana/mounted/data/${l.runId}`)).map(([k, v]) => `${k}=${v}`),
      HostConfig: { Mounts: [{ Type: 'bind', Source: l.workflowDir, Target: `/kaapana/mounted/data/${l.runId}` }] },
    }),
  );
  const stream = await time('attach', () => c.attach({ stream: true, stdout: true, stderr: true }));
  stream.on('data', () => undefined);
  await time('start', () => c.start());
  await time('wait', () => c.wait());
  await time('remove', () => c.remove({ force: true }));
}

function stats(xs: number[]): { mean: number; p50: number; p95: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { mean: xs.reduce((a, b) => a + b, 0) / xs.length, p50: q(0.5), p95: q(0.95) };
}

const fmt = (ms: number): string => `${ms.toFixed(0)} ms`;

try {
  // Warm-up: first runs pay for page cache and image layer lookups.
  await viaCli();
  await viaRunner();
  const cli: number[] = [];
  const run: number[] = [];
  // Interleaved, so that drift in the machine's load hits both sides alike.
  for (let i = 0; i < N; i++) {
    cli.push(await viaCli());
    run.push(await viaRunner());
  }
  const a = stats(run);
  const b = stats(cli);
  console.log(`Docker runner overhead: ${N} sequential runs of \`${COMMAND.join(' ')}\` in ${IMAGE}, ${cpus().length} cores, engine ${detected.version}`);
  console.log('| | mean | p50 | p95 |');
  console.log('|---|---|---|---|');
  console.log(`| DockerRunner (start → done) | ${fmt(a.mean)} | ${fmt(a.p50)} | ${fmt(a.p95)} |`);
  console.log(`| \`docker run --rm\` | ${fmt(b.mean)} | ${fmt(b.p50)} | ${fmt(b.p95)} |`);
  console.log(`| ratio | ${(a.mean / b.mean).toFixed(2)}x | ${(a.p50 / b.p50).toFixed(2)}x | ${(a.p95 / b.p95).toFixed(2)}x |`);
  if (PROFILE) {
    const phases: Record<string, number[]> = {};
    for (let i = 0; i < N; i++) await profileOnce(phases);
    console.log('\nengine calls (mean / p95):');
    for (const [name, xs] of Object.entries(phases)) console.log(`  ${name.padEnd(7)} ${fmt(stats(xs).mean)} / ${fmt(stats(xs).p95)}`);
  }
  const ratio = a.mean / b.mean;
  console.log(ratio <= 1.2 ? `\nOK: ${ratio.toFixed(2)}x <= 1.2x` : `\nABOVE GOAL: ${ratio.toFixed(2)}x > 1.2x`);
} finally {
  await runner.sweep(new Set());
  await runner.close();
  await rm(dir, { recursive: true, force: true });
}

/**
 * `tessera task run` against a bare `docker run --rm` of the same task: the
 * kaapana-task-example image's `generate` template with WORK_SECONDS=10 (about
 * 10 s of CPU work), its output channel bind-mounted at the same path, the same
 * env. The systems take turns (A, B, A, B, ...), so that drift of the machine
 * hits both alike. Also reports the CLI's fixed start cost apart: `tessera task
 * validate` of the same task.json (Node start, tsx, parsing; no Docker).
 *
 *   eval "$(scripts/docker-test-env.sh | tail -1)"
 *   npx tsx bench/task-run.ts [N]        # N runs of each, default 3
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const REPO = resolve(import.meta.dirname, '..');
const IMAGE = 'tessera-ext/kaapana-task-example:0.1.0';
const DOCKER_CLI = '/usr/bin/docker';
const N = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 3);
const WORK_SECONDS = '10';

function timed(cmd: string, args: string[], cwd: string): Promise<number> {
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', fail);
    p.on('exit', (code) => (code === 0 ? ok(performance.now() - t0) : fail(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const work = await mkdtemp(join(tmpdir(), 'tessera-bench-task-'));
try {
  await timed(DOCKER_CLI, ['build', '-q', '-t', IMAGE, join(REPO, 'extensions', 'kaapana-task-example', 'processing')], REPO);
  const task = {
    name: 'bench-generate',
    image: IMAGE,
    taskTemplate: 'generate',
    outputs: [{ name: 'numbers', volume_source: { host_path: join(work, 'cli-out') } }],
    env: [{ name: 'WORK_SECONDS', value: WORK_SECONDS }],
  };
  await writeFile(join(work, 'task.json'), JSON.stringify(task));
  const cli = [join(REPO, 'bin', 'tessera.mjs')];
  const bare = ['run', '--rm', '--memory', `${200 * 1024 * 1024}`, '--memory-swap', `${200 * 1024 * 1024}`,
    '--mount', `type=bind,source=${join(work, 'bare-out')},target=/home/kaapana/numbers`,
    '-e', 'COUNT=3', '-e', `WORK_SECONDS=${WORK_SECONDS}`, '-e', 'SEED=1',
    IMAGE, 'python3', '-u', '/kaapana/app/tasks.py', 'generate'];
  await import('node:fs/promises').then((fs) => fs.mkdir(join(work, 'bare-out'), { recursive: true }));
  // Warm-up of each (page cache, tsx's compile cache), not counted.
  await timed(process.execPath, [...cli, 'task', 'validate', 'task.json'], work);
  const tCli: number[] = [];
  const tBare: number[] = [];
  const tStart: number[] = [];
  for (let i = 0; i < N; i++) {
    tCli.push(await timed(process.execPath, [...cli, 'task', 'run', 'task.json'], work));
    tBare.push(await timed(DOCKER_CLI, bare, work));
    tStart.push(await timed(process.execPath, [...cli, 'task', 'validate', 'task.json'], work));
    console.error(`round ${i + 1}/${N}: task run ${(tCli[i]! / 1000).toFixed(2)} s, docker run ${(tBare[i]! / 1000).toFixed(2)} s, CLI start ${(tStart[i]! / 1000).toFixed(2)} s`);
  }
  const c = median(tCli);
  const b = median(tBare);
  const s = median(tStart);
  console.log(`task of ~${WORK_SECONDS} s, ${N} runs each, medians:`);
  console.log(`  tessera task run     ${(c / 1000).toFixed(2)} s`);
  console.log(`  docker run --rm      ${(b / 1000).toFixed(2)} s`);
  console.log(`  CLI fixed start cost ${(s / 1000).toFixed(2)} s (tessera task validate: node + tsx + parsing, no Docker)`);
  console.log(`  ratio task run / docker run:                 ${(c / b).toFixed(3)}`);
  console.log(`  ratio (task run - start cost) / docker run:  ${((c - s) / b).toFixed(3)}`);
} finally {
  await rm(work, { recursive: true, force: true });
}

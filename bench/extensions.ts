/**
 * The extension development kit, timed as a developer uses it, against a real server
 * (`node bin/tessera-server.mjs`, Docker runner) and the `tessera` CLI in its own
 * processes:
 *
 * 1. newcomer: `tessera ext init` -> `ext install ./folder` -> `import --sample ct` ->
 *    `run` to its first successful run, each command as typed (base images cached).
 *    Beside it, the floor of doing the same container work by hand: `docker build` of
 *    the template's context and one `docker run` of it on the same input.
 * 2. install -> triggerable: `tessera ext install <package.tgz>` (image inside), then
 *    how long until POST /api/jobs of its workflow is accepted.
 * 3. ext dev: a saved DAG change (and a saved processing script change) until ext dev
 *    prints that the new version is installed.
 *
 *   npx tsx bench/extensions.ts [--reps 5] [--port 18181]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { reps: { type: 'string', default: '5' }, port: { type: 'string', default: '18181' } } });
const reps = Number(args.reps);
const DOCKER = '/usr/bin/docker';
if (!process.env.DOCKER_HOST) throw new Error('set DOCKER_HOST (e.g. eval "$(scripts/docker-test-env.sh | tail -1)")');

const root = await mkdtemp(join(tmpdir(), 'tessera-bench-ext-'));
const url = `http://127.0.0.1:${args.port}`;
const env = { ...process.env, TESSERA_URL: url };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
const fmt = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

/** Runs the tessera CLI as a user types it; returns its wall time. */
function tessera(cwd: string, ...cliArgs: string[]): { ms: number; out: string; stdout: string } {
  const t = performance.now();
  const r = spawnSync(process.execPath, [join(REPO, 'bin/tessera.mjs'), ...cliArgs], { cwd, env, encoding: 'utf8' });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`tessera ${cliArgs.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return { ms, out: r.stdout + r.stderr, stdout: r.stdout };
}

function timed(cmd: string, cmdArgs: string[], cwd = root): number {
  const t = performance.now();
  const r = spawnSync(cmd, cmdArgs, { cwd, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${cmdArgs.join(' ')} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return performance.now() - t;
}

async function startServer(): Promise<ChildProcess> {
  const child = spawn(process.execPath, [join(REPO, 'bin/tessera-server.mjs')], {
    cwd: REPO,
    env: { ...process.env, PORT: args.port, HOST: '127.0.0.1', TESSERA_HOME: join(root, 'home'), DICOM_PORT: 'off', TESSERA_LOG_LEVEL: 'warn', TESSERA_RUNNERS: 'docker,process' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (let i = 0; i < 600; i++) {
    if (await fetch(`${url}/api/health`).then((r) => r.ok, () => false)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the server did not start');
}

const server = await startServer();
const results: string[] = [];
try {
  // ---------------------------------------------------------------- 1. newcomer
  const newcomer: { total: number; steps: Record<string, number> }[] = [];
  const floor: number[] = [];
  for (let i = 0; i < reps; i++) {
    const name = `bench-new-${i}`;
    const steps: Record<string, number> = {};
    steps.init = tessera(root, 'ext', 'init', name).ms;
    steps.install = tessera(root, 'ext', 'install', `./${name}`).ms;
    steps.import = tessera(root, 'import', '--sample', 'ct', '--dataset', `bench-${i}`).ms;
    steps.run = tessera(root, 'run', name, '--dataset', `bench-${i}`).ms;
    newcomer.push({ total: Object.values(steps).reduce((a, b) => a + b, 0), steps });
    // The floor: the same container work by hand, with a new image tag (as a new extension gets).
    const wd = join(root, `floor-${i}`);
    const runId = tessera(root, 'runs', '--workflow', name, '--limit', '1', '-q').stdout.trim();
    const run = (await (await fetch(`${url}/api/runs/${runId}`)).json()) as { workflow_dir: string };
    spawnSync('cp', ['-r', run.workflow_dir, wd]);
    const t = performance.now();
    timed(DOCKER, ['build', '-q', '-t', `bench-floor-${i}:1`, join(root, name, 'processing')]);
    timed(DOCKER, ['run', '--rm', '--network', 'none', '-v', `${wd}:/data`, '-e', 'WORKFLOW_DIR=/data', '-e', 'BATCH_NAME=batch', '-e', 'OPERATOR_IN_DIR=get-input', '-e', 'OPERATOR_OUT_DIR=summarize', `bench-floor-${i}:1`]);
    floor.push(performance.now() - t);
    spawnSync(DOCKER, ['rmi', `bench-floor-${i}:1`]);
  }
  const stepNames = Object.keys(newcomer[0]!.steps);
  results.push('### From `tessera ext init` to the first successful run', '',
    `| | ${stepNames.join(' | ')} | total | floor: docker build + docker run by hand | ratio |`,
    `| --- | ${stepNames.map(() => '---:').join(' | ')} | ---: | ---: | ---: |`,
    `| median of ${reps} | ${stepNames.map((s) => fmt(median(newcomer.map((n) => n.steps[s]!)))).join(' | ')} | **${fmt(median(newcomer.map((n) => n.total)))}** | ${fmt(median(floor))} | ${(median(newcomer.map((n) => n.total)) / median(floor)).toFixed(1)}x |`,
    `| slowest | ${stepNames.map((s) => fmt(Math.max(...newcomer.map((n) => n.steps[s]!)))).join(' | ')} | ${fmt(Math.max(...newcomer.map((n) => n.total)))} | ${fmt(Math.max(...floor))} | |`, '');

  // ---------------------------------------------------------------- 2. install -> triggerable
  tessera(root, 'ext', 'init', 'bench-pkg');
  const built = JSON.parse(tessera(root, 'ext', 'build', 'bench-pkg', '--json').stdout) as { file: string; bytes: number };
  const installMs: number[] = [];
  const triggerMs: number[] = [];
  for (let i = 0; i < reps; i++) {
    if (i > 0) tessera(root, 'ext', 'uninstall', 'bench-pkg');
    installMs.push(tessera(root, 'ext', 'install', built.file).ms);
    const t = performance.now();
    for (;;) {
      const res = await fetch(`${url}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ workflow: 'bench-pkg', conf: { data_form: { dataset_name: 'bench-0' } } }) });
      if (res.status === 201) break;
      if (performance.now() - t > 120_000) throw new Error(`not triggerable: ${res.status} ${await res.text()}`);
    }
    triggerMs.push(performance.now() - t);
  }
  results.push('### From `tessera ext install` returning to the workflow being triggerable', '',
    `Package with its image inside (${(built.bytes / 1024 / 1024).toFixed(1)} MB); each rep uninstalls first, so the image is loaded again.`, '',
    '| | `tessera ext install pkg.tgz` (upload, load image, install) | install returned -> POST /api/jobs accepted | Kaapana (documented) |',
    '| --- | ---: | ---: | ---: |',
    `| median of ${reps} | ${fmt(median(installMs))} | **${fmt(median(triggerMs))}** | up to 60 s |`,
    `| slowest | ${fmt(Math.max(...installMs))} | ${fmt(Math.max(...triggerMs))} | |`, '');

  // ---------------------------------------------------------------- 3. ext dev
  tessera(root, 'ext', 'init', 'bench-dev');
  const dev = spawn(process.execPath, [join(REPO, 'bin/tessera.mjs'), 'ext', 'dev', 'bench-dev'], { cwd: root, env });
  let out = '';
  dev.stdout.on('data', (d: Buffer) => (out += d.toString()));
  dev.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const lines = (): number => out.split('\n').filter((l) => /^\[\d\d:\d\d:\d\d\] (installed|.* reinstalled)/.test(l)).length;
  const waitLines = async (n: number): Promise<void> => {
    const deadline = Date.now() + 120_000;
    while (lines() < n) {
      if (Date.now() > deadline || /error:/.test(out)) throw new Error(`ext dev:\n${out}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  await waitLines(1);
  const dagMs: number[] = [];
  const imageMs: number[] = [];
  const wf = join(root, 'bench-dev', 'workflows', 'bench-dev.ts');
  const script = join(root, 'bench-dev', 'processing', 'summarize.py');
  const source = await readFile(wf, 'utf8');
  const scriptSource = await readFile(script, 'utf8');
  for (let i = 0; i < reps; i++) {
    await new Promise((r) => setTimeout(r, 300));
    let n = lines();
    let t = performance.now();
    await writeFile(wf, source.replace("title: 'Summarize each series'", `title: 'Summarize each series (${i})'`));
    await waitLines(n + 1);
    dagMs.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 300));
    n = lines();
    t = performance.now();
    await writeFile(script, `${scriptSource}\n# change ${i}\n`);
    await waitLines(n + 1);
    imageMs.push(performance.now() - t);
  }
  dev.kill('SIGINT');
  results.push('### `tessera ext dev`: from saving a file to the new version installed', '',
    'Includes the 60 ms the watcher waits for a save to settle.', '',
    '| change saved | median | slowest |', '| --- | ---: | ---: |',
    `| the DAG (workflows/*.ts) | **${fmt(median(dagMs))}** | ${fmt(Math.max(...dagMs))} |`,
    `| the processing script (image rebuilt) | **${fmt(median(imageMs))}** | ${fmt(Math.max(...imageMs))} |`, '');
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  for (const image of ['bench-pkg', 'bench-dev', ...Array.from({ length: reps }, (_, i) => `bench-new-${i}`)]) spawnSync(DOCKER, ['rmi', `tessera-ext/${image}:0.1.0`]);
  await rm(root, { recursive: true, force: true });
}
console.log(results.join('\n'));

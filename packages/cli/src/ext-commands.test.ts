import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerProblem, dockerSocket, skipDocker } from '../../engine/src/__fixtures__/docker-env.ts';
import { REPO_ROOT } from '../../server/src/__fixtures__/server-process.ts';
import { startTestServer, type TestServer } from '../../server/src/__fixtures__/test-server.ts';
import { runCli } from './__fixtures__/run-cli.ts';

describe('tessera ext without a server', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tessera-ext-cli-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });
  const cli = (...args: string[]) => runCli({ url: 'http://127.0.0.1:9', cwd: work, args });

  it('init makes either kind, and refuses bad names, kinds and existing folders with usage errors', async () => {
    const bad = await cli('ext', 'init', 'My_Ext');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('"My_Ext" is not a valid extension name');
    const kind = await cli('ext', 'init', 'an-ext', '--kind', 'plugin');
    expect(kind.code).toBe(2);
    expect(kind.stderr).toContain("argument 'plugin' is invalid");
    const app = await cli('ext', 'init', 'an-app', '--kind', 'application');
    expect(app.code, app.stderr).toBe(0);
    expect(JSON.parse(await readFile(join(work, 'an-app', 'tessera-extension.json'), 'utf8'))).toMatchObject({ kind: 'application', app: { process: { command: ['python3', 'app.py'] } } });
    expect((await cli('ext', 'init', 'twice')).code).toBe(0);
    const again = await cli('ext', 'init', 'twice');
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists');
  });

  it('build refuses an invalid manifest and a broken workflow, naming the field or the file and line, and writes no package', async () => {
    expect((await cli('ext', 'init', 'broken')).code).toBe(0);
    const manifest = join(work, 'broken', 'tessera-extension.json');
    const good = await readFile(manifest, 'utf8');
    await writeFile(manifest, good.replace('"kind": "workflow"', '"kind": "plugin"'));
    const kind = await cli('ext', 'build', 'broken');
    expect(kind.code).toBe(1);
    expect(kind.stderr).toMatch(/kind/);
    await writeFile(manifest, good);
    const wf = join(work, 'broken', 'workflows', 'broken.ts');
    await writeFile(wf, (await readFile(wf, 'utf8')).replace("level: 'batch_element',", "level: 'batch_element',,"));
    const syntax = await cli('ext', 'build', 'broken');
    expect(syntax.code).toBe(1);
    expect(syntax.stderr).toMatch(/workflows\/broken\.ts:\d+:\d+/);
    expect(existsSync(join(work, 'broken', 'dist', 'broken-0.1.0.tgz'))).toBe(false);
  });
});

describe.skipIf(skipDocker)('the extension development kit against a real server and Docker', () => {
  let work: string;
  let s: TestServer;
  beforeAll(async () => {
    expect(dockerProblem, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeUndefined();
    work = await mkdtemp(join(tmpdir(), 'tessera-edk-'));
    s = await startTestServer({ runners: ['docker', 'process'], dockerSocket });
  });
  afterAll(async () => {
    await s?.close();
    await rm(work, { recursive: true, force: true });
  });
  const cli = (...args: string[]) => runCli({ url: s.url, cwd: work, args, env: { DOCKER_HOST: `unix://${dockerSocket}` } });

  it('init, then test: the template passes its own cases; a wrong expectation fails with the reason and exit 1', { timeout: 120_000 }, async () => {
    const init = await cli('ext', 'init', 'lung-stats');
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain('tessera ext test lung-stats');
    const passed = await cli('ext', 'test', 'lung-stats');
    expect(passed.code, passed.stdout + passed.stderr).toBe(0);
    expect(passed.stdout).toContain('PASS  summarizes the sample CT');
    expect(passed.stdout).toContain('1 of 1 case passed');

    const cases = join(work, 'lung-stats', 'tessera-test.json');
    const spec = JSON.parse(await readFile(cases, 'utf8')) as { cases: { expect: { files: string[] } }[] };
    spec.cases[0]!.expect.files = ['batch/*/summarize/missing.json'];
    await writeFile(cases, JSON.stringify(spec));
    const failed = await cli('ext', 'test', 'lung-stats');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('FAIL  summarizes the sample CT');
    expect(failed.stdout).toContain('no file in the workflow dir matches "batch/*/summarize/missing.json"');
    expect(failed.stdout).toContain('summary.json');
  });

  it('build, install the package, list, run, run one operator by hand, uninstall, install again from the catalog', { timeout: 120_000 }, async () => {
    expect((await cli('ext', 'init', 'edk-flow')).code).toBe(0);
    const built = await cli('ext', 'build', 'edk-flow', '--json');
    expect(built.code, built.stderr).toBe(0);
    const out = JSON.parse(built.stdout) as { file: string; sha256: string; images: { name: string; file?: string }[] };
    expect(out.file).toBe(join(work, 'edk-flow', 'dist', 'edk-flow-0.1.0.tgz'));
    expect(out.images).toEqual([expect.objectContaining({ name: 'tessera-ext/edk-flow:0.1.0', file: 'images/0.tar' })]);

    const installed = await cli('ext', 'install', out.file);
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toMatch(/installed edk-flow@0\.1\.0 in [\d.]+ s; workflows: edk-flow/);
    const list = JSON.parse((await cli('ext', 'list', '--json')).stdout) as { name: string; state: string }[];
    expect(list.find((e) => e.name === 'edk-flow')?.state).toBe('installed');

    expect((await cli('import', '--sample', 'ct', '--dataset', 'edk')).code).toBe(0);
    const run = await cli('run', 'edk-flow', '--dataset', 'edk', '--form', 'note=first', '--json');
    expect(run.code, run.stderr).toBe(0);
    const runId = (JSON.parse(run.stdout) as { runs: { id: string; workflow_dir: string }[] }).runs[0]!.id;
    const runJson = (await s.call('GET', `/api/runs/${runId}`)).body as { workflow_dir: string };
    const summaryFile = async (): Promise<{ note: string }> => {
      const batch = join(runJson.workflow_dir, 'batch');
      const [series] = await readdir(batch);
      return JSON.parse(await readFile(join(batch, series!, 'summarize', 'summary.json'), 'utf8')) as { note: string };
    };
    expect((await summaryFile()).note).toBe('first');

    // By default on a copy of the workflow dir: the run's own outputs stay as they were.
    const byHand = await cli('ext', 'run-operator', runId, 'summarize', '--env', 'NOTE=by hand');
    expect(byHand.code, byHand.stderr).toBe(0);
    expect(byHand.stdout).toMatch(/16 files, 64x64/);
    expect(byHand.stderr).toMatch(/summarize: success \(exit 0\)/);
    const copied = /outputs: (\S+)\/batch\/\*\/summarize \(a copy;/.exec(byHand.stderr);
    expect(copied, byHand.stderr).not.toBeNull();
    expect(copied![1]).not.toBe(runJson.workflow_dir);
    const [copiedSeries] = await readdir(join(copied![1]!, 'batch'));
    expect(JSON.parse(await readFile(join(copied![1]!, 'batch', copiedSeries!, 'summarize', 'summary.json'), 'utf8'))).toMatchObject({ note: 'by hand' });
    expect((await summaryFile()).note).toBe('first');
    await rm(dirname(copied![1]!), { recursive: true, force: true }).catch(() => undefined);
    // --in-place: into the run's own workflow dir.
    const inPlace = await cli('ext', 'run-operator', runId, 'summarize', '--env', 'NOTE=in place', '--in-place');
    expect(inPlace.code, inPlace.stderr).toBe(0);
    expect(inPlace.stderr).toContain(`outputs: ${join(runJson.workflow_dir, 'batch', '*', 'summarize')}\n`);
    expect((await summaryFile()).note).toBe('in place');
    const builtin = await cli('ext', 'run-operator', runId, 'get-input');
    expect(builtin.code).toBe(2);
    expect(builtin.stderr).toContain('is the built-in operator get-input');

    expect((await cli('ext', 'uninstall', 'edk-flow')).code).toBe(0);
    expect((await s.call('GET', '/api/workflows/edk-flow')).status).toBe(404);
    const again = await cli('ext', 'install', 'edk-flow@0.1.0');
    expect(again.code, again.stderr).toBe(0);
    expect((await s.call('GET', '/api/workflows/edk-flow')).status).toBe(200);
    const unknown = await cli('ext', 'install', 'Not A Name');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('is neither a folder, a package file, nor an extension name');
  });

  it('dev: reinstalls on each save, reports a broken save with its file and line, and recovers', { timeout: 120_000 }, async () => {
    expect((await cli('ext', 'init', 'dev-loop')).code).toBe(0);
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/tessera.mjs'), 'ext', 'dev', 'dev-loop'], {
      cwd: work,
      env: { ...process.env, TESSERA_URL: s.url, DOCKER_HOST: `unix://${dockerSocket}` },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const lines = (): string[] => out.split('\n').filter((l) => /^\[\d\d:\d\d:\d\d\]/.test(l));
    const until = async (n: number): Promise<string> => {
      const deadline = Date.now() + 60_000;
      while (lines().length < n) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`ext dev printed ${lines().length} of ${n} lines:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return lines()[n - 1]!;
    };
    try {
      expect(await until(1)).toMatch(/installed dev-loop@0\.1\.0 in [\d.]+ s; workflows: dev-loop/);
      const wf = join(work, 'dev-loop', 'workflows', 'dev-loop.ts');
      const source = await readFile(wf, 'utf8');
      await writeFile(wf, source.replace("title: 'Summarize each series'", "title: 'Summarize every series'"));
      expect(await until(2)).toMatch(/workflows\/dev-loop\.ts changed: reinstalled dev-loop@0\.1\.0/);
      expect((await s.call('GET', '/api/workflows/dev-loop')).body.tasks.find((t: { id: string }) => t.id === 'summarize').title).toBe('Summarize every series');

      await writeFile(wf, source.replace("level: 'batch_element',", "level: 'batch_element',,"));
      expect(await until(3)).toMatch(/error: .*workflows\/dev-loop\.ts:\d+:\d+/);
      await writeFile(join(work, 'dev-loop', 'processing', 'summarize.py'), `${await readFile(join(work, 'dev-loop', 'processing', 'summarize.py'), 'utf8')}\n# changed\n`);
      await writeFile(wf, source);
      expect(await until(4)).toMatch(/changed: rebuilt tessera-ext\/dev-loop:0\.1\.0, reinstalled dev-loop@0\.1\.0/);
    } finally {
      child.kill('SIGINT');
      await new Promise((r) => child.once('exit', r));
    }
    expect(child.exitCode).toBe(0);
  });
});

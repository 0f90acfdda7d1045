import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TaskSpec } from '@tessera/model';
import { contractEnv, prepareOutputDirs, prepareWorkflowDir, type RunConf } from '../operator-contract.ts';
import { DockerRunner } from '../runners/docker/docker-runner.ts';
import type { TaskLaunch } from '../runners/runner.ts';
import { dockerProblem } from './docker-env.ts';

/**
 * Tests of an extension's operator image: the image is built from its processing/
 * folder with the docker CLI (cached by the engine after the first build) and run
 * through the engine's own Docker runner, with the operator contract the engine gives
 * it (the workflow dir mounted at /kaapana/mounted/data/<run>, the env).
 */
export const EXTENSION_BASE_IMAGE = 'tessera/base-python:bookworm';
export const DOCKER_CLI = '/usr/bin/docker';
/** Debian's python3, with pydicom (pydicom writes the synthetic series of these tests). */
export const PYTHON = '/usr/bin/python3';
const PYDICOM_FILES = '/usr/lib/python3/dist-packages/pydicom/data/test_files';
const SETUP = 'as root: eval "$(bash scripts/docker-test-env.sh | tail -1)" (a Docker engine with tessera/base-python:bookworm) and apt-get install -y --no-install-recommends python3-pydicom';
export const run = promisify(execFile);

async function whatIsMissing(): Promise<string | undefined> {
  const problems: string[] = [];
  if (dockerProblem) problems.push(dockerProblem);
  if (!existsSync(DOCKER_CLI)) problems.push(`there is no docker CLI at ${DOCKER_CLI}`);
  else if (!dockerProblem && !(await run(DOCKER_CLI, ['image', 'inspect', EXTENSION_BASE_IMAGE]).then(() => true, () => false))) {
    problems.push(`the engine lacks the base image ${EXTENSION_BASE_IMAGE}`);
  }
  if (!(await run(PYTHON, ['-c', 'import pydicom']).then(() => true, () => false))) problems.push(`${PYTHON} cannot import pydicom`);
  else if (!existsSync(join(PYDICOM_FILES, 'test-SR.dcm'))) problems.push(`pydicom's test files are not in ${PYDICOM_FILES}`);
  return problems.length ? `${problems.join('; ')}. Set up with, ${SETUP}` : undefined;
}

/** Why operator image tests cannot run here, or undefined. */
export const operatorImageProblem = await whatIsMissing();
/** Skip only outside CI: in CI (CI=true) a missing engine or tool must fail the tests, never skip them. */
export const skipOperatorImage = operatorImageProblem !== undefined && process.env.CI !== 'true';
if (skipOperatorImage) console.warn(`operator image tests skipped: ${operatorImageProblem}`);

/** One extension's operator, its image built, run on workflow dirs made like the engine makes them. */
export class OperatorImage {
  readonly homeId: string;
  dir = '';
  #runner: DockerRunner | undefined;
  #tries = 0;

  constructor(readonly o: { extDir: string; image: string; dagId: string; task: TaskSpec }) {
    this.homeId = `${o.dagId}-test-${process.pid}`;
  }

  /** For beforeAll: checks what is needed (failing in CI when missing), builds the image. */
  async setUp(): Promise<void> {
    if (operatorImageProblem) throw new Error(operatorImageProblem);
    this.dir = await mkdtemp(join(tmpdir(), `tessera-${this.o.dagId}-`));
    this.#runner = new DockerRunner({ homeId: this.homeId, killGraceSeconds: 1 });
    const started = Date.now();
    try {
      await run(DOCKER_CLI, ['build', '-q', '-t', this.o.image, join(this.o.extDir, 'processing')], {
        env: { ...process.env, DOCKER_BUILDKIT: '0' },
        maxBuffer: 64 * 1024 * 1024,
      });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`docker build of ${this.o.image} failed: ${e.message}\n${(e.stderr ?? '').slice(-3000)}`);
    }
    console.log(`built ${this.o.image} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  async tearDown(): Promise<void> {
    await this.#runner?.close();
    // The operators hand their files to the owner of the workflow dir, so this works without root too.
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  /** A run's workflow dir as the engine prepares it, with these series' files in batch/<series>/get-input/. */
  async workflowDir(runId: string, series: Record<string, string[]>, form: Record<string, unknown>): Promise<{ launch: (n: number) => TaskLaunch; wd: string }> {
    const { task, dagId, extDir } = this.o;
    const wd = join(this.dir, runId);
    const conf: RunConf = { workflow_form: form, data_form: { identifiers: Object.keys(series) }, project_form: { id: 'p1', name: 'admin' } };
    await prepareWorkflowDir(wd, conf);
    for (const [uid, files] of Object.entries(series)) {
      const input = join(wd, 'batch', uid, 'get-input');
      await mkdir(input, { recursive: true });
      for (const f of files) await copyFile(f, join(input, f.split('/').pop()!));
    }
    await prepareOutputDirs(wd, task, Object.keys(series));
    await mkdir(join(this.dir, 'logs'), { recursive: true });
    const launch = (attempt: number): TaskLaunch => ({
      key: `${runId}/${task.id}/1.${attempt}`,
      runId,
      taskId: task.id,
      dagId,
      task,
      workflowDir: wd,
      extensionDir: extDir,
      logFile: join(this.dir, 'logs', `${runId}-${++this.#tries}.log`),
      env: (seen) => contractEnv({ workflowDir: seen, runId, dagId, task, conf, services: {} }),
      conf,
    });
    return { launch, wd };
  }

  async runTask(l: TaskLaunch): Promise<{ state: string; exitCode?: number; log: string }> {
    const outcome = await (await this.#runner!.start(l)).done;
    return { ...outcome, log: await readFile(l.logFile, 'utf8') };
  }

  /** Containers of these tests still there (must be none). */
  async leftovers(): Promise<string> {
    const { stdout } = await run(DOCKER_CLI, ['ps', '-a', '-q', '--filter', `label=tessera.home=${this.homeId}`]);
    return stdout.trim();
  }
}

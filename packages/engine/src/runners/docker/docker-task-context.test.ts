import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestLaunch } from '../../__fixtures__/task-launch.ts';
import { BASE_IMAGE, dockerProblem, skipDocker } from '../../__fixtures__/docker-env.ts';
import { DockerRunner } from './docker-runner.ts';

describe('docker task context prerequisites', () => {
  it.skipIf(skipDocker)('has a Docker engine with the test images', () => {
    expect(dockerProblem, dockerProblem).toBeUndefined();
  });
});

/** What a container sees besides its workflow dir: /models, /dev/shm, CUDA_VISIBLE_DEVICES, Kaapana's variables. */
describe.skipIf(skipDocker)('docker runner: the task context of Kaapana containers', () => {
  let dir: string;
  let runner: DockerRunner;
  const apiUrl = 'http://tessera.internal:8123';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-docker-ctx-'));
    runner = new DockerRunner({ homeId: `test-ctx-${process.pid}`, shmMb: 96, platformAccess: () => ({ env: { TESSERA_API_URL: apiUrl }, extraHosts: [] }) });
  });
  afterAll(async () => {
    await runner?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const script = [
    'set -e',
    'echo "shm_kb=$(df -k /dev/shm | tail -1 | awk \'{print $2}\')"',
    'echo "shm_fs=$(stat -f -c %T /dev/shm)"',
    'echo "models_file=$(cat /models/weights.txt)"',
    'echo "written by the task" > /models/downloaded.txt',
    'env | grep -E "^(CUDA_VISIBLE_DEVICES|MODELS_DIR|KAAPANA_[A-Z_]*|DICOM_WEB_FILTER_URL)=" | sort',
    'echo "cuda_set=${CUDA_VISIBLE_DEVICES+yes}"',
  ].join('\n');

  it('mounts the project\'s models dir at /models (read-write), sizes /dev/shm, and sets CUDA_VISIBLE_DEVICES and the Kaapana variables', async () => {
    const launch = await makeTestLaunch({ dir, dagId: 'ctx', task: { container: { image: BASE_IMAGE, command: ['sh', '-c', script] }, level: 'batch' } });
    const modelsDir = join(dir, 'models', 'p1');
    await mkdir(modelsDir, { recursive: true });
    await writeFile(join(modelsDir, 'weights.txt'), 'model of p1');
    const outcome = await (await runner.start({ ...launch, modelsDir })).done;
    const log = await readFile(launch.logFile, 'utf8');
    expect(outcome, log).toMatchObject({ state: 'success' });
    expect(log).toContain(`shm_kb=${96 * 1024}\n`);
    expect(log).toContain('shm_fs=tmpfs\n');
    expect(log).toContain('models_file=model of p1\n');
    expect(await readFile(join(modelsDir, 'downloaded.txt'), 'utf8')).toBe('written by the task\n');
    expect(log).toContain('cuda_set=yes\n');
    expect(log).toContain('CUDA_VISIBLE_DEVICES=\n');
    expect(log).toContain('MODELS_DIR=/models\n');
    expect(log).toContain(`KAAPANA_BACKEND_URL=${apiUrl}\n`);
    expect(log).toContain(`KAAPANA_DICOM_WEB_FILTER_URL=${apiUrl}/projects/admin/dicom-web\n`);
    expect(log).toContain(`DICOM_WEB_FILTER_URL=${apiUrl}/projects/admin/dicom-web\n`);
    expect(log).toContain('KAAPANA_PROJECT_IDENTIFIER=p1\n');
  });

  it('makes a project\'s models dir on demand, and another project sees only its own', async () => {
    const launch = await makeTestLaunch({ dir, dagId: 'ctx', task: { container: { image: BASE_IMAGE, command: ['sh', '-c', 'ls -A /models | wc -l; touch /models/mine'] }, level: 'batch' } });
    const modelsDir = join(dir, 'models', 'p2');
    const outcome = await (await runner.start({ ...launch, modelsDir })).done;
    const log = await readFile(launch.logFile, 'utf8');
    expect(outcome, log).toMatchObject({ state: 'success' });
    expect(log.trim()).toBe('0');
    expect(await readFile(join(modelsDir, 'mine'), 'utf8')).toBe('');
  });

  it('lets the operator\'s own env win over the Kaapana variables', async () => {
    const launch = await makeTestLaunch({
      dir,
      dagId: 'ctx',
      task: { container: { image: BASE_IMAGE, command: ['sh', '-c', 'echo "url=$KAAPANA_BACKEND_URL"'] }, level: 'batch', env: { KAAPANA_BACKEND_URL: 'http://mine' } },
    });
    const outcome = await (await runner.start(launch)).done;
    const log = await readFile(launch.logFile, 'utf8');
    expect(outcome, log).toMatchObject({ state: 'success' });
    expect(log).toContain('url=http://mine\n');
  });
});

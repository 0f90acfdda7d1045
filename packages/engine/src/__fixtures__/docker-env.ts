import Dockerode from 'dockerode';
import { detectDocker } from '../runners/docker/docker-detect.ts';
import { DOCKER_LABELS } from '../runners/docker/docker-runner.ts';

// Images built by scripts/docker-test-env.sh: tests never build (too slow for a test timeout).
export const BASE_IMAGE = 'tessera-test/python:bookworm';
export const OPERATOR_IMAGE = 'tessera-test/kaapana-operator:1';
const SETUP = 'eval "$(scripts/docker-test-env.sh | tail -1)"';

const detected = await detectDocker();
export const docker = detected.available ? new Dockerode({ socketPath: detected.socketPath }) : undefined;
export const dockerSocket = detected.available ? detected.socketPath : undefined;
const missingImages: string[] = [];
if (docker) {
  for (const image of [BASE_IMAGE, OPERATOR_IMAGE]) {
    if (!(await docker.getImage(image).inspect().then(() => true, () => false))) missingImages.push(image);
  }
}

/** Why the Docker tests cannot run here, or undefined. */
export const dockerProblem = !detected.available
  ? `${detected.reason}. Start one with the test images (as root): ${SETUP}`
  : missingImages.length
    ? `the Docker engine at unix://${detected.socketPath} lacks ${missingImages.join(', ')}; build them with: ${SETUP}`
    : undefined;

/** Skip only outside CI: in CI (CI=true) a missing engine must fail the tests, never skip them. */
export const skipDocker = dockerProblem !== undefined && process.env.CI !== 'true';
if (skipDocker) console.warn(`docker tests skipped: ${dockerProblem}`);

/** Containers (in any state) labeled with a task key prefix, e.g. a run id. */
export async function containersFor(keyPrefix: string): Promise<number> {
  const list = await docker!.listContainers({ all: true, filters: { label: [DOCKER_LABELS.key] } });
  return list.filter((c) => (c.Labels[DOCKER_LABELS.key] ?? '').startsWith(keyPrefix)).length;
}

import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { posix } from 'node:path';
import Dockerode from 'dockerode';
import { CONTAINER_MODELS_DIR, PLATFORM_ENV, kaapanaEnv, type TaskSpec } from '@tessera/model';
import { CONTAINER_DATA_ROOT } from '../../operator-contract.ts';
import { outcomeFromExit } from '../exit-status.ts';
import type { Runner, TaskExecution, TaskLaunch, TaskOutcome } from '../runner.ts';
import { dockerSocketPath } from './docker-detect.ts';
import { ensureImage, registryCredentialsFromEnv, type RegistryCredentials } from './image-pull.ts';

/** Options of {@link DockerRunner}. */
export interface DockerRunnerOptions {
  /** Identifies this Tessera home, so that sweeps never touch another instance's containers. */
  homeId: string;
  /** A ready client (tests, other transports); by default one for `socketPath`. */
  docker?: Dockerode;
  /** Unix socket of the engine; default DOCKER_HOST (unix:// only), else /var/run/docker.sock. */
  socketPath?: string;
  /** Seconds between SIGTERM and SIGKILL when a task is stopped (default 10, Docker's own). */
  killGraceSeconds?: number;
  /** How containers reach the platform's API, read at each start (see {@link ContainerAccess}). */
  platformAccess?: () => ContainerAccess;
  /** Size of each container's /dev/shm in MB (TESSERA_SHM_MB); default {@link DEFAULT_SHM_MB}. */
  shmMb?: number;
  /** Registry credentials for pulls, read at each start; default TESSERA_REGISTRY_AUTH_FILE. */
  registryCredentials?: () => RegistryCredentials;
}

/** /dev/shm of a container, in MB, unless configured: Docker's own 64 MB is too small for PyTorch's data loaders. */
export const DEFAULT_SHM_MB = 1024;

/**
 * How a container reaches the platform: the variables that differ inside a container
 * (`TESSERA_API_URL` with a name it resolves) and extra /etc/hosts entries, such as
 * `tessera.internal:host-gateway` (Docker's name for the host, as seen from its bridge).
 */
export interface ContainerAccess {
  env: Record<string, string>;
  extraHosts: string[];
}

/** Labels put on every container, to find it again after a restart and to sweep. */
export const DOCKER_LABELS = {
  home: 'tessera.home',
  key: 'tessera.key',
  run: 'tessera.run',
  task: 'tessera.task',
} as const;

/** How long to wait for the tail of the output once the container has exited. */
const DRAIN_MS = 2000;

interface DockerError extends Error {
  statusCode?: number;
  json?: { message?: string } | null;
}

/**
 * Runs each try of a task as one Docker container, the way Kaapana runs its
 * processing containers: the run's workflow dir bind-mounted at
 * /kaapana/mounted/data/<runId>, the operator contract in the environment,
 * resources.ram_mb as a hard memory limit (no swap) and cpu_millicores as
 * CPU shares. Output is demultiplexed into the task's log file as it comes.
 * Containers are labeled with the home and the try's key, and removed once
 * their outcome and logs are collected.
 *
 * CPU shares (cpu_millicores * 1024 / 1000, as the kubelet computes them) are a
 * relative weight under contention, not a cap: a request, like on Kubernetes.
 */
export class DockerRunner implements Runner {
  readonly name = 'docker';
  readonly survivesRestart = true;
  readonly #docker: Dockerode;
  readonly #homeId: string;
  readonly #grace: number;
  readonly #where: string;
  readonly #access: (() => ContainerAccess) | undefined;
  readonly #shmMb: number;
  readonly #credentials: () => RegistryCredentials;
  /** Containers that stop() is stopping, so that their outcome says so. */
  readonly #stopping = new Set<string>();
  /** Containers whose outcome this runner is collecting. */
  readonly #followed = new Set<string>();

  constructor(options: DockerRunnerOptions) {
    this.#homeId = options.homeId;
    this.#grace = options.killGraceSeconds ?? 10;
    this.#access = options.platformAccess;
    this.#shmMb = options.shmMb ?? DEFAULT_SHM_MB;
    this.#credentials = options.registryCredentials ?? (() => registryCredentialsFromEnv());
    if (options.docker) {
      this.#docker = options.docker;
      const modem = options.docker.modem as { socketPath?: unknown };
      this.#where = typeof modem.socketPath === 'string' ? `unix://${modem.socketPath}` : 'the configured Docker engine';
    } else {
      const socketPath = dockerSocketPath(options.socketPath);
      this.#docker = new Dockerode({ socketPath });
      this.#where = `unix://${socketPath}`;
    }
  }

  supports(task: TaskSpec): boolean {
    return task.container !== undefined;
  }

  async start(launch: TaskLaunch): Promise<TaskExecution> {
    const spec = launch.task.container;
    if (!spec) throw new Error(`task "${launch.taskId}" has no container`);
    // Opened first so that a missing log dir rejects start() before anything runs.
    const log = openSync(launch.logFile, 'a');
    const failed = (reason: string): TaskExecution => {
      writeLine(log, `tessera: ${reason}`);
      closeSync(log);
      return { handle: '', done: Promise.resolve({ state: 'failed', reason }) };
    };

    if (spec.task_template) {
      // The platform expands a Task API template at install (or at load, when the engine holds the image).
      const why = spec.task_template.problem ?? 'the workflow was loaded without reading the image';
      return failed(`task template "${spec.task_template.identifier}" of image "${spec.image}" could not be read: ${why}. ` +
        'Install the extension (tessera ext install), or, for a linked folder, build or pull the image and reload the extensions');
    }
    try {
      // Pulled per the task's image_pull_policy (default IfNotPresent), with the pull's progress in the task log.
      await ensureImage(this.#docker, spec.image, {
        policy: spec.image_pull_policy,
        credentials: this.#credentials(),
        where: this.#where,
        onLine: (line) => writeLine(log, `tessera: ${line}`),
      });
    } catch (err) {
      return failed((err as Error).message);
    }
    let container: Dockerode.Container;
    try {
      container = await this.#docker.createContainer(this.#createOptions(launch, spec));
    } catch (err) {
      const e = err as DockerError;
      if (e.statusCode === 404) {
        return failed(`image "${spec.image}" is not on the Docker engine at ${this.#where} (removed while the task started?); build, load or pull it there`);
      }
      return failed(`could not create a container of image "${spec.image}" on ${this.#where}: ${dockerMessage(e)}`);
    }

    let stream: NodeJS.ReadableStream | undefined;
    try {
      // Attached before start, so that not a byte of early output is lost.
      stream = await container.attach({ stream: true, stdout: true, stderr: true });
      await container.start();
    } catch (err) {
      (stream as { destroy?: () => void } | undefined)?.destroy?.();
      await this.#remove(container.id).catch(() => undefined);
      return failed(`could not start the container of image "${spec.image}": ${dockerMessage(err as DockerError)}`);
    }
    return { handle: container.id, done: this.#follow(container.id, stream, log, launch) };
  }

  async stop(handle: string): Promise<void> {
    if (!handle) return;
    this.#stopping.add(handle);
    try {
      await this.#docker.getContainer(handle).stop({ t: this.#grace });
    } catch (err) {
      // 304: already stopped, 404: already gone; both fine for an idempotent stop.
      const code = (err as DockerError).statusCode;
      if (code !== 304 && code !== 404) throw err;
    }
    try {
      await this.#remove(handle);
    } finally {
      if (!this.#followed.has(handle)) this.#stopping.delete(handle);
    }
  }

  async recover(launch: TaskLaunch, handle: string | undefined): Promise<TaskExecution | undefined> {
    const found = await this.#docker.listContainers({
      all: true,
      filters: { label: [`${DOCKER_LABELS.home}=${this.#homeId}`, `${DOCKER_LABELS.key}=${launch.key}`] },
    });
    // Prefer the container the database knows; any other one for this key is a stray.
    found.sort((a, b) => Number(b.Id === handle) - Number(a.Id === handle));
    const [first, ...strays] = found;
    await Promise.all(strays.map((c) => this.#remove(c.Id)));
    if (!first) return undefined;
    // Never started (the server died between create and start): run the try again.
    if (first.State === 'created' || first.State === 'dead' || first.State === 'removing') {
      await this.#remove(first.Id);
      return undefined;
    }
    let stream: NodeJS.ReadableStream;
    try {
      // With follow, the engine sends everything logged so far, then what comes.
      stream = await this.#docker.getContainer(first.Id).logs({ follow: true, stdout: true, stderr: true });
    } catch (err) {
      if ((err as DockerError).statusCode === 404) return undefined;
      throw err;
    }
    // Rewritten, not appended: the engine's copy is complete, ours may stop short.
    const log = openSync(launch.logFile, 'w');
    return { handle: first.Id, done: this.#follow(first.Id, stream, log, launch) };
  }

  async sweep(keep: ReadonlySet<string>): Promise<number> {
    const mine = await this.#docker.listContainers({ all: true, filters: { label: [`${DOCKER_LABELS.home}=${this.#homeId}`] } });
    const stale = mine.filter((c) => !keep.has(c.Labels[DOCKER_LABELS.key] ?? ''));
    await Promise.all(stale.map((c) => this.#remove(c.Id)));
    return stale.length;
  }

  async close(): Promise<void> {
    // Nothing to release: requests are one-off and running tasks keep running.
  }

  #createOptions(launch: TaskLaunch, spec: NonNullable<TaskSpec['container']>): Dockerode.ContainerCreateOptions {
    const dataDir = posix.join(CONTAINER_DATA_ROOT, launch.runId);
    const ramMb = launch.task.resources?.ram_mb;
    const millicores = launch.task.resources?.cpu_millicores;
    const access = this.#access?.();
    const extras = containerExtras(launch, access, this.#shmMb);
    const hostConfig: Dockerode.HostConfig = {
      // Mounts, not Binds: a host path containing ':' would break the Binds syntax.
      Mounts: [
        { Type: 'bind', Source: launch.workflowDir, Target: dataDir },
        // Task API channels: folders of the workflow dir at the template's mounted_paths.
        ...(spec.mounts ?? []).map((m) => ({ Type: 'bind' as const, Source: posix.join(launch.workflowDir, m.source), Target: m.target, ReadOnly: m.read_only === true })),
        ...extras.mounts,
      ],
      ShmSize: extras.shmBytes,
    };
    if (ramMb) {
      // Equal limits: no swap, so that over-use ends in an OOM kill we can report.
      hostConfig.Memory = ramMb * 1024 * 1024;
      hostConfig.MemorySwap = ramMb * 1024 * 1024;
    }
    if (millicores) hostConfig.CpuShares = Math.max(2, Math.round((millicores * 1024) / 1000));
    if (access && access.extraHosts.length > 0) hostConfig.ExtraHosts = access.extraHosts;
    return {
      Image: spec.image,
      ...(spec.command ? { Entrypoint: spec.command } : {}),
      ...(spec.args ? { Cmd: spec.args } : {}),
      Env: Object.entries({ ...launch.env(dataDir), ...extras.env, ...access?.env }).map(([k, v]) => `${k}=${v}`),
      Labels: {
        [DOCKER_LABELS.home]: this.#homeId,
        [DOCKER_LABELS.key]: launch.key,
        [DOCKER_LABELS.run]: launch.runId,
        [DOCKER_LABELS.task]: launch.taskId,
      },
      HostConfig: hostConfig,
    };
  }

  /** Copies the output into the log, waits for the exit, collects the outcome and removes the container. Never rejects. */
  async #follow(id: string, stream: NodeJS.ReadableStream, log: number, launch: TaskLaunch): Promise<TaskOutcome> {
    this.#followed.add(id);
    const copy = demuxInto(stream, log);
    const container = this.#docker.getContainer(id);
    let outcome: TaskOutcome;
    try {
      const status = (await container.wait()) as { StatusCode: number };
      outcome = outcomeFromExit(status.StatusCode, null);
      const ramMb = launch.task.resources?.ram_mb;
      // Only a failed, memory-limited container can have been OOM-killed: spare the inspect otherwise.
      if (ramMb && outcome.state === 'failed') {
        const info = await container.inspect().catch(() => undefined);
        if (info?.State.OOMKilled) {
          outcome = {
            ...outcome,
            oomKilled: true,
            reason: `out of memory: the container exceeded its memory limit of ${ramMb} MB (resources.ram_mb)`,
          };
        }
      }
      if (this.#stopping.has(id) && outcome.state !== 'success') {
        outcome = { ...outcome, state: 'failed', reason: `stopped by Tessera (exit code ${status.StatusCode})` };
      }
    } catch (err) {
      outcome = { state: 'failed', reason: `lost track of container ${id.slice(0, 12)}: ${dockerMessage(err as DockerError)}` };
    }
    await Promise.race([copy.drained, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
    copy.detach();
    if (outcome.state !== 'success' && outcome.reason && (outcome.oomKilled || this.#stopping.has(id))) {
      writeLine(log, `tessera: ${outcome.reason}`);
    }
    closeSync(log);
    await this.#remove(id).catch(() => undefined);
    this.#stopping.delete(id);
    this.#followed.delete(id);
    return outcome;
  }

  /** Force-removes a container; resolves once it is gone, whoever removes it. */
  async #remove(id: string): Promise<void> {
    const container = this.#docker.getContainer(id);
    try {
      await container.remove({ force: true, v: true });
    } catch (err) {
      const code = (err as DockerError).statusCode;
      if (code === 404) return;
      // 409: another call is removing it; wait for that to finish.
      if (code === 409) {
        await container.wait({ condition: 'removed' }).catch(() => undefined);
        return;
      }
      throw err;
    }
  }
}

/**
 * What a task's container gets besides its workflow dir (docs/guides/operator-contract.md):
 * the project's models dir, read-write at /models (made on demand; Kaapana's model
 * download tasks write there), /dev/shm of `shmMb`, and the variables that differ inside a
 * container: MODELS_DIR, and Kaapana's service URLs built on the container's own
 * TESSERA_API_URL when it has one. The operator's own env still wins.
 */
function containerExtras(launch: TaskLaunch, access: ContainerAccess | undefined, shmMb: number): { mounts: Dockerode.MountSettings[]; shmBytes: number; env: Record<string, string> } {
  const mounts: Dockerode.MountSettings[] = [];
  const env: Record<string, string> = {};
  if (launch.modelsDir) {
    mkdirSync(launch.modelsDir, { recursive: true });
    mounts.push({ Type: 'bind', Source: launch.modelsDir, Target: CONTAINER_MODELS_DIR });
    env[PLATFORM_ENV.modelsDir] = CONTAINER_MODELS_DIR;
  }
  const apiUrl = access?.env.TESSERA_API_URL;
  if (apiUrl) Object.assign(env, kaapanaEnv(apiUrl, launch.conf.project_form));
  for (const key of Object.keys(launch.task.env)) delete env[key];
  return { mounts, shmBytes: shmMb * 1024 * 1024, env };
}

function dockerMessage(err: DockerError): string {
  return (err.json?.message ?? err.message).trim();
}

function writeLine(fd: number, text: string): void {
  try {
    writeSync(fd, `${text}\n`);
  } catch {
    // A log that cannot be written must not hide the outcome.
  }
}

/**
 * Writes the payloads of Docker's multiplexed stream (8-byte header: stream
 * type, 3 zero bytes, big-endian length) to fd; stdout and stderr share the log.
 */
function demuxInto(stream: NodeJS.ReadableStream, fd: number): { drained: Promise<void>; detach: () => void } {
  let pending: Buffer = Buffer.alloc(0);
  let attached = true;
  stream.on('data', (chunk: Buffer) => {
    // Once detached the fd is closed and its number may already belong to another file.
    if (!attached) return;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let offset = 0;
    while (pending.length - offset >= 8) {
      const size = pending.readUInt32BE(offset + 4);
      if (pending.length - offset - 8 < size) break;
      try {
        writeSync(fd, pending, offset + 8, size);
      } catch {
        // Keep reading, so that the container is never blocked on a full pipe.
      }
      offset += 8 + size;
    }
    pending = pending.subarray(offset);
  });
  const drained = new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', () => resolve());
  });
  const detach = (): void => {
    attached = false;
    (stream as { destroy?: () => void }).destroy?.();
  };
  return { drained, detach };
}

import { appendFileSync, createWriteStream, mkdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import Docker from 'dockerode';
import { ensureImage, registryCredentialsFromEnv, type ContainerAccess, type RegistryCredentials } from '@tessera/engine';
import type { AppSpecT } from '@tessera/extension-packages';
import { BATCH_NAME, CONTAINER_DATA_ROOT } from '@tessera/model';
import type { AppExit, AppHandle, AppLaunch, AppRunner } from '../app-runner.ts';

/** Where an application container's result bucket is mounted inside it. */
export const CONTAINER_RESULTS_DIR = '/kaapana/mounted/results';

/** The label that ties a container to its application instance. */
const APP_LABEL = 'tessera.app';

/** Options of the Docker app runner. */
export interface DockerAppRunnerOptions {
  /** The Docker engine's socket. */
  socketPath: string;
  /** How long an app has, after SIGTERM, before its container is killed (seconds; default 5). */
  stopGraceSeconds?: number;
  /** How containers reach the platform's API (TESSERA_API_URL, extra hosts), read at each start. */
  platformAccess?: () => ContainerAccess;
  /** Registry credentials, read at each pull (default: the file TESSERA_REGISTRY_AUTH_FILE names). */
  credentials?: () => RegistryCredentials;
}

/** Docker's answers that mean "already so": not modified (stopped), no such container, removal already under way. */
function alreadyGone(err: unknown): boolean {
  const status = (err as { statusCode?: number }).statusCode;
  return status === 304 || status === 404 || status === 409;
}

/**
 * Runs application images on the Docker engine: the app's port published on
 * 127.0.0.1 only (the platform's proxy is the way in), the result bucket and the
 * workflow folder mounted, its output appended to its log file, labelled with the
 * instance id so that a restarted server finds what an earlier one left.
 */
export class DockerAppRunner implements AppRunner {
  readonly name = 'docker';
  readonly #docker: Docker;
  readonly #graceSeconds: number;
  readonly #access: (() => ContainerAccess) | undefined;
  readonly #credentials: () => RegistryCredentials;
  readonly #where: string;

  constructor(options: DockerAppRunnerOptions) {
    this.#docker = new Docker({ socketPath: options.socketPath });
    this.#where = `unix://${options.socketPath}`;
    this.#credentials = options.credentials ?? (() => registryCredentialsFromEnv());
    this.#graceSeconds = options.stopGraceSeconds ?? 5;
    this.#access = options.platformAccess;
  }

  canRun(spec: AppSpecT): boolean {
    return spec.container !== undefined;
  }

  async start(o: AppLaunch): Promise<AppHandle> {
    const c = o.spec.container!;
    const { env, binds } = await containerEnv(o);
    const access = this.#access?.();
    await this.removeStale({ appId: o.appId });
    mkdirSync(dirname(o.logFile), { recursive: true });
    // A registry image is pulled when the engine lacks it (IfNotPresent, as tasks do), with the pull's progress in the app's log;
    // a refused pull throws saying why, which becomes the instance's failure reason.
    await ensureImage(this.#docker, c.image, {
      policy: 'IfNotPresent',
      credentials: this.#credentials(),
      where: this.#where,
      onLine: (line) => appendFileSync(o.logFile, `tessera: ${line}\n`),
    });
    const container = await this.#docker.createContainer({
      Image: c.image,
      ...(c.command ? { Cmd: c.command } : {}),
      Env: Object.entries({ ...env, ...access?.env }).map(([k, v]) => `${k}=${v}`),
      Labels: { [APP_LABEL]: o.appId },
      ExposedPorts: { [`${c.port}/tcp`]: {} },
      HostConfig: {
        PortBindings: { [`${c.port}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(o.hostPort) }] },
        Binds: binds,
        ...(access && access.extraHosts.length > 0 ? { ExtraHosts: access.extraHosts } : {}),
        ...(o.spec.resources?.ram_mb ? { Memory: o.spec.resources.ram_mb * 1024 * 1024, MemorySwap: o.spec.resources.ram_mb * 1024 * 1024 } : {}),
        // CPU limit in thousandths of a core (Kubernetes' millicores).
        ...(o.spec.resources?.cpu_millicores ? { NanoCpus: o.spec.resources.cpu_millicores * 1_000_000 } : {}),
      },
    });
    await container.start();
    const logs = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
    const file = createWriteStream(o.logFile, { flags: 'a' });
    this.#docker.modem.demuxStream(logs, file, file);
    const exited: Promise<AppExit> = container.wait().then(
      (r: { StatusCode: number }) => ({ code: r.StatusCode, signal: null }),
      () => ({ code: null, signal: 'lost' }),
    );
    void exited.then(() => setTimeout(() => file.end(), 200));
    return { id: container.id, exited };
  }

  async stop(handle: AppHandle): Promise<void> {
    const c = this.#docker.getContainer(handle.id);
    await c.stop({ t: this.#graceSeconds }).catch((err: unknown) => {
      if (!alreadyGone(err)) throw new Error(`could not stop container ${handle.id}`, { cause: err });
    });
    await this.#remove(handle.id);
  }

  /** Removes containers an earlier server left for this instance. */
  async removeStale(o: { appId: string; handleId?: string }): Promise<void> {
    const list = await this.#docker.listContainers({ all: true, filters: { label: [`${APP_LABEL}=${o.appId}`] } });
    for (const c of list) await this.#remove(c.Id);
  }

  async close(): Promise<void> {
    // Nothing held: the engine's connections are per request.
  }

  async #remove(id: string): Promise<void> {
    await this.#docker.getContainer(id).remove({ force: true }).catch((err: unknown) => {
      if (!alreadyGone(err)) throw new Error(`could not remove container ${id}`, { cause: err });
    });
  }
}

/**
 * The app's environment and mounts inside its container: the result bucket and the
 * workflow folder mounted where Kaapana mounts them, PORT the container's own port, and
 * no host paths the container cannot see.
 */
async function containerEnv(o: AppLaunch): Promise<{ env: Record<string, string>; binds: string[] }> {
  const binds: string[] = [];
  const env: Record<string, string> = { ...o.env, PORT: String(o.spec.container!.port) };
  if (o.env.RESULTS_DIR) {
    await mkdir(o.env.RESULTS_DIR, { recursive: true });
    binds.push(`${o.env.RESULTS_DIR}:${CONTAINER_RESULTS_DIR}`);
    env.RESULTS_DIR = CONTAINER_RESULTS_DIR;
  }
  if (o.env.WORKFLOW_DIR && o.runId) {
    const at = `${CONTAINER_DATA_ROOT}/${o.runId}`;
    binds.push(`${o.env.WORKFLOW_DIR}:${at}`);
    env.WORKFLOW_DIR = at;
    env.BATCHES_INPUT_DIR = `${at}/${BATCH_NAME}`;
  }
  delete env.EXTENSION_DIR;
  return { env, binds };
}

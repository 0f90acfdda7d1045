import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Docker from 'dockerode';
import type { AppProcess } from '../process/process-app-runner.ts';

/** Where an application container's data lives inside it. */
export const CONTAINER_RESULTS_DIR = '/kaapana/mounted/results';
export const CONTAINER_WORKFLOW_ROOT = '/kaapana/mounted/data';

/**
 * Runs application images on the Docker engine: the app's port published on
 * 127.0.0.1 only (the platform's proxy is the way in), its output appended to its log
 * file, labelled with the instance id so that a restarted server finds what an earlier
 * one left.
 */
export class DockerAppRunner {
  readonly name = 'docker';
  readonly #docker: Docker;

  constructor(socketPath: string) {
    this.#docker = new Docker({ socketPath });
  }

  async start(o: {
    appId: string;
    image: string;
    command?: string[];
    containerPort: number;
    hostPort: number;
    env: Record<string, string>;
    binds: string[];
    logFile: string;
    ramMb?: number;
    /** CPU limit in thousandths of a core (Kubernetes' millicores). */
    cpuMillicores?: number;
  }): Promise<AppProcess & { containerId: string }> {
    await this.removeStale(o.appId);
    const container = await this.#docker.createContainer({
      Image: o.image,
      ...(o.command ? { Cmd: o.command } : {}),
      Env: Object.entries(o.env).map(([k, v]) => `${k}=${v}`),
      Labels: { 'tessera.app': o.appId },
      ExposedPorts: { [`${o.containerPort}/tcp`]: {} },
      HostConfig: {
        PortBindings: { [`${o.containerPort}/tcp`]: [{ HostIp: '127.0.0.1', HostPort: String(o.hostPort) }] },
        Binds: o.binds,
        ...(o.ramMb ? { Memory: o.ramMb * 1024 * 1024, MemorySwap: o.ramMb * 1024 * 1024 } : {}),
        ...(o.cpuMillicores ? { NanoCpus: o.cpuMillicores * 1_000_000 } : {}),
      },
    });
    mkdirSync(dirname(o.logFile), { recursive: true });
    await container.start();
    const logs = (await container.logs({ follow: true, stdout: true, stderr: true })) as unknown as NodeJS.ReadableStream;
    const file = createWriteStream(o.logFile, { flags: 'a' });
    this.#docker.modem.demuxStream(logs, file, file);
    const exited = container.wait().then(
      (r: { StatusCode: number }) => ({ code: r.StatusCode, signal: null }),
      () => ({ code: null, signal: 'lost' }),
    );
    void exited.then(() => setTimeout(() => file.end(), 200));
    return { pid: 0, containerId: container.id, exited };
  }

  async stop(containerId: string, graceSeconds = 5): Promise<void> {
    const c = this.#docker.getContainer(containerId);
    await c.stop({ t: graceSeconds }).catch(() => undefined);
    await c.remove({ force: true }).catch(() => undefined);
  }

  /** Removes containers an earlier server left for this instance. */
  async removeStale(appId: string): Promise<void> {
    const list = await this.#docker.listContainers({ all: true, filters: { label: [`tessera.app=${appId}`] } });
    for (const c of list) await this.#docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
}

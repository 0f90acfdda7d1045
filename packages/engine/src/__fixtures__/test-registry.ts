import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';

/** Debian's docker-registry (the CNCF distribution registry), started on loopback by tests. */
export const REGISTRY_BIN = '/usr/bin/docker-registry';
/** `htpasswd -B` (apache2-utils) writes the bcrypt password file of a registry with credentials. */
export const HTPASSWD_BIN = '/usr/bin/htpasswd';

/** Why the registry tests cannot run here, or undefined. */
export const registryProblem = !existsSync(REGISTRY_BIN)
  ? `${REGISTRY_BIN} is missing: apt-get install docker-registry`
  : !existsSync(HTPASSWD_BIN)
    ? `${HTPASSWD_BIN} is missing: apt-get install apache2-utils`
    : undefined;

/** A port nobody listens on right now (for a registry to use, or to stand for an unreachable one). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface TestRegistry {
  /** host:port, e.g. "127.0.0.1:40123". */
  host: string;
  storage: string;
  stop(): Promise<void>;
}

/**
 * Starts `docker-registry serve` on a free loopback port with filesystem storage in
 * `storage` (a temp dir by default; two registries may share one) and, with `user`,
 * htpasswd (bcrypt) authentication. Resolves once /v2/ answers.
 */
export async function startRegistry(options: { storage?: string; user?: { name: string; password: string } } = {}): Promise<TestRegistry> {
  const work = await mkdtemp(join(tmpdir(), 'tessera-registry-'));
  const storage = options.storage ?? join(work, 'storage');
  const port = await freePort();
  let auth = '';
  if (options.user) {
    const htpasswd = join(work, 'htpasswd');
    execFileSync(HTPASSWD_BIN, ['-B', '-b', '-c', htpasswd, options.user.name, options.user.password], { stdio: 'ignore' });
    auth = `auth:\n  htpasswd:\n    realm: tessera-test\n    path: ${htpasswd}\n`;
  }
  const config = join(work, 'config.yml');
  await writeFile(config, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n${auth}`);
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const host = `127.0.0.1:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited (${child.exitCode}): ${stderr}`);
    const status = await fetch(`http://${host}/v2/`).then((r) => r.status, () => 0);
    if (status === 200 || status === 401) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`docker-registry did not answer on ${host} within 15 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    storage,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(work, { recursive: true, force: true });
    },
  };
}

/** Tags a local image as `target` (host:port/repo:tag), pushes it, and removes the local tag again. */
export async function pushImage(docker: Dockerode, source: string, target: string, authconfig?: { username: string; password: string; serveraddress: string }): Promise<void> {
  const colon = target.lastIndexOf(':');
  await docker.getImage(source).tag({ repo: target.slice(0, colon), tag: target.slice(colon + 1) });
  // The engine wants an X-Registry-Auth header on a push, even an empty one.
  const stream = await docker.getImage(target).push({ authconfig: authconfig ?? { base64: Buffer.from('{}').toString('base64') } });
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
      const error = err?.message ?? out.find((o) => o.error)?.error;
      if (error) reject(new Error(`push of ${target} failed: ${error}`));
      else resolve();
    });
  });
  await forgetImage(docker, target);
}

/** Removes a local image name (the layers stay while another name uses them). */
export async function forgetImage(docker: Dockerode, name: string): Promise<void> {
  await docker.getImage(name).remove().catch((err: { statusCode?: number }) => {
    if (err.statusCode !== 404) throw err;
  });
}

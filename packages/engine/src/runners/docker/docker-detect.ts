import { request } from 'node:http';
import Dockerode from 'dockerode';
import { parseDockerHost } from '@tessera/model';

/** The result of {@link detectDocker}. */
export type DockerDetection =
  | { available: true; version: string; socketPath: string }
  | { available: false; reason: string };

/**
 * The unix socket of the Docker engine: the explicit path, else DOCKER_HOST
 * (only `unix://` is supported), else /var/run/docker.sock.
 * Throws for a DOCKER_HOST that is not a unix socket.
 */
export function dockerSocketPath(socketPath?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (socketPath) return socketPath;
  const docker = parseDockerHost(env.DOCKER_HOST);
  if (docker.problem !== undefined) throw new Error(`${docker.problem}: Tessera talks to the Docker engine over a unix socket`);
  return docker.socketPath;
}

/**
 * Whether a Docker engine answers, and its version. One request with a short
 * timeout, so that callers can probe at startup without slowing it down.
 */
export async function detectDocker(options: { socketPath?: string; timeoutMs?: number } = {}): Promise<DockerDetection> {
  let socketPath: string;
  try {
    socketPath = dockerSocketPath(options.socketPath);
  } catch (err) {
    return { available: false, reason: (err as Error).message };
  }
  const timeoutMs = options.timeoutMs ?? 1000;
  return new Promise((resolve) => {
    const fail = (why: string): void =>
      resolve({ available: false, reason: `no Docker engine answers at unix://${socketPath}: ${why}` });
    const req = request({ socketPath, path: '/version', method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => fail(err.message));
      res.on('end', () => {
        if (res.statusCode !== 200) return fail(`HTTP ${res.statusCode ?? '?'} from /version`);
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { Version?: unknown };
          resolve({ available: true, version: String(body.Version ?? 'unknown'), socketPath });
        } catch {
          fail('the answer to /version is not JSON (is this a Docker engine?)');
        }
      });
    });
    req.on('timeout', () => {
      req.destroy();
      fail(`no answer within ${timeoutMs} ms`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') fail('the socket does not exist (is dockerd running?)');
      else if (err.code === 'EACCES') fail('permission denied on the socket (is this user in the docker group?)');
      else fail(err.message);
    });
    req.end();
  });
}

/**
 * The IPv4 gateway of the engine's default network `bridge`: the host as containers see
 * it, where their `host-gateway` points (unless dockerd's `host-gateway-ip` says
 * otherwise). Undefined when the network has no IPv4 gateway.
 */
export async function dockerBridgeGateway(socketPath: string): Promise<string | undefined> {
  const info = (await new Dockerode({ socketPath }).getNetwork('bridge').inspect()) as { IPAM?: { Config?: { Gateway?: string }[] | null } };
  return (info.IPAM?.Config ?? []).map((c) => c.Gateway).find((g): g is string => typeof g === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(g));
}

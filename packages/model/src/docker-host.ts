/** The Docker engine's socket when DOCKER_HOST is not set. */
export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

/**
 * Reads DOCKER_HOST: the socket path of a `unix://` address, the default socket when it
 * is unset or empty, and a problem (in words for the user) for any other scheme, which
 * Tessera does not support.
 */
export function parseDockerHost(value: string | undefined): { socketPath: string; problem?: undefined } | { socketPath?: undefined; problem: string } {
  if (value === undefined || value.trim() === '') return { socketPath: DEFAULT_DOCKER_SOCKET };
  if (value.startsWith('unix://') && value.length > 'unix://'.length) return { socketPath: value.slice('unix://'.length) };
  return { problem: `DOCKER_HOST="${value}": only unix:// sockets are supported (e.g. unix:///var/run/docker.sock)` };
}

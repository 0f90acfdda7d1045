import { dockerBridgeGateway, type ContainerAccess } from '@tessera/engine';
import type { ServerConfig } from '../config.ts';
import { isLoopbackHost } from '../exposure.ts';

/**
 * The name tasks and applications in containers reach the platform by: every container
 * gets `tessera.internal:host-gateway` in its /etc/hosts (Docker's name for the host as
 * seen from its default bridge), and TESSERA_API_URL `http://tessera.internal:<port>`.
 * `.internal` is reserved for private use (ICANN, 2024): no public DNS name is it, so
 * answering it opens no way for DNS rebinding.
 */
export const CONTAINER_HOST = 'tessera.internal';

/** What containers get, and what the server must do for them. */
export interface ContainerApiPlan {
  /** TESSERA_API_URL inside containers; undefined: the same as for processes. */
  url: string | undefined;
  /** Open a second listener on this address (the Docker bridge's gateway) when the main one is loopback. */
  bridge: string | undefined;
  /** What the start banner says about it (containers cannot call the API, and why), if anything. */
  note: string | undefined;
}

/**
 * How containers reach the API, decided once the server listens:
 * - TESSERA_PUBLIC_URL set: containers get it, like every task (the admin chose it);
 * - HOST 0.0.0.0 or `::`: the server already listens on the bridge's gateway:
 *   `http://tessera.internal:<port>`;
 * - HOST loopback (the default) and access control on: a second listener on the Docker
 *   bridge's gateway address (e.g. 172.17.0.1), `http://tessera.internal:<port>`. It
 *   exposes the API to every container on this host, which is acceptable only because
 *   every request needs a token then;
 * - HOST loopback and access control off: no listener (whoever reached it would act as
 *   admin): containers cannot call the API; the banner says so;
 * - another address: containers get the default TESSERA_API_URL, `http://<HOST>:<port>`.
 */
export async function planContainerApi(o: { config: ServerConfig; port: number; dockerSocket: string | undefined }): Promise<ContainerApiPlan> {
  const { config } = o;
  const none = { url: undefined, bridge: undefined, note: undefined };
  if (!o.dockerSocket || config.publicUrl) return none;
  const bound = config.host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (bound === '0.0.0.0' || bound === '::') return { url: `http://${CONTAINER_HOST}:${o.port}`, bridge: undefined, note: undefined };
  if (!isLoopbackHost(bound)) return none;
  if (config.auth !== 'on') {
    return {
      ...none,
      note:
        'tasks and applications in containers cannot call the API: with access control off (TESSERA_AUTH=off) the server listens on loopback only, ' +
        'where containers cannot reach it, and does not open a listener on the Docker bridge (anyone there would act as admin). Turn access control on, or set TESSERA_PUBLIC_URL to an address containers reach',
    };
  }
  const gateway = await dockerBridgeGateway(o.dockerSocket).catch((err: Error) => err);
  if (typeof gateway !== 'string') {
    const why = gateway instanceof Error ? gateway.message : 'it has no IPv4 gateway';
    return { ...none, note: `tasks and applications in containers cannot call the API: the gateway of the Docker network "bridge" is unknown (${why}); set TESSERA_PUBLIC_URL to an address containers reach` };
  }
  return { url: undefined, bridge: gateway, note: undefined };
}

/** What a container runner adds to each container: the host entry always, TESSERA_API_URL when containers need their own. */
export function containerAccess(url: string | undefined): ContainerAccess {
  return { env: url ? { TESSERA_API_URL: url } : {}, extraHosts: [`${CONTAINER_HOST}:host-gateway`] };
}

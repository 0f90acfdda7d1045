import type { AppProxyFastPathTimeouts } from './app-proxy-fast-path.ts';
import { St, type ClientConnection } from './client-connection.ts';

/**
 * Ends the fast path's connections where no byte moved for too long: waiting for a
 * request head (`headMs`), or in an exchange (`exchangeMs`). It compares byte counters
 * between sweeps, so that reads and writes pay nothing for the timeouts.
 */
export function sweepQuietConnections(conns: Iterable<ClientConnection>, timeouts: AppProxyFastPathTimeouts, now: number): void {
  for (const conn of conns) {
    const progress = conn.progress();
    if (progress !== conn.lastProgress) {
      conn.lastProgress = progress;
      conn.quietSince = now;
    } else if (now - conn.quietSince >= (conn.state === St.Exchange ? timeouts.exchangeMs : timeouts.headMs)) {
      conn.timedOut();
    }
  }
}

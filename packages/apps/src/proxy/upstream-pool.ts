import { connect, type Socket } from 'node:net';

/** A pooled connection idle longer than this is not reused: Node apps close theirs after 5 s. */
const POOL_IDLE_MS = 4_000;
const POOL_MAX_IDLE = 128;

const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** The client connection an upstream connection serves during one exchange. */
export interface UpstreamOwner {
  upError: Error | undefined;
  onUpData(chunk: Buffer): void;
  onUpEnd(up: Upstream): void;
  onUpClose(up: Upstream): void;
  onUpDrain(): void;
}

/** A keep-alive connection to an instance. */
export class Upstream {
  readonly socket: Socket;
  owner: UpstreamOwner | null = null;
  idleSince = 0;
  reused = false;

  constructor(readonly pool: UpstreamPool, readonly port: number) {
    // Read into one shared buffer, without the Readable stream's queue and events (a
    // good part of the CPU time per request); each read is copied out at once, since a
    // write may hold on to what it was given.
    const socket = connect({
      port,
      host: '127.0.0.1',
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array): boolean => {
          const chunk = Buffer.allocUnsafe(n);
          chunk.set(buf.subarray(0, n));
          // An idle connection has nothing to say; one that does is not trusted again.
          if (this.owner) this.owner.onUpData(chunk);
          else socket.destroy();
          return true;
        },
      },
    });
    this.socket = socket;
    // Flowing, so that the end of the stream is seen ('end').
    socket.resume();
    socket.on('end', () => this.owner?.onUpEnd(this));
    socket.on('close', () => {
      if (this.owner) this.owner.onUpClose(this);
      else pool.dropIdle(this);
    });
    socket.on('error', (err: Error) => {
      if (this.owner) this.owner.upError = err;
    });
    socket.on('drain', () => this.owner?.onUpDrain());
  }
}

/** The fast path's keep-alive connections to instances, by port, the most recently used last. */
export class UpstreamPool {
  readonly #idle = new Map<number, Upstream[]>();
  #closed = false;

  /** A pooled connection to the port (the most recently used first), or a new one. */
  acquire(port: number, fresh = false): Upstream {
    const idle = fresh ? undefined : this.#idle.get(port);
    if (idle) {
      const now = Date.now();
      for (let up = idle.pop(); up; up = idle.pop()) {
        if (!up.socket.destroyed && now - up.idleSince < POOL_IDLE_MS) {
          up.reused = true;
          return up;
        }
        up.socket.destroy();
      }
    }
    return new Upstream(this, port);
  }

  release(up: Upstream): void {
    let idle = this.#idle.get(up.port);
    if (!idle) this.#idle.set(up.port, (idle = []));
    if (this.#closed || idle.length >= POOL_MAX_IDLE) {
      up.socket.destroy();
      return;
    }
    up.idleSince = Date.now();
    idle.push(up);
  }

  dropIdle(up: Upstream): void {
    const idle = this.#idle.get(up.port);
    const i = idle?.indexOf(up) ?? -1;
    if (i >= 0) idle!.splice(i, 1);
  }

  /** Closes the idle connections to a port whose instance is gone. */
  forget(port: number): void {
    const idle = this.#idle.get(port);
    this.#idle.delete(port);
    for (const up of idle ?? []) up.socket.destroy();
  }

  /** Closes the pooled connections idle past their use. */
  sweepIdle(now: number): void {
    for (const idle of this.#idle.values()) {
      for (const up of idle.filter((u) => now - u.idleSince >= POOL_IDLE_MS)) up.socket.destroy();
    }
  }

  /** Closes every pooled connection; what is released from now on is closed too. */
  close(): void {
    this.#closed = true;
    for (const port of [...this.#idle.keys()]) this.forget(port);
  }
}

import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { resolveSettings, type AssociationSettings } from './association-settings.ts';
import { Association } from './association.ts';
import { removeLeftoverSpools, type SpooledDataset } from './dataset-spool.ts';

export { SUPPORTED_TRANSFER_SYNTAXES } from './transfer-syntaxes.ts';
export type { SpooledDataset } from './dataset-spool.ts';

/** Who is on the other end of an association. */
export interface AssociationInfo {
  /** Unique per connection; also the prefix shown in log lines. */
  id: string;
  callingAe: string;
  calledAe: string;
  remoteAddress: string;
}

/**
 * onAssociate's answer. A refusal becomes an A-ASSOCIATE-RJ with the given
 * fields; by default rejected-permanent (1), service-user (1), "called AE title
 * not recognized" (7). `reason` is only logged.
 */
export type AssociateDecision =
  | { accept: true; context?: unknown }
  | { accept: false; reason: string; result?: 1 | 2; source?: 1 | 2 | 3; diagnostic?: number };

/** One received instance, handed to onStore once its last dataset fragment arrived. */
export interface StoreRequest {
  /** `context` is what onAssociate returned for this association. */
  association: AssociationInfo & { context?: unknown };
  messageId: number;
  /** Affected SOP Class UID from the command. */
  sopClassUid: string;
  /** Affected SOP Instance UID from the command. */
  sopInstanceUid: string;
  /** Of the accepted presentation context the dataset came on. */
  transferSyntaxUid: string;
  /**
   * The dataset bytes exactly as received (no Part 10 meta header): one contiguous
   * Buffer, or a file holding them when the dataset was larger than the memory an
   * association may use (`associationMemoryBytes`, with `spoolDir` set). The file is
   * deleted once the returned promise settles: move or copy it before.
   */
  dataset: Buffer | SpooledDataset;
}

/**
 * The C-STORE-RSP to send: 0x0000 success, or a failure such as 0xA700 (out
 * of resources), 0xA900 (dataset does not match SOP class), 0xC000 (cannot
 * understand), all in `DIMSE_STATUS` (store-status.ts); `storeStatusOf` maps an error
 * to one. `errorComment` goes into (0000,0902), cut to 64 characters.
 */
export interface StoreResult {
  status: number;
  errorComment?: string;
}

/** Where the server logs; each line names the association and the peer. */
export interface DimseLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface DimseServerOptions {
  host: string;
  /** 0 picks a free port; read it from `listen()` or `port`. */
  port: number;
  /** Ours, sent as the responding AE in A-ASSOCIATE-AC; any called AE title is accepted unless onAssociate refuses. */
  aeTitle: string;
  onAssociate?: (info: AssociationInfo) => AssociateDecision | Promise<AssociateDecision>;
  /**
   * Stores one instance. The C-STORE-RSP is sent only after the returned
   * promise settles, so a success status must mean stored. A throw becomes
   * 0xC000 for a `user` TesseraError, else 0xA700, with the message as comment.
   */
  onStore: (req: StoreRequest) => Promise<StoreResult>;
  /** Called once per accepted association, after its last onStore settled. */
  onAssociationEnd?: (info: AssociationInfo & { context?: unknown }, how: 'released' | 'aborted' | 'closed') => void;
  /** The largest P-DATA-TF PDU we accept, advertised in A-ASSOCIATE-AC (default 1 MiB). */
  maxPduLength?: number;
  /** A larger dataset is refused with 0xA700 without buffering the rest of it; the association goes on (default 2 GiB - 1). */
  maxDatasetBytes?: number;
  /** Close a connection that sends nothing for this long while we owe it nothing (default 60 s). */
  idleTimeoutMs?: number;
  /** Close a connection whose A-ASSOCIATE-RQ has not arrived whole this long after it opened (ARTIM, default 30 s). */
  associateTimeoutMs?: number;
  /**
   * Associations open at once (default 32); an A-ASSOCIATE-RQ past it gets
   * A-ASSOCIATE-RJ rejected-transient, service-provider (presentation), local limit exceeded.
   */
  maxAssociations?: number;
  /**
   * Dataset bytes one association may hold in memory, its queued messages included
   * (default 16 MiB); past it the dataset is written to a file in `spoolDir`. Without
   * `spoolDir` datasets stay in memory whatever their size.
   */
  associationMemoryBytes?: number;
  /** Folder for datasets too large for memory; `dimse-*.spool` files found there at `listen()` are deleted. */
  spoolDir?: string;
  /** Defaults to the console. */
  log?: DimseLog;
}

/**
 * A DICOM upper-layer and DIMSE server (SCP) for C-ECHO and C-STORE.
 * Each TCP connection is an independent association; see README.md in this
 * folder for the PDU flow and what is negotiated.
 */
export class DimseServer {
  private readonly options: DimseServerOptions;
  private readonly settings: AssociationSettings;
  private readonly associations = new Set<Association>();
  private server: Server | undefined;
  private closing: Promise<void> | undefined;
  /** listen() is deleting leftover spool files before it binds. */
  private starting = false;
  private boundPort: number;

  constructor(options: DimseServerOptions) {
    this.options = options;
    this.settings = resolveSettings(options);
    this.boundPort = options.port;
  }

  /** The bound port once listening (the requested one before). */
  get port(): number {
    return this.boundPort;
  }

  /** Starts accepting associations. */
  listen(): Promise<{ port: number }> {
    if (this.server !== undefined || this.starting) return Promise.reject(new Error('DimseServer.listen() called twice'));
    this.starting = true;
    const leftovers = this.settings.spoolDir === undefined ? Promise.resolve(0) : removeLeftoverSpools(this.settings.spoolDir);
    return leftovers.then((n) => {
      if (n > 0) this.settings.log.warn(`DICOM server: deleted ${n} partial dataset file(s) left in ${this.settings.spoolDir} by a previous run (never acknowledged)`);
      return this.startListening();
    }).finally(() => {
      this.starting = false;
    });
  }

  /** Associations open now (for tests and monitoring). */
  get openAssociations(): number {
    return this.settings.slots.used;
  }

  private startListening(): Promise<{ port: number }> {
    const server = createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err) => {
        this.server = undefined; // so listen() may be retried
        reject(err);
      });
      server.listen({ host: this.options.host, port: this.options.port }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => this.settings.log.error(`DICOM server on ${this.options.host}:${this.boundPort}: ${err.message}`));
        this.boundPort = (server.address() as AddressInfo).port;
        this.settings.log.info(`DICOM server ${this.settings.aeTitle} listening on ${this.options.host}:${this.boundPort}`);
        resolve({ port: this.boundPort });
      });
    });
  }

  /**
   * Stops listening, aborts open associations and resolves once every socket
   * is closed and every onStore already called has settled.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    const finished = [...this.associations].map((association) => association.finished);
    for (const association of this.associations) association.shutdown();
    await Promise.all([closed, ...finished]);
  }

  private onConnection(socket: Socket): void {
    const association = new Association({ socket, settings: this.settings });
    this.associations.add(association);
    void association.finished.then(() => this.associations.delete(association));
  }
}

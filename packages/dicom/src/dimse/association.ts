import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { answerAssociate, describeError } from './answer-associate.ts';
import { parseAssociateRq, type AssociateRq } from './associate-rq.ts';
import type { AssociationSettings } from './association-settings.ts';
import { COMMAND_FIELD, encodeResponse, type ResponseOptions } from './dimse-command.ts';
import type { AssociationInfo } from './dimse-server.ts';
import { handleStore } from './handle-store.ts';
import { MessageAssembler, type DimseMessage } from './message-assembler.ts';
import type { NegotiatedContext } from './negotiate-contexts.ts';
import { ABORT_REASON, ABORT_SOURCE, PDU_TYPE, ProtocolError } from './pdu-constants.ts';
import { PduReader, type Pdu } from './pdu-reader.ts';
import { encodeAbort, encodeCommandPdus, encodeReleaseRp } from './pdu-writer.ts';
import { DIMSE_STATUS } from './store-status.ts';

type State = 'awaiting-rq' | 'deciding' | 'established' | 'releasing' | 'closing';
type EndHow = 'released' | 'aborted' | 'closed';
type Level = 'info' | 'warn' | 'error';

/** An A-ASSOCIATE-RQ lists presentation contexts; even 128 of them with many transfer syntaxes fit easily. */
const MAX_ASSOCIATE_RQ_LENGTH = 1024 * 1024;
/** A-RELEASE-RQ and A-ABORT bodies are 4 bytes. */
const MAX_SHORT_PDU_LENGTH = 1024;
/** A peer that queues this many requests without waiting for responses is not read from until we catch up. */
const MAX_QUEUED_MESSAGES = 8;
/** After we end the connection, how long the peer gets to close its side before the socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

/**
 * One TCP connection: the upper-layer state machine (association, P-DATA,
 * release, abort) and the DIMSE services on top. Messages are handled strictly
 * in order through one promise chain, so responses and the A-RELEASE-RP go out
 * in the order the requests came, each only after its handler finished.
 */
export class Association {
  /** Resolves once the socket is closed, queued work is done and onAssociationEnd has been called. */
  readonly finished: Promise<void>;
  private readonly socket: Socket;
  private readonly settings: AssociationSettings;
  private readonly id = randomUUID();
  private readonly peer: string;
  private readonly reader: PduReader;
  private readonly assembler: MessageAssembler;
  private state: State = 'awaiting-rq';
  /** Set once we sent A-ASSOCIATE-AC: only then is onAssociationEnd owed. */
  private established = false;
  private info: (AssociationInfo & { context?: unknown }) | undefined;
  private peerMaxPduLength = 0;
  private accepted = new Map<number, NegotiatedContext>();
  private work: Promise<void> = Promise.resolve();
  private queued = 0;
  private endHow: EndHow | undefined;
  private readonly idleTimer: NodeJS.Timeout;
  /** ARTIM: the A-ASSOCIATE-RQ must have arrived whole before it fires. */
  private readonly associateTimer: NodeJS.Timeout;
  private closeTimer: NodeJS.Timeout | undefined;
  /** Whether this connection counts against the server's limit of associations. */
  private holdsSlot = false;
  /** Dataset bytes held in memory by messages queued and not yet handled. */
  private heldBytes = 0;
  /** Reading is paused: too many queued messages, or the spool file's buffer is full. */
  private pausedForQueue = false;
  private spoolWaits = 0;

  constructor(options: { socket: Socket; settings: AssociationSettings }) {
    this.socket = options.socket;
    this.settings = options.settings;
    this.peer = `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
    this.reader = new PduReader({ maxLength: (type) => this.maxLengthFor(type) });
    this.assembler = new MessageAssembler({
      isAcceptedContext: (contextId) => this.accepted.has(contextId),
      maxDatasetBytes: this.settings.maxDatasetBytes,
      onMessage: (message) => this.onMessage(message),
      spool: this.settings.spoolDir === undefined ? undefined : {
        dir: this.settings.spoolDir,
        memoryBytes: () => this.settings.associationMemoryBytes - this.heldBytes,
        onBackpressure: (drained) => this.waitForSpool(drained),
      },
    });
    this.idleTimer = setTimeout(() => this.onIdle(), this.settings.idleTimeoutMs);
    this.associateTimer = setTimeout(() => this.onAssociateTimeout(), this.settings.associateTimeoutMs);
    this.socket.setNoDelay(true);
    this.finished = new Promise((resolve) => {
      this.socket.once('close', () => {
        if (this.state !== 'closing') this.onLostConnection();
        clearTimeout(this.idleTimer);
        clearTimeout(this.associateTimer);
        clearTimeout(this.closeTimer);
        // Nothing of a partial message is kept: its fragments are let go, its spool file deleted.
        this.assembler.discard();
        this.reader.clear();
        if (this.holdsSlot) this.settings.slots.release();
        this.holdsSlot = false;
        void this.work.then(() => this.reportEnd()).then(resolve);
      });
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('end', () => this.onPeerEnd());
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.settings.log.warn(`${this.label()}: socket error ${err.code ?? ''} ${err.message}`);
    });
  }

  /** Server shutdown: abort an established association, drop any other connection. */
  shutdown(): void {
    if (this.state === 'closing') return;
    if (this.state === 'awaiting-rq' || this.state === 'deciding') this.closeConnection();
    else this.abort({ why: 'server shutting down', source: ABORT_SOURCE.serviceUser, reason: 0, level: 'info' });
  }

  private maxLengthFor(type: number): number | undefined {
    if (type === PDU_TYPE.abort) return MAX_SHORT_PDU_LENGTH;
    if (this.state === 'awaiting-rq') return type === PDU_TYPE.associateRq ? MAX_ASSOCIATE_RQ_LENGTH : undefined;
    if (this.state !== 'established') return undefined;
    if (type === PDU_TYPE.pDataTf) return this.settings.maxPduLength;
    return type === PDU_TYPE.releaseRq ? MAX_SHORT_PDU_LENGTH : undefined;
  }

  private onData(chunk: Buffer): void {
    if (this.state === 'closing') return;
    this.idleTimer.refresh();
    this.reader.push(chunk);
    this.pump();
  }

  /** Handles every complete PDU buffered, unless we are waiting on onAssociate. */
  private pump(): void {
    try {
      while (this.state === 'awaiting-rq' || this.state === 'established' || this.state === 'releasing') {
        const pdu = this.reader.next();
        if (pdu === undefined) return;
        this.handlePdu(pdu);
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        const when = this.state === 'awaiting-rq' ? ' before association' : '';
        this.abort({ why: `${err.message}${when}`, source: ABORT_SOURCE.serviceProvider, reason: err.abortReason, level: 'warn' });
      } else {
        this.settings.log.error(`${this.label()}: internal error handling input: ${describeError(err)}`);
        this.abort({ why: 'internal error', source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified, level: 'error' });
      }
    }
  }

  private handlePdu(pdu: Pdu): void {
    switch (pdu.type) {
      case PDU_TYPE.associateRq:
        this.onAssociateRq(parseAssociateRq(pdu.body));
        return;
      case PDU_TYPE.pDataTf:
        this.assembler.push(pdu.body);
        return;
      case PDU_TYPE.releaseRq:
        this.onReleaseRq();
        return;
      case PDU_TYPE.abort:
        this.onPeerAbort(pdu.body);
        return;
      default:
        // maxLengthFor admits only the types above.
        throw new ProtocolError(`unexpected PDU type 0x${pdu.type.toString(16)}`, { abortReason: ABORT_REASON.unexpectedPdu });
    }
  }

  private onAssociateRq(rq: AssociateRq): void {
    clearTimeout(this.associateTimer);
    this.state = 'deciding';
    this.info = { id: this.id, callingAe: rq.callingAe, calledAe: rq.calledAe, remoteAddress: this.socket.remoteAddress ?? '' };
    this.peerMaxPduLength = rq.maxPduLength;
    this.holdsSlot = this.settings.slots.acquire();
    void answerAssociate({ rq, info: this.info, settings: this.settings, label: this.label(), overLimit: !this.holdsSlot }).then((answer) => {
      if (this.state !== 'deciding') return; // the peer went away while we decided
      this.write(answer.pdu);
      if (!answer.accepted) {
        this.closeConnection();
        return;
      }
      this.info!.context = answer.context;
      this.accepted = answer.contexts;
      this.state = 'established';
      this.established = true;
      this.pump();
    }, (err: unknown) => {
      this.settings.log.error(`${this.label()}: internal error answering A-ASSOCIATE-RQ: ${describeError(err)}`);
      this.abort({ why: 'internal error', source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified, level: 'error' });
    });
  }

  private onReleaseRq(): void {
    if (this.assembler.inProgress) {
      this.settings.log.warn(`${this.label()}: A-RELEASE-RQ in the middle of a DIMSE message; the partial message is dropped`);
      this.assembler.discard();
    }
    this.state = 'releasing';
    // Through the work chain: responses still owed go out before the A-RELEASE-RP.
    this.enqueue(async () => {
      if (this.state !== 'releasing') return;
      this.write(encodeReleaseRp());
      this.endHow = 'released';
      this.closeConnection();
    });
  }

  private onPeerAbort(body: Buffer): void {
    this.settings.log.info(`${this.label()}: peer sent A-ABORT (source ${body[2] ?? '?'}, reason ${body[3] ?? '?'})`);
    this.endHow = 'aborted';
    this.state = 'closing';
    this.socket.destroy();
  }

  private onPeerEnd(): void {
    if (this.state === 'closing') return;
    this.onLostConnection();
    this.socket.destroy();
  }

  /** The peer closed or reset the connection without A-RELEASE or A-ABORT. */
  private onLostConnection(): void {
    const midPdu = this.reader.pendingBytes > 0;
    if (this.state === 'awaiting-rq' && !midPdu) {
      // Load balancer health checks and port scans look like this; not worth a warning.
      this.settings.log.info(`${this.label()}: connection closed before any A-ASSOCIATE-RQ`);
    } else {
      const partial = midPdu || this.assembler.inProgress ? ` in the middle of a ${midPdu ? 'PDU' : 'DIMSE message'}; nothing of it is stored` : '';
      this.settings.log.warn(`${this.label()}: connection closed by peer without release or abort${partial}`);
    }
    this.endHow ??= 'closed';
    this.state = 'closing';
  }

  private onIdle(): void {
    if (this.state === 'closing') return;
    if (this.queued > 0 || this.state === 'deciding' || this.spoolWaits > 0) {
      // The peer is waiting on us (or we stopped reading while the disk catches up), not idle.
      this.idleTimer.refresh();
      return;
    }
    const why = `nothing received for ${this.settings.idleTimeoutMs} ms`;
    if (this.state === 'awaiting-rq') {
      this.settings.log.warn(`${this.label()}: ${why} before A-ASSOCIATE-RQ; closing`);
      this.closeConnection();
      return;
    }
    this.abort({ why, source: ABORT_SOURCE.serviceUser, reason: 0, level: 'warn' });
  }

  private onAssociateTimeout(): void {
    if (this.state !== 'awaiting-rq') return;
    const got = this.reader.pendingBytes > 0 ? `only ${this.reader.pendingBytes} bytes of an A-ASSOCIATE-RQ` : 'no A-ASSOCIATE-RQ';
    this.settings.log.warn(`${this.label()}: ${got} within ${this.settings.associateTimeoutMs} ms of connecting; closing`);
    this.closeConnection();
  }

  private onMessage(message: DimseMessage): void {
    const held = Buffer.isBuffer(message.dataset) ? message.dataset.length : 0;
    this.heldBytes += held;
    this.enqueue(async () => {
      try {
        await this.handleMessage(message);
      } finally {
        this.heldBytes -= held;
      }
    });
  }

  /** The spool file cannot take more for now: read nothing until it has written what it holds. */
  private waitForSpool(drained: Promise<void>): void {
    this.spoolWaits++;
    this.socket.pause();
    void drained.then(() => {
      this.spoolWaits--;
      this.resumeIfFree();
    });
  }

  private resumeIfFree(): void {
    if (!this.pausedForQueue && this.spoolWaits === 0 && this.socket.isPaused()) this.socket.resume();
  }

  private enqueue(task: () => Promise<void>): void {
    this.queued++;
    if (this.queued > MAX_QUEUED_MESSAGES) {
      this.pausedForQueue = true;
      this.socket.pause();
    }
    this.work = this.work
      .then(task)
      .catch((err: unknown) => {
        this.settings.log.error(`${this.label()}: internal error handling a message: ${describeError(err)}`);
        this.abort({ why: 'internal error', source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified, level: 'error' });
      })
      .finally(() => {
        this.queued--;
        if (this.queued === 0) {
          this.pausedForQueue = false;
          this.resumeIfFree();
        }
        if (this.state !== 'closing') this.idleTimer.refresh();
      });
  }

  private async handleMessage(message: DimseMessage): Promise<void> {
    const { command } = message;
    const field = `0x${command.commandField.toString(16).padStart(4, '0')}`;
    if (command.commandField & COMMAND_FIELD.responseBit) {
      this.abort({ why: `unexpected DIMSE response ${field}`, ...PROTOCOL_ABORT });
      return;
    }
    if (command.commandField === COMMAND_FIELD.cCancelRq) {
      // Cancel applies to C-FIND/C-GET/C-MOVE, which we do not offer; it has no response.
      this.settings.log.warn(`${this.label()}: ignoring C-CANCEL-RQ`);
      return;
    }
    if (command.messageId === undefined) {
      this.abort({ why: `DIMSE request ${field} without (0000,0110) Message ID`, ...PROTOCOL_ABORT });
      return;
    }
    const response = {
      requestField: command.commandField,
      messageIdBeingRespondedTo: command.messageId,
      affectedSopClassUid: command.affectedSopClassUid,
      affectedSopInstanceUid: command.affectedSopInstanceUid,
    };
    if (command.commandField === COMMAND_FIELD.cEchoRq) {
      this.respond(message.contextId, { ...response, status: DIMSE_STATUS.success });
    } else if (command.commandField === COMMAND_FIELD.cStoreRq) {
      const result = await handleStore({
        message,
        context: this.accepted.get(message.contextId)!,
        association: { ...this.info! },
        settings: this.settings,
        label: this.label(),
      });
      this.respond(message.contextId, { ...response, ...result });
    } else {
      this.settings.log.warn(`${this.label()}: unsupported DIMSE command ${field}; answering 0x0211`);
      this.respond(message.contextId, { ...response, status: DIMSE_STATUS.unrecognizedOperation });
    }
  }

  private respond(contextId: number, response: ResponseOptions): void {
    if (this.state === 'closing') return; // the peer is gone; nobody to answer
    this.write(encodeCommandPdus({ contextId, command: encodeResponse(response), peerMaxPduLength: this.peerMaxPduLength }));
  }

  private abort(options: { why: string; source: number; reason: number; level: Level }): void {
    if (this.state === 'closing') return;
    this.settings.log[options.level](`${this.label()}: ${options.why}; sending A-ABORT`);
    this.write(encodeAbort(options));
    if (this.established) this.endHow ??= 'aborted';
    this.closeConnection();
  }

  /** Ends our side; the peer should close its side, else the socket is destroyed after a grace period. */
  private closeConnection(): void {
    this.state = 'closing';
    this.socket.end();
    this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  private write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  private reportEnd(): void {
    const info = this.info;
    if (!this.established || info === undefined || this.settings.onAssociationEnd === undefined) return;
    try {
      this.settings.onAssociationEnd({ ...info }, this.endHow ?? 'closed');
    } catch (err) {
      this.settings.log.error(`${this.label()}: onAssociationEnd failed: ${describeError(err)}`);
    }
  }

  private label(): string {
    const who = this.info === undefined ? '' : ` ${this.info.callingAe}->${this.info.calledAe}`;
    return `DICOM association ${this.id.slice(0, 8)}${who} from ${this.peer}`;
  }
}

const PROTOCOL_ABORT = { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.unexpectedPduParameter, level: 'warn' } as const;

import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { parseAssociateRq, type AssociateRq } from './associate-rq.ts';
import type { AssociateDecision, AssociationInfo, DimseServerOptions, StoreResult } from './dimse-server.ts';
import { COMMAND_FIELD, encodeResponse, STATUS, type ResponseOptions } from './dimse-command.ts';
import { MessageAssembler, type DimseMessage } from './message-assembler.ts';
import { negotiateContexts, type NegotiatedContext } from './negotiate-contexts.ts';
import { ABORT_REASON, ABORT_SOURCE, CONTEXT_RESULT, DICOM_APPLICATION_CONTEXT, PDU_TYPE, ProtocolError } from './pdu-constants.ts';
import { PduReader, type Pdu } from './pdu-reader.ts';
import { encodeAbort, encodeAssociateAc, encodeAssociateRj, encodeCommandPdus, encodeReleaseRp } from './pdu-writer.ts';
import { storeStatusFor } from './store-status.ts';

/** The server options every association works with, defaults filled in. */
export interface AssociationSettings {
  aeTitle: string;
  maxPduLength: number;
  maxDatasetBytes: number;
  idleTimeoutMs: number;
  log: NonNullable<DimseServerOptions['log']>;
  onAssociate: DimseServerOptions['onAssociate'];
  onStore: DimseServerOptions['onStore'];
  onAssociationEnd: DimseServerOptions['onAssociationEnd'];
}

type State = 'awaiting-rq' | 'deciding' | 'established' | 'releasing' | 'closing';
type EndHow = 'released' | 'aborted' | 'closed';

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
  private state: State = 'awaiting-rq';
  /** Set once we sent A-ASSOCIATE-AC: only then is onAssociationEnd owed. */
  private established = false;
  private info: (AssociationInfo & { context?: unknown }) | undefined;
  private peerMaxPduLength = 0;
  private readonly accepted = new Map<number, NegotiatedContext>();
  private readonly assembler: MessageAssembler;
  private work: Promise<void> = Promise.resolve();
  private queued = 0;
  private endHow: EndHow | undefined;
  private readonly idleTimer: NodeJS.Timeout;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(options: { socket: Socket; settings: AssociationSettings }) {
    this.socket = options.socket;
    this.settings = options.settings;
    this.peer = `${this.socket.remoteAddress}:${this.socket.remotePort}`;
    this.reader = new PduReader({ maxLength: (type) => this.maxLengthFor(type) });
    this.assembler = new MessageAssembler({
      isAcceptedContext: (contextId) => this.accepted.has(contextId),
      maxDatasetBytes: this.settings.maxDatasetBytes,
      onMessage: (message) => this.enqueue(() => this.handleMessage(message)),
    });
    this.idleTimer = setTimeout(() => this.onIdle(), this.settings.idleTimeoutMs);
    this.socket.setNoDelay(true);
    this.finished = new Promise((resolve) => {
      this.socket.once('close', () => {
        if (this.state !== 'closing') this.onLostConnection();
        clearTimeout(this.idleTimer);
        clearTimeout(this.closeTimer);
        this.state = 'closing';
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
        this.settings.log.error(`${this.label()}: internal error handling input: ${describe(err)}`);
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
    this.state = 'deciding';
    this.info = { id: this.id, callingAe: rq.callingAe, calledAe: rq.calledAe, remoteAddress: this.socket.remoteAddress ?? '' };
    this.peerMaxPduLength = rq.maxPduLength;
    if ((rq.protocolVersion & 1) === 0) {
      this.reject(rq, { accept: false, reason: `protocol version ${rq.protocolVersion} not supported`, result: 1, source: 2, diagnostic: 2 });
      return;
    }
    if (rq.applicationContext !== DICOM_APPLICATION_CONTEXT) {
      this.reject(rq, { accept: false, reason: `application context "${rq.applicationContext ?? ''}" not supported`, result: 1, source: 1, diagnostic: 2 });
      return;
    }
    void this.decide(rq);
  }

  private async decide(rq: AssociateRq): Promise<void> {
    const info = this.info!;
    let decision: AssociateDecision;
    try {
      decision = this.settings.onAssociate ? await this.settings.onAssociate({ ...info }) : { accept: true };
    } catch (err) {
      this.settings.log.error(`${this.label()}: onAssociate failed, rejecting (transient): ${describe(err)}`);
      decision = { accept: false, reason: 'onAssociate failed', result: 2, source: 1, diagnostic: 1 };
    }
    if (this.state !== 'deciding') return; // the peer went away while we decided
    if (!decision.accept) {
      this.reject(rq, decision);
      return;
    }
    info.context = decision.context;
    const contexts = negotiateContexts(rq.contexts);
    for (const context of contexts) if (context.result === CONTEXT_RESULT.acceptance) this.accepted.set(context.id, context);
    this.write(
      encodeAssociateAc({
        calledAe: this.settings.aeTitle,
        callingAe: rq.callingAe,
        contexts,
        maxPduLength: this.settings.maxPduLength,
        asyncOps: rq.asyncOpsProposed,
      }),
    );
    this.state = 'established';
    this.established = true;
    this.settings.log.info(
      `${this.label()}: association accepted (${this.accepted.size} of ${contexts.length} presentation contexts, ` +
        `peer implementation ${rq.implementationClassUid ?? '?'} ${rq.implementationVersionName ?? ''})`,
    );
    this.pump();
  }

  private reject(rq: AssociateRq, decision: Extract<AssociateDecision, { accept: false }>): void {
    const result = decision.result ?? 1;
    const source = decision.source ?? 1;
    const diagnostic = decision.diagnostic ?? 7;
    this.settings.log.info(
      `${this.label()}: association to "${rq.calledAe}" rejected (result ${result}, source ${source}, diagnostic ${diagnostic}): ${decision.reason}`,
    );
    this.write(encodeAssociateRj({ result, source, diagnostic }));
    this.closeConnection();
  }

  private onReleaseRq(): void {
    if (this.assembler.inProgress) {
      this.settings.log.warn(`${this.label()}: A-RELEASE-RQ in the middle of a DIMSE message; the partial message is dropped`);
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
    const pdu = this.reader.pendingBytes > 0;
    if (this.state === 'awaiting-rq' && !pdu) {
      // Load balancer health checks and port scans look like this; not worth a warning.
      this.settings.log.info(`${this.label()}: connection closed before any A-ASSOCIATE-RQ`);
      this.state = 'closing';
      return;
    }
    const partial = pdu || this.assembler.inProgress ? ` in the middle of a ${pdu ? 'PDU' : 'DIMSE message'}; nothing of it is stored` : '';
    this.settings.log.warn(`${this.label()}: connection closed by peer without release or abort${partial}`);
    this.endHow ??= 'closed';
    this.state = 'closing';
  }

  private onIdle(): void {
    if (this.state === 'closing') return;
    if (this.queued > 0 || this.state === 'deciding') {
      // The peer is waiting on us, not idle.
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

  private enqueue(task: () => Promise<void>): void {
    this.queued++;
    if (this.queued > MAX_QUEUED_MESSAGES) this.socket.pause();
    this.work = this.work
      .then(task)
      .catch((err: unknown) => {
        this.settings.log.error(`${this.label()}: internal error handling a message: ${describe(err)}`);
        this.abort({ why: 'internal error', source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.notSpecified, level: 'error' });
      })
      .finally(() => {
        this.queued--;
        if (this.queued === 0 && this.socket.isPaused()) this.socket.resume();
        if (this.state !== 'closing') this.idleTimer.refresh();
      });
  }

  private async handleMessage(message: DimseMessage): Promise<void> {
    const { command } = message;
    if (command.commandField & COMMAND_FIELD.responseBit) {
      this.abort({ why: `unexpected DIMSE response 0x${command.commandField.toString(16)}`, ...providerAbort() });
      return;
    }
    if (command.commandField === COMMAND_FIELD.cCancelRq) {
      // Cancel applies to C-FIND/C-GET/C-MOVE, which we do not offer; it has no response.
      this.settings.log.warn(`${this.label()}: ignoring C-CANCEL-RQ`);
      return;
    }
    if (command.messageId === undefined) {
      this.abort({ why: `DIMSE request 0x${command.commandField.toString(16)} without (0000,0110) Message ID`, ...providerAbort() });
      return;
    }
    const base = {
      requestField: command.commandField,
      messageIdBeingRespondedTo: command.messageId,
      affectedSopClassUid: command.affectedSopClassUid,
      affectedSopInstanceUid: command.affectedSopInstanceUid,
    };
    if (command.commandField === COMMAND_FIELD.cEchoRq) {
      this.respond(message.contextId, { ...base, status: STATUS.success });
    } else if (command.commandField === COMMAND_FIELD.cStoreRq) {
      this.respond(message.contextId, { ...base, ...(await this.store(message)) });
    } else {
      this.settings.log.warn(`${this.label()}: unsupported DIMSE command 0x${command.commandField.toString(16)}; answering 0x0211`);
      this.respond(message.contextId, { ...base, status: STATUS.unrecognizedOperation });
    }
  }

  private async store(message: DimseMessage): Promise<StoreResult> {
    const { command } = message;
    const context = this.accepted.get(message.contextId)!;
    const what = `C-STORE ${command.affectedSopInstanceUid ?? '(no SOP instance UID)'}`;
    if (message.oversized) {
      const errorComment = `Dataset of ${message.datasetBytes} bytes exceeds limit ${this.settings.maxDatasetBytes}`;
      this.settings.log.warn(`${this.label()}: ${what} refused: ${errorComment}`);
      return { status: STATUS.outOfResources, errorComment };
    }
    if (!command.affectedSopClassUid || !command.affectedSopInstanceUid || message.dataset === undefined) {
      this.settings.log.warn(`${this.label()}: ${what} lacks its SOP class UID, SOP instance UID or dataset`);
      return { status: STATUS.cannotUnderstand, errorComment: 'Missing Affected SOP Class/Instance UID' };
    }
    if (command.affectedSopClassUid !== context.abstractSyntax) {
      const errorComment = `SOP class not that of presentation context ${message.contextId}`;
      this.settings.log.warn(`${this.label()}: ${what}: SOP class ${command.affectedSopClassUid} but context is ${context.abstractSyntax}`);
      return { status: STATUS.sopClassNotSupported, errorComment };
    }
    try {
      const result = await this.settings.onStore({
        association: { ...this.info! },
        messageId: command.messageId!,
        sopClassUid: command.affectedSopClassUid,
        sopInstanceUid: command.affectedSopInstanceUid,
        transferSyntaxUid: context.transferSyntax,
        dataset: message.dataset,
      });
      if (!Number.isInteger(result.status) || result.status < 0 || result.status > 0xffff) {
        throw new Error(`onStore returned status ${String(result.status)}, not a 16-bit integer`);
      }
      return result;
    } catch (err) {
      this.settings.log.error(`${this.label()}: ${what}: onStore failed: ${describe(err)}`);
      return storeStatusFor(err);
    }
  }

  private respond(contextId: number, response: ResponseOptions): void {
    if (this.state === 'closing') return; // the peer is gone; nobody to answer
    this.write(encodeCommandPdus({ contextId, command: encodeResponse(response), peerMaxPduLength: this.peerMaxPduLength }));
  }

  private abort(options: { why: string; source: number; reason: number; level: 'info' | 'warn' | 'error' }): void {
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
      this.settings.log.error(`${this.label()}: onAssociationEnd failed: ${describe(err)}`);
    }
  }

  private label(): string {
    const who = this.info === undefined ? '' : ` ${this.info.callingAe}->${this.info.calledAe}`;
    return `DICOM association ${this.id.slice(0, 8)}${who} from ${this.peer}`;
  }
}

function providerAbort(): { source: number; reason: number; level: 'warn' } {
  return { source: ABORT_SOURCE.serviceProvider, reason: ABORT_REASON.unexpectedPduParameter, level: 'warn' };
}

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

import { SpoolFile } from './dataset-spool.ts';
import { parseCommand, type DimseCommand } from './dimse-command.ts';
import { ABORT_REASON, ProtocolError } from './pdu-constants.ts';

/** A complete DIMSE message: a command and, when it announced one, its dataset. */
export interface DimseMessage {
  contextId: number;
  command: DimseCommand;
  /**
   * The dataset as one contiguous Buffer, or the file it was spooled to (larger than
   * the memory allowed); undefined when there is none or it was discarded.
   */
  dataset: Buffer | SpoolFile | undefined;
  /** Dataset size in bytes, also when it was discarded. */
  datasetBytes: number;
  /** True when the dataset exceeded `maxDatasetBytes` and its bytes were dropped. */
  oversized: boolean;
}

export interface MessageAssemblerOptions {
  /** Whether a presentation context ID was accepted on this association. */
  isAcceptedContext: (contextId: number) => boolean;
  maxDatasetBytes: number;
  onMessage: (message: DimseMessage) => void;
  /**
   * Where a dataset goes once it holds more than `memoryBytes()` bytes: the rest of it
   * is written to a file there as it arrives. Without it every dataset stays in memory.
   */
  spool?: {
    dir: string;
    /** How many bytes the dataset in progress may still hold in memory. */
    memoryBytes: () => number;
    /** The spool file's buffer is full: stop reading until `drained` resolves. */
    onBackpressure: (drained: Promise<void>) => void;
  };
}

/** Command sets are a few hundred bytes; anything this large is not one. */
const MAX_COMMAND_BYTES = 64 * 1024;

/**
 * Reassembles DIMSE messages from the PDVs of P-DATA-TF PDUs. Fragments are
 * views into the PDU bodies; a dataset larger than the memory it may use is
 * written to a spool file as it arrives; a smaller one is copied once, when it is complete,
 * and only if it came in more than one fragment.
 */
export class MessageAssembler {
  private readonly options: MessageAssemblerOptions;
  private commandContextId = 0;
  private commandFragments: Buffer[] = [];
  private commandBytes = 0;
  /** Set once the command is complete and its dataset is still arriving. */
  private pending: { contextId: number; command: DimseCommand } | undefined;
  private dataFragments: Buffer[] = [];
  private dataBytes = 0;
  private oversized = false;
  private spoolFile: SpoolFile | undefined;

  constructor(options: MessageAssemblerOptions) {
    this.options = options;
  }

  /** True while a message has been started but not completed. */
  get inProgress(): boolean {
    return this.pending !== undefined || this.commandFragments.length > 0;
  }

  /** Drops the message in progress (connection lost, release, abort): fragments are let go, a spool file deleted. */
  discard(): void {
    this.pending = undefined;
    this.commandFragments = [];
    this.commandBytes = 0;
    this.dataFragments = [];
    this.dataBytes = 0;
    this.oversized = false;
    void this.spoolFile?.discard();
    this.spoolFile = undefined;
  }

  /**
   * Feeds the body of one P-DATA-TF PDU; calls `onMessage` for each message it completes.
   * @throws ProtocolError on a malformed PDV or a fragment that does not fit the message in progress.
   */
  push(body: Buffer): void {
    let pos = 0;
    if (body.length === 0) throw new ProtocolError('P-DATA-TF without any PDV');
    while (pos < body.length) {
      if (body.length - pos < 6) throw new ProtocolError(`P-DATA-TF: truncated PDV header at offset ${pos}`);
      const length = body.readUInt32BE(pos);
      if (length < 2 || length > body.length - pos - 4) {
        throw new ProtocolError(`P-DATA-TF: PDV length ${length} at offset ${pos} does not fit the PDU of ${body.length} bytes`);
      }
      const contextId = body[pos + 4]!;
      const control = body[pos + 5]!;
      const data = body.subarray(pos + 6, pos + 4 + length);
      pos += 4 + length;
      if (!this.options.isAcceptedContext(contextId)) {
        throw new ProtocolError(`PDV on presentation context ${contextId}, which was not accepted`, {
          abortReason: ABORT_REASON.unexpectedPduParameter,
        });
      }
      const last = (control & 0x02) !== 0;
      if (control & 0x01) this.commandFragment(contextId, data, last);
      else this.dataFragment(contextId, data, last);
    }
  }

  private commandFragment(contextId: number, data: Buffer, last: boolean): void {
    if (this.pending !== undefined) {
      throw new ProtocolError('command fragment while the previous command\'s dataset is still expected', {
        abortReason: ABORT_REASON.unexpectedPduParameter,
      });
    }
    if (this.commandFragments.length > 0 && contextId !== this.commandContextId) {
      throw new ProtocolError(`command fragment on context ${contextId}, its first fragment came on ${this.commandContextId}`);
    }
    this.commandContextId = contextId;
    this.commandFragments.push(data);
    this.commandBytes += data.length;
    if (this.commandBytes > MAX_COMMAND_BYTES) throw new ProtocolError(`command set larger than ${MAX_COMMAND_BYTES} bytes`);
    if (!last) return;
    const bytes = this.commandFragments.length === 1 ? data : Buffer.concat(this.commandFragments, this.commandBytes);
    this.commandFragments = [];
    this.commandBytes = 0;
    const command = parseCommand(bytes);
    if (command.hasDataset) {
      this.pending = { contextId, command };
      return;
    }
    this.options.onMessage({ contextId, command, dataset: undefined, datasetBytes: 0, oversized: false });
  }

  private dataFragment(contextId: number, data: Buffer, last: boolean): void {
    const pending = this.pending;
    if (pending === undefined) {
      throw new ProtocolError('dataset fragment without a command announcing a dataset', {
        abortReason: ABORT_REASON.unexpectedPduParameter,
      });
    }
    if (contextId !== pending.contextId) {
      throw new ProtocolError(`dataset fragment on context ${contextId}, its command came on ${pending.contextId}`, {
        abortReason: ABORT_REASON.unexpectedPduParameter,
      });
    }
    this.dataBytes += data.length;
    if (this.dataBytes > this.options.maxDatasetBytes) {
      // Drop what we hold at once: the point of the limit is to not buffer the rest.
      this.oversized = true;
      this.dataFragments = [];
      void this.spoolFile?.discard();
      this.spoolFile = undefined;
    } else if (this.spoolFile !== undefined) {
      this.spoolWrite(this.spoolFile, data);
    } else if (this.options.spool !== undefined && this.dataBytes > this.options.spool.memoryBytes()) {
      const file = new SpoolFile(this.options.spool.dir);
      this.spoolFile = file;
      for (const fragment of this.dataFragments) file.write(fragment);
      this.dataFragments = [];
      this.spoolWrite(file, data);
    } else {
      this.dataFragments.push(data);
    }
    if (!last) return;
    const fragments = this.dataFragments;
    let dataset: DimseMessage['dataset'];
    if (this.oversized) dataset = undefined;
    else if (this.spoolFile !== undefined) dataset = this.spoolFile;
    else dataset = fragments.length === 1 ? fragments[0] : Buffer.concat(fragments, this.dataBytes);
    const message: DimseMessage = { contextId, command: pending.command, dataset, datasetBytes: this.dataBytes, oversized: this.oversized };
    this.pending = undefined;
    this.dataFragments = [];
    this.dataBytes = 0;
    this.oversized = false;
    this.spoolFile = undefined;
    this.options.onMessage(message);
  }

  private spoolWrite(file: SpoolFile, data: Buffer): void {
    if (!file.write(data)) this.options.spool!.onBackpressure(file.drained());
  }
}

import { constants as bufferConstants } from 'node:buffer';
import { TesseraError } from '@tessera/model';
import type { DimseLog, DimseServerOptions } from './dimse-server.ts';

/** The server options every association works with, defaults filled in. */
export interface AssociationSettings {
  aeTitle: string;
  maxPduLength: number;
  maxDatasetBytes: number;
  idleTimeoutMs: number;
  associateTimeoutMs: number;
  associationMemoryBytes: number;
  spoolDir: string | undefined;
  /** Associations open (A-ASSOCIATE-RQ received, connection not yet closed), shared by the server's connections. */
  slots: AssociationSlots;
  log: DimseLog;
  onAssociate: DimseServerOptions['onAssociate'];
  onStore: DimseServerOptions['onStore'];
  onAssociationEnd: DimseServerOptions['onAssociationEnd'];
}

const DEFAULT_MAX_PDU_LENGTH = 1024 * 1024;
const DEFAULT_MAX_DATASET_BYTES = 2 ** 31 - 1;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_ASSOCIATE_TIMEOUT_MS = 30_000;
const DEFAULT_ASSOCIATION_MEMORY_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_ASSOCIATIONS = 32;

/** Counts open associations against the server's limit. */
export class AssociationSlots {
  readonly max: number;
  #used = 0;
  constructor(max: number) {
    this.max = max;
  }
  get used(): number {
    return this.#used;
  }
  /** Takes a slot; false when all are taken. */
  acquire(): boolean {
    if (this.#used >= this.max) return false;
    this.#used++;
    return true;
  }
  release(): void {
    this.#used--;
  }
}
/** dcmtk refuses to go below 4096 and PS3.8 has no smaller useful value. */
const MIN_PDU_LENGTH = 4096;
/** setTimeout fires at once for anything longer. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const CONSOLE_LOG: DimseLog = {
  info: (msg) => console.info(msg),
  warn: (msg) => console.warn(msg),
  error: (msg) => console.error(msg),
};

/**
 * Checks the server options and fills in defaults.
 * @throws TesseraError TESSERA_CONFIG for an AE title or a limit out of range.
 */
export function resolveSettings(options: DimseServerOptions): AssociationSettings {
  const aeTitle = options.aeTitle.trim();
  if (!/^[\x20-\x5b\x5d-\x7e]{1,16}$/.test(aeTitle)) {
    throw new TesseraError('TESSERA_CONFIG', `DICOM AE title "${options.aeTitle}" must be 1 to 16 printable ASCII characters without a backslash`);
  }
  return {
    aeTitle,
    maxPduLength: integerIn('max PDU length', options.maxPduLength ?? DEFAULT_MAX_PDU_LENGTH, MIN_PDU_LENGTH, 0xffffffff),
    maxDatasetBytes: integerIn('max dataset size', options.maxDatasetBytes ?? DEFAULT_MAX_DATASET_BYTES, 0, bufferConstants.MAX_LENGTH),
    idleTimeoutMs: integerIn('idle timeout (ms)', options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, 1, MAX_TIMER_MS),
    associateTimeoutMs: integerIn('A-ASSOCIATE-RQ timeout (ms)', options.associateTimeoutMs ?? DEFAULT_ASSOCIATE_TIMEOUT_MS, 1, MAX_TIMER_MS),
    associationMemoryBytes: integerIn('memory per association (bytes)', options.associationMemoryBytes ?? DEFAULT_ASSOCIATION_MEMORY_BYTES, 0, bufferConstants.MAX_LENGTH),
    spoolDir: options.spoolDir,
    slots: new AssociationSlots(integerIn('max associations', options.maxAssociations ?? DEFAULT_MAX_ASSOCIATIONS, 1, 1_000_000)),
    log: options.log ?? CONSOLE_LOG,
    onAssociate: options.onAssociate,
    onStore: options.onStore,
    onAssociationEnd: options.onAssociationEnd,
  };
}

function integerIn(what: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new TesseraError('TESSERA_CONFIG', `DICOM ${what} ${value} must be an integer from ${min} to ${max}`);
  }
  return value;
}

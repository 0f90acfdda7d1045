import { ERROR_CODES, TesseraError, type ErrorKind } from '@tessera/model';

/**
 * The DIMSE status codes Tessera answers with (PS3.7 Annex C, PS3.4 Annex B.2.3),
 * in C-ECHO-RSP and C-STORE-RSP and as the Failure Reason (0008,1197) of STOW-RS.
 */
export const DIMSE_STATUS = {
  success: 0x0000,
  /** STOW-RS only: storing failed with an unexpected error (a bug of ours), PS3.18 "Processing failure". */
  processingFailure: 0x0110,
  /** STOW-RS only: the instance is already stored and the duplicate policy refuses it. */
  duplicateSopInstance: 0x0111,
  sopClassNotSupported: 0x0122,
  unrecognizedOperation: 0x0211,
  /** A fault on our side (disk, database, a bug): the sender may send again later. */
  outOfResources: 0xa700,
  dataSetDoesNotMatchSopClass: 0xa900,
  /** The instance itself is bad: sending it again will not help. */
  cannotUnderstand: 0xc000,
} as const;

/** A failure status and the words that go with it. */
export interface StoreStatus {
  status: number;
  /** The error's message, whole: DIMSE cuts it to its 64-character Error Comment, STOW-RS keeps it. */
  comment: string;
}

/** The protocol the status answers in: C-STORE-RSP, or a STOW-RS Failed SOP Sequence item. */
export type StoreProtocol = 'c-store' | 'stow-rs';

/**
 * The failure status of an instance that could not be stored, from the error its
 * store threw, or the `{ code, message }` of a rejected import result. Whose fault
 * decides: the sender's (a `user` error) is 0xC000 "cannot understand", ours (an
 * operational fault or a bug) 0xA700 "out of resources", which a sender may retry.
 * In STOW-RS a duplicate refused by the `reject` policy (TESSERA_CONFLICT) is
 * 0x0111 "duplicate SOP instance"; C-STORE has no such status and answers 0xC000.
 * In STOW-RS a bug (TESSERA_INTERNAL, or an error that is not Tessera's) is 0x0110
 * "processing failure"; C-STORE keeps 0xA700, which tells a sender to try again.
 */
export function storeStatusOf(error: unknown, options: { protocol?: StoreProtocol } = {}): StoreStatus {
  const comment = error instanceof Error ? error.message : isCoded(error) ? error.message : String(error);
  const code = error instanceof TesseraError || isCoded(error) ? error.code : undefined;
  if (options.protocol === 'stow-rs' && code === 'TESSERA_CONFLICT') return { status: DIMSE_STATUS.duplicateSopInstance, comment };
  if (options.protocol === 'stow-rs' && (code === undefined || kindOf(code) === 'bug')) return { status: DIMSE_STATUS.processingFailure, comment };
  return { status: kindOf(code) === 'user' ? DIMSE_STATUS.cannotUnderstand : DIMSE_STATUS.outOfResources, comment };
}

/** A rejected import result's error: a code of ERROR_CODES and its message. */
function isCoded(error: unknown): error is { code: string; message: string } {
  return typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string' && typeof (error as { message?: unknown }).message === 'string';
}

function kindOf(code: string | undefined): ErrorKind | undefined {
  return code !== undefined && Object.hasOwn(ERROR_CODES, code) ? ERROR_CODES[code as keyof typeof ERROR_CODES].kind : undefined;
}

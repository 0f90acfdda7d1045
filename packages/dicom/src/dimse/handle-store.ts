import { describeError } from './answer-associate.ts';
import type { AssociationSettings } from './association-settings.ts';
import { SpoolFile, type SpooledDataset } from './dataset-spool.ts';
import type { AssociationInfo, StoreResult } from './dimse-server.ts';
import type { DimseMessage } from './message-assembler.ts';
import type { NegotiatedContext } from './negotiate-contexts.ts';
import { DIMSE_STATUS, storeStatusOf } from './store-status.ts';

export interface HandleStoreOptions {
  message: DimseMessage;
  /** The accepted presentation context the message came on. */
  context: NegotiatedContext;
  association: AssociationInfo & { context?: unknown };
  settings: AssociationSettings;
  /** Prefix of log lines: which association, which peer. */
  label: string;
}

/**
 * The C-STORE-RSP status for a complete C-STORE-RQ: refusals we decide
 * ourselves (oversized, missing UIDs, SOP class not the context's) without
 * calling onStore, else what onStore says. Never throws. A spooled dataset's file
 * is deleted once onStore settled (or when it is not called).
 */
export async function handleStore(options: HandleStoreOptions): Promise<StoreResult> {
  const { dataset } = options.message;
  try {
    return await decideStore(options);
  } finally {
    if (dataset instanceof SpoolFile) await dataset.discard();
  }
}

async function decideStore(options: HandleStoreOptions): Promise<StoreResult> {
  const { message, context, settings, label } = options;
  const { command } = message;
  const what = `C-STORE ${command.affectedSopInstanceUid ?? '(no SOP instance UID)'}`;
  if (message.oversized) {
    const errorComment = `Dataset of ${message.datasetBytes} bytes exceeds limit ${settings.maxDatasetBytes}`;
    settings.log.warn(`${label}: ${what} refused: ${errorComment}`);
    return { status: DIMSE_STATUS.outOfResources, errorComment };
  }
  if (!command.affectedSopClassUid || !command.affectedSopInstanceUid || message.dataset === undefined || command.messageId === undefined) {
    settings.log.warn(`${label}: ${what} lacks its SOP class UID, SOP instance UID or dataset`);
    return { status: DIMSE_STATUS.cannotUnderstand, errorComment: 'Missing Affected SOP Class/Instance UID' };
  }
  if (command.affectedSopClassUid !== context.abstractSyntax) {
    settings.log.warn(`${label}: ${what}: SOP class ${command.affectedSopClassUid} but context ${context.id} is for ${context.abstractSyntax}`);
    return { status: DIMSE_STATUS.sopClassNotSupported, errorComment: `SOP class not that of presentation context ${context.id}` };
  }
  let dataset: Buffer | SpooledDataset;
  if (message.dataset instanceof SpoolFile) {
    try {
      dataset = await message.dataset.finish();
    } catch (err) {
      settings.log.error(`${label}: ${what}: ${describeError(err)}`);
      return { status: DIMSE_STATUS.outOfResources, errorComment: 'Could not write the dataset to disk' };
    }
  } else {
    dataset = message.dataset;
  }
  try {
    const result = await settings.onStore({
      association: options.association,
      messageId: command.messageId,
      sopClassUid: command.affectedSopClassUid,
      sopInstanceUid: command.affectedSopInstanceUid,
      transferSyntaxUid: context.transferSyntax,
      dataset,
    });
    if (!Number.isInteger(result?.status) || result.status < 0 || result.status > 0xffff) {
      throw new Error(`onStore returned status ${String(result?.status)}, not a 16-bit integer`);
    }
    return result;
  } catch (err) {
    settings.log.error(`${label}: ${what}: onStore failed: ${describeError(err)}`);
    const { status, comment } = storeStatusOf(err);
    return { status, errorComment: comment };
  }
}

import { TesseraError } from '@tessera/model';
import { STATUS } from './dimse-command.ts';
import type { StoreResult } from './dimse-server.ts';

/**
 * The C-STORE status for an error thrown by onStore. A `user` TesseraError
 * (the instance itself is bad) is 0xC000 "cannot understand", which tells the
 * sender that resending will not help; anything else (disk, database, a bug)
 * is 0xA700 "out of resources", which a sender may retry later.
 */
export function storeStatusFor(err: unknown): StoreResult {
  const message = err instanceof Error ? err.message : String(err);
  const permanent = err instanceof TesseraError && err.kind === 'user';
  return { status: permanent ? STATUS.cannotUnderstand : STATUS.outOfResources, errorComment: message };
}

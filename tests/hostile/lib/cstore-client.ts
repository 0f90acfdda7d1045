import { pDataPdu, RawDimsePeer, requestCommand, associateAcOf, pdvsOf, responseOf, rawPdu } from '../../../packages/dicom/src/dimse/__fixtures__/raw-dimse-peer.ts';

/** What one C-STORE of a hostile input came to. */
export type CStoreOutcome =
  | { kind: 'status'; status: number; comment?: string }
  | { kind: 'association-rejected' | 'context-rejected' | 'aborted' | 'closed' | 'hang' | 'connect-failed'; detail?: string };

const C_STORE_RQ = 0x0001;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * One association, one C-STORE of the given bytes as they are (no SCU a test can
 * install sends broken datasets on purpose), then a release.
 */
export async function cstore(options: {
  port: number;
  calledAe: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntax: string;
  dataset: Buffer;
  timeoutMs: number;
}): Promise<CStoreOutcome> {
  let peer: RawDimsePeer;
  try {
    peer = await RawDimsePeer.connect(options.port);
  } catch (err) {
    return { kind: 'connect-failed', detail: (err as Error).message };
  }
  try {
    const answer = await withTimeout(
      peer.associate({ calledAe: options.calledAe, callingAe: 'HOSTILE', contexts: [{ id: 1, abstractSyntax: options.sopClassUid, transferSyntaxes: [options.transferSyntax] }] }),
      options.timeoutMs,
    );
    if (answer === 'timeout') return { kind: 'hang', detail: 'no answer to the A-ASSOCIATE-RQ' };
    if (answer === undefined) return { kind: 'closed', detail: 'closed instead of answering the A-ASSOCIATE-RQ' };
    if (answer.type !== 0x02) return { kind: answer.type === 0x03 ? 'association-rejected' : 'aborted' };
    const ac = associateAcOf(answer);
    if (ac.contexts[0]?.result !== 0) return { kind: 'context-rejected', detail: `result ${ac.contexts[0]?.result}` };
    const chunk = Math.max(1024, (ac.maxPduLength || 65536) - 6);
    peer.send(pDataPdu([{ contextId: 1, command: true, last: true, data: requestCommand({ commandField: C_STORE_RQ, messageId: 1, sopClassUid: options.sopClassUid, sopInstanceUid: options.sopInstanceUid, hasDataset: true }) }]));
    if (options.dataset.length === 0) {
      peer.send(pDataPdu([{ contextId: 1, command: false, last: true, data: Buffer.alloc(0) }]));
    }
    for (let at = 0; at < options.dataset.length; at += chunk) {
      const last = at + chunk >= options.dataset.length;
      peer.send(pDataPdu([{ contextId: 1, command: false, last, data: options.dataset.subarray(at, at + chunk) }]));
    }
    const rsp = await withTimeout(peer.nextPdu(), options.timeoutMs);
    if (rsp === 'timeout') return { kind: 'hang', detail: 'no C-STORE-RSP' };
    if (rsp === undefined) return { kind: 'closed', detail: 'closed instead of a C-STORE-RSP' };
    if (rsp.type === 0x07) return { kind: 'aborted' };
    if (rsp.type !== 0x04) return { kind: 'aborted', detail: `PDU type ${rsp.type} instead of a C-STORE-RSP` };
    const command = pdvsOf(rsp).find((p) => p.command)?.data;
    const parsed = command ? responseOf(command) : {};
    peer.send(rawPdu({ type: 0x05, body: Buffer.alloc(4) }));
    await withTimeout(peer.nextPdu(), 2_000);
    if (parsed.status === undefined) return { kind: 'aborted', detail: 'a C-STORE-RSP without a status' };
    return { kind: 'status', status: parsed.status, comment: parsed.errorComment };
  } finally {
    peer.destroy();
  }
}

/** A DIMSE status that acknowledges the instance as stored (success or warning). */
export const isStoredStatus = (status: number): boolean => status === 0x0000 || (status & 0xf000) === 0xb000;

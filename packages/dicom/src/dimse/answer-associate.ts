import type { AssociateRq } from './associate-rq.ts';
import type { AssociationSettings } from './association-settings.ts';
import type { AssociateDecision, AssociationInfo } from './dimse-server.ts';
import { negotiateContexts, type NegotiatedContext } from './negotiate-contexts.ts';
import { CONTEXT_RESULT, DICOM_APPLICATION_CONTEXT } from './pdu-constants.ts';
import { encodeAssociateAc, encodeAssociateRj } from './pdu-writer.ts';

/** What to send for an A-ASSOCIATE-RQ, and what was agreed. */
export type AssociateAnswer =
  | { accepted: true; pdu: Buffer; contexts: Map<number, NegotiatedContext>; context: unknown }
  | { accepted: false; pdu: Buffer };

export interface AnswerAssociateOptions {
  rq: AssociateRq;
  info: AssociationInfo;
  settings: AssociationSettings;
  /** Prefix of log lines: which association, which peer. */
  label: string;
  /** The server already has as many associations as it allows: reject, transient. */
  overLimit?: boolean;
}

type Rejection = Extract<AssociateDecision, { accept: false }>;

/**
 * Decides on an A-ASSOCIATE-RQ: the protocol checks first, then onAssociate
 * (whose failure is a transient rejection, so the caller may retry), then the
 * presentation contexts. Never throws.
 */
export async function answerAssociate(options: AnswerAssociateOptions): Promise<AssociateAnswer> {
  const { rq, settings, label } = options;
  const decision = protocolRejection(rq) ?? (options.overLimit ? limitRejection(settings) : await askOnAssociate(options));
  if (!decision.accept) {
    const result = decision.result ?? 1;
    const source = decision.source ?? 1;
    const diagnostic = decision.diagnostic ?? 7;
    settings.log[options.overLimit ? 'warn' : 'info'](`${label}: association to "${rq.calledAe}" rejected (result ${result}, source ${source}, diagnostic ${diagnostic}): ${decision.reason}`);
    return { accepted: false, pdu: encodeAssociateRj({ result, source, diagnostic }) };
  }
  const negotiated = negotiateContexts(rq.contexts);
  const contexts = new Map(negotiated.filter((c) => c.result === CONTEXT_RESULT.acceptance).map((c) => [c.id, c]));
  settings.log.info(
    `${label}: association accepted (${contexts.size} of ${negotiated.length} presentation contexts, ` +
      `peer implementation ${rq.implementationClassUid ?? '?'} ${rq.implementationVersionName ?? ''})`,
  );
  const pdu = encodeAssociateAc({
    calledAe: settings.aeTitle,
    callingAe: rq.callingAe,
    contexts: negotiated,
    maxPduLength: settings.maxPduLength,
    asyncOps: rq.asyncOpsProposed,
  });
  return { accepted: true, pdu, contexts, context: decision.context };
}

function protocolRejection(rq: AssociateRq): Rejection | undefined {
  if ((rq.protocolVersion & 1) === 0) {
    return { accept: false, reason: `protocol version ${rq.protocolVersion} not supported`, result: 1, source: 2, diagnostic: 2 };
  }
  if (rq.applicationContext !== DICOM_APPLICATION_CONTEXT) {
    return { accept: false, reason: `application context "${rq.applicationContext ?? ''}" not supported`, result: 1, source: 1, diagnostic: 2 };
  }
  return undefined;
}

/** PS3.8 Table 9-21: rejected-transient (2), DICOM UL service-provider, presentation related (3), local-limit-exceeded (2). */
function limitRejection(settings: AssociationSettings): Rejection {
  const reason = `limit of ${settings.slots.max} concurrent associations reached; try again once one has ended`;
  return { accept: false, reason, result: 2, source: 3, diagnostic: 2 };
}

async function askOnAssociate(options: AnswerAssociateOptions): Promise<AssociateDecision> {
  const { settings, label } = options;
  if (settings.onAssociate === undefined) return { accept: true };
  try {
    const decision = await settings.onAssociate({ ...options.info });
    if (typeof decision?.accept !== 'boolean') throw new Error(`onAssociate returned ${JSON.stringify(decision)}, not a decision`);
    return decision;
  } catch (err) {
    settings.log.error(`${label}: onAssociate failed, rejecting (transient): ${describeError(err)}`);
    return { accept: false, reason: 'onAssociate failed', result: 2, source: 1, diagnostic: 1 };
  }
}

/** An error for a log line: its stack when it has one. */
export function describeError(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

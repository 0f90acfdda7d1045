import type { NegotiatedContext } from './negotiate-contexts.ts';
import {
  DICOM_APPLICATION_CONTEXT,
  IMPLEMENTATION_CLASS_UID,
  IMPLEMENTATION_VERSION_NAME,
  ITEM_TYPE,
  PDU_TYPE,
} from './pdu-constants.ts';

export interface AssociateAcOptions {
  /** Our AE title, sent as the called (responding) AE. */
  calledAe: string;
  /** The requestor's AE title, echoed. */
  callingAe: string;
  contexts: readonly NegotiatedContext[];
  /** The largest P-DATA-TF PDU length we receive. */
  maxPduLength: number;
  /** Answer an asynchronous operations window sub-item with 1/1 (no overlapping operations). */
  asyncOps: boolean;
}

/** An A-ASSOCIATE-AC PDU. */
export function encodeAssociateAc(options: AssociateAcOptions): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0); // protocol version 1
  fixed.write(aeField(options.calledAe), 4, 'latin1');
  fixed.write(aeField(options.callingAe), 20, 'latin1');
  const contexts = options.contexts.map((context) => {
    const head = Buffer.from([context.id, 0, context.result, 0]);
    return item(ITEM_TYPE.presentationContextAc, Buffer.concat([head, item(ITEM_TYPE.transferSyntax, ascii(context.transferSyntax))]));
  });
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(options.maxPduLength, 0);
  const userInfo = [
    item(ITEM_TYPE.maxLength, maxLength),
    item(ITEM_TYPE.implementationClassUid, ascii(IMPLEMENTATION_CLASS_UID)),
    ...(options.asyncOps ? [item(ITEM_TYPE.asyncOpsWindow, Buffer.from([0, 1, 0, 1]))] : []),
    item(ITEM_TYPE.implementationVersionName, ascii(IMPLEMENTATION_VERSION_NAME)),
  ];
  return pdu(
    PDU_TYPE.associateAc,
    Buffer.concat([
      fixed,
      item(ITEM_TYPE.applicationContext, ascii(DICOM_APPLICATION_CONTEXT)),
      ...contexts,
      item(ITEM_TYPE.userInfo, Buffer.concat(userInfo)),
    ]),
  );
}

export interface AssociateRjOptions {
  /** 1 rejected-permanent, 2 rejected-transient. */
  result: number;
  /** 1 service-user, 2 service-provider (ACSE), 3 service-provider (presentation). */
  source: number;
  diagnostic: number;
}

/** An A-ASSOCIATE-RJ PDU. */
export function encodeAssociateRj(options: AssociateRjOptions): Buffer {
  return pdu(PDU_TYPE.associateRj, Buffer.from([0, options.result, options.source, options.diagnostic]));
}

/** An A-RELEASE-RP PDU. */
export function encodeReleaseRp(): Buffer {
  return pdu(PDU_TYPE.releaseRp, Buffer.alloc(4));
}

/** An A-ABORT PDU; `source` 0 is the service user, 2 the service provider (then `reason` says why). */
export function encodeAbort(options: { source: number; reason: number }): Buffer {
  return pdu(PDU_TYPE.abort, Buffer.from([0, 0, options.source, options.reason]));
}

export interface CommandPduOptions {
  contextId: number;
  command: Buffer;
  /** The peer's receive limit for PDU lengths; 0 means unlimited. */
  peerMaxPduLength: number;
}

/**
 * The P-DATA-TF PDU(s) carrying a command set, as one Buffer so a DIMSE
 * response goes out in a single socket write. The command is a single PDV
 * unless the peer's limit is smaller than it.
 */
export function encodeCommandPdus(options: CommandPduOptions): Buffer {
  const { contextId, command } = options;
  const limit = options.peerMaxPduLength;
  // A limit that cannot hold a PDV header and a byte of data is bogus; ignore it rather than loop forever.
  const perPdu = Math.max(1, limit > 6 && limit - 6 < command.length ? limit - 6 : command.length);
  const count = Math.max(1, Math.ceil(command.length / perPdu));
  const out = Buffer.allocUnsafe(command.length + count * 12);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const part = command.subarray(i * perPdu, (i + 1) * perPdu);
    out[pos] = PDU_TYPE.pDataTf;
    out[pos + 1] = 0;
    out.writeUInt32BE(6 + part.length, pos + 2);
    out.writeUInt32BE(2 + part.length, pos + 6);
    out[pos + 10] = contextId;
    out[pos + 11] = i === count - 1 ? 0x03 : 0x01; // command; last fragment
    part.copy(out, pos + 12);
    pos += 12 + part.length;
  }
  return out;
}

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function item(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

function ascii(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

function aeField(ae: string): string {
  return ae.padEnd(16, ' ').slice(0, 16);
}

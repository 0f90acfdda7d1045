import { ABORT_REASON, ITEM_TYPE, ProtocolError } from './pdu-constants.ts';

/** One presentation context as the requestor proposed it. */
export interface ProposedContext {
  id: number;
  /** Empty when the item carried no abstract syntax sub-item; such a context is refused. */
  abstractSyntax: string;
  transferSyntaxes: string[];
}

/** The fields of an A-ASSOCIATE-RQ we act on. */
export interface AssociateRq {
  protocolVersion: number;
  calledAe: string;
  callingAe: string;
  applicationContext: string | undefined;
  contexts: ProposedContext[];
  /** The requestor's receive limit for P-DATA-TF PDU lengths; 0 means unlimited. */
  maxPduLength: number;
  implementationClassUid: string | undefined;
  implementationVersionName: string | undefined;
  asyncOpsProposed: boolean;
}

/** Length of the fixed part of an A-ASSOCIATE-RQ body, before the variable items. */
const FIXED_BYTES = 68;

/**
 * Parses the body (after the 6-byte PDU header) of an A-ASSOCIATE-RQ.
 * @throws ProtocolError when an item overruns its parent or a field is malformed.
 */
export function parseAssociateRq(body: Buffer): AssociateRq {
  if (body.length < FIXED_BYTES) {
    throw new ProtocolError(`A-ASSOCIATE-RQ body is ${body.length} bytes, shorter than its fixed ${FIXED_BYTES}`);
  }
  const rq: AssociateRq = {
    protocolVersion: body.readUInt16BE(0),
    calledAe: textField(body.subarray(4, 20)),
    callingAe: textField(body.subarray(20, 36)),
    applicationContext: undefined,
    contexts: [],
    maxPduLength: 0,
    implementationClassUid: undefined,
    implementationVersionName: undefined,
    asyncOpsProposed: false,
  };
  for (const item of items(body, FIXED_BYTES, 'A-ASSOCIATE-RQ')) {
    if (item.type === ITEM_TYPE.applicationContext) rq.applicationContext = textField(item.value);
    else if (item.type === ITEM_TYPE.presentationContextRq) rq.contexts.push(parseContext(item.value));
    else if (item.type === ITEM_TYPE.userInfo) parseUserInfo(item.value, rq);
    // Other item types are reserved; PS3.8 9.3.1 says to ignore them.
  }
  return rq;
}

function parseContext(value: Buffer): ProposedContext {
  if (value.length < 4) throw new ProtocolError(`presentation context item is ${value.length} bytes, shorter than 4`);
  const context: ProposedContext = { id: value[0]!, abstractSyntax: '', transferSyntaxes: [] };
  for (const sub of items(value, 4, `presentation context ${context.id}`)) {
    if (sub.type === ITEM_TYPE.abstractSyntax) context.abstractSyntax = textField(sub.value);
    else if (sub.type === ITEM_TYPE.transferSyntax) context.transferSyntaxes.push(textField(sub.value));
  }
  return context;
}

function parseUserInfo(value: Buffer, rq: AssociateRq): void {
  for (const sub of items(value, 0, 'user information')) {
    if (sub.type === ITEM_TYPE.maxLength) {
      if (sub.value.length !== 4) throw new ProtocolError(`maximum length sub-item is ${sub.value.length} bytes, not 4`);
      rq.maxPduLength = sub.value.readUInt32BE(0);
    } else if (sub.type === ITEM_TYPE.implementationClassUid) {
      rq.implementationClassUid = textField(sub.value);
    } else if (sub.type === ITEM_TYPE.implementationVersionName) {
      rq.implementationVersionName = textField(sub.value);
    } else if (sub.type === ITEM_TYPE.asyncOpsWindow) {
      rq.asyncOpsProposed = true;
    }
  }
}

interface Item {
  type: number;
  value: Buffer;
}

/** The type/length/value items in `buf` from `start`, each with a 4-byte header (type, reserved, 16-bit length). */
function* items(buf: Buffer, start: number, where: string): Generator<Item> {
  let pos = start;
  while (pos < buf.length) {
    if (pos + 4 > buf.length) throw new ProtocolError(`${where}: truncated item header at offset ${pos}`);
    const type = buf[pos]!;
    const length = buf.readUInt16BE(pos + 2);
    const end = pos + 4 + length;
    if (end > buf.length) {
      throw new ProtocolError(`${where}: item 0x${type.toString(16)} of length ${length} overruns its parent`, {
        abortReason: ABORT_REASON.invalidPduParameterValue,
      });
    }
    yield { type, value: buf.subarray(pos + 4, end) };
    pos = end;
  }
}

/**
 * A UID, AE title or name field as text. UIDs are padded with NUL (sloppy peers
 * use spaces) and AE titles with spaces, leading spaces being insignificant too.
 */
export function textField(value: Buffer): string {
  return value.toString('latin1').replace(/^[\0 ]+|[\0 ]+$/g, '');
}

import { ABORT_REASON, ProtocolError } from './pdu-constants.ts';

/** DIMSE command field values (0000,0100) we act on; a response is its request | 0x8000. */
export const COMMAND_FIELD = {
  cStoreRq: 0x0001,
  cEchoRq: 0x0030,
  cCancelRq: 0x0fff,
  responseBit: 0x8000,
} as const;

/** (0000,0800) Command Data Set Type value meaning "no dataset follows". */
export const NO_DATASET = 0x0101;

/** The command elements we act on. */
export interface DimseCommand {
  commandField: number;
  messageId: number | undefined;
  hasDataset: boolean;
  affectedSopClassUid: string | undefined;
  affectedSopInstanceUid: string | undefined;
}

const TAG = {
  affectedSopClassUid: 0x0002,
  commandField: 0x0100,
  messageId: 0x0110,
  messageIdBeingRespondedTo: 0x0120,
  commandDataSetType: 0x0800,
  status: 0x0900,
  errorComment: 0x0902,
  affectedSopInstanceUid: 0x1000,
} as const;

/** The longest (0000,0902) Error Comment: its VR is LO. */
export const MAX_ERROR_COMMENT = 64;

/**
 * Parses a command set (group 0000, always implicit VR little endian).
 * @throws ProtocolError when an element overruns the set or a mandatory element is missing.
 */
export function parseCommand(buf: Buffer): DimseCommand {
  let commandField: number | undefined;
  let dataSetType: number | undefined;
  const command: DimseCommand = {
    commandField: 0,
    messageId: undefined,
    hasDataset: false,
    affectedSopClassUid: undefined,
    affectedSopInstanceUid: undefined,
  };
  let pos = 0;
  while (pos < buf.length) {
    if (pos + 8 > buf.length) throw new ProtocolError(`command set: truncated element header at offset ${pos}`);
    const group = buf.readUInt16LE(pos);
    const element = buf.readUInt16LE(pos + 2);
    const length = buf.readUInt32LE(pos + 4);
    const start = pos + 8;
    if (length > buf.length - start) {
      throw new ProtocolError(`command set: element (${hex4(group)},${hex4(element)}) of length ${length} overruns the set`);
    }
    const value = buf.subarray(start, start + length);
    pos = start + length;
    if (group !== 0) continue;
    if (element === TAG.commandField) commandField = us(value);
    else if (element === TAG.messageId) command.messageId = us(value);
    else if (element === TAG.commandDataSetType) dataSetType = us(value);
    else if (element === TAG.affectedSopClassUid) command.affectedSopClassUid = ui(value);
    else if (element === TAG.affectedSopInstanceUid) command.affectedSopInstanceUid = ui(value);
  }
  if (commandField === undefined || dataSetType === undefined) {
    throw new ProtocolError('command set lacks (0000,0100) Command Field or (0000,0800) Command Data Set Type', {
      abortReason: ABORT_REASON.invalidPduParameterValue,
    });
  }
  command.commandField = commandField;
  command.hasDataset = dataSetType !== NO_DATASET;
  return command;
}

export interface ResponseOptions {
  /** The request's command field; the response sets bit 0x8000. */
  requestField: number;
  messageIdBeingRespondedTo: number;
  affectedSopClassUid?: string;
  affectedSopInstanceUid?: string;
  status: number;
  /** Truncated to 64 characters. */
  errorComment?: string;
}

/** A response command set with no dataset, group length first, elements in tag order. */
export function encodeResponse(options: ResponseOptions): Buffer {
  const elements: Array<[number, Buffer]> = [];
  if (options.affectedSopClassUid !== undefined) elements.push([TAG.affectedSopClassUid, uiValue(options.affectedSopClassUid)]);
  elements.push([TAG.commandField, usValue(options.requestField | COMMAND_FIELD.responseBit)]);
  elements.push([TAG.messageIdBeingRespondedTo, usValue(options.messageIdBeingRespondedTo)]);
  elements.push([TAG.commandDataSetType, usValue(NO_DATASET)]);
  elements.push([TAG.status, usValue(options.status)]);
  if (options.errorComment) elements.push([TAG.errorComment, loValue(options.errorComment)]);
  if (options.affectedSopInstanceUid !== undefined) elements.push([TAG.affectedSopInstanceUid, uiValue(options.affectedSopInstanceUid)]);

  const groupLength = elements.reduce((sum, [, value]) => sum + 8 + value.length, 0);
  const out = Buffer.allocUnsafe(12 + groupLength);
  writeHeader(out, 0, 0x0000, 4);
  out.writeUInt32LE(groupLength, 8);
  let pos = 12;
  for (const [element, value] of elements) {
    writeHeader(out, pos, element, value.length);
    value.copy(out, pos + 8);
    pos += 8 + value.length;
  }
  return out;
}

function writeHeader(out: Buffer, pos: number, element: number, length: number): void {
  out.writeUInt16LE(0, pos);
  out.writeUInt16LE(element, pos + 2);
  out.writeUInt32LE(length, pos + 4);
}

function us(value: Buffer): number | undefined {
  return value.length >= 2 ? value.readUInt16LE(0) : undefined;
}

function ui(value: Buffer): string {
  return value.toString('latin1').replace(/[\0 ]+$/, '');
}

function usValue(n: number): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16LE(n & 0xffff, 0);
  return out;
}

/** UI values are padded to even length with NUL. */
function uiValue(uid: string): Buffer {
  return Buffer.from(uid.length % 2 ? `${uid}\0` : uid, 'latin1');
}

/**
 * LO values are padded to even length with a space. Without a Specific Character
 * Set only printable ASCII is allowed, and a backslash would split the value.
 */
function loValue(text: string): Buffer {
  const clean = text.replace(/[^\x20-\x5b\x5d-\x7e]/g, '?').slice(0, MAX_ERROR_COMMENT);
  return Buffer.from(clean.length % 2 ? `${clean} ` : clean, 'latin1');
}

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

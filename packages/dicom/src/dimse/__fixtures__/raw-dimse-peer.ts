import { connect, type Socket } from 'node:net';
import { PduReader, type Pdu } from '../pdu-reader.ts';

/** A presentation context to propose. */
export interface RawContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

/** One PDV of a P-DATA-TF PDU. */
export interface RawPdv {
  contextId: number;
  command: boolean;
  last: boolean;
  data: Buffer;
}

/** A whole PDU: type, reserved byte, 32-bit length, body. */
export function rawPdu(options: { type: number; body: Buffer; length?: number }): Buffer {
  const head = Buffer.alloc(6);
  head[0] = options.type;
  head.writeUInt32BE(options.length ?? options.body.length, 2);
  return Buffer.concat([head, options.body]);
}

function item(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(value.length, 2);
  return Buffer.concat([head, value]);
}

/** An A-ASSOCIATE-RQ as a well-behaved (or, through the options, an ill-behaved) requestor sends it. */
export function associateRqPdu(options: {
  contexts: RawContext[];
  calledAe?: string;
  callingAe?: string;
  maxPduLength?: number;
  applicationContext?: string;
  protocolVersion?: number;
  /** Propose an asynchronous operations window of this many invoked/performed operations. */
  asyncOps?: number;
}): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(options.protocolVersion ?? 1, 0);
  fixed.write((options.calledAe ?? 'TESSERA').padEnd(16), 4, 'latin1');
  fixed.write((options.callingAe ?? 'RAWPEER').padEnd(16), 20, 'latin1');
  const contexts = options.contexts.map((context) =>
    item(
      0x20,
      Buffer.concat([
        Buffer.from([context.id, 0, 0, 0]),
        item(0x30, Buffer.from(context.abstractSyntax)),
        ...context.transferSyntaxes.map((uid) => item(0x40, Buffer.from(uid))),
      ]),
    ),
  );
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(options.maxPduLength ?? 16384, 0);
  const asyncOps = options.asyncOps === undefined ? [] : [item(0x53, Buffer.from([0, options.asyncOps, 0, options.asyncOps]))];
  const userInfo = item(0x50, Buffer.concat([item(0x51, maxLength), item(0x52, Buffer.from('1.2.3.4.5')), ...asyncOps]));
  const appContext = item(0x10, Buffer.from(options.applicationContext ?? '1.2.840.10008.3.1.1.1'));
  return rawPdu({ type: 0x01, body: Buffer.concat([fixed, appContext, ...contexts, userInfo]) });
}

/** A P-DATA-TF PDU of the given PDVs. */
export function pDataPdu(pdvs: RawPdv[]): Buffer {
  const items = pdvs.map((pdv) => {
    const head = Buffer.alloc(6);
    head.writeUInt32BE(pdv.data.length + 2, 0);
    head[4] = pdv.contextId;
    head[5] = (pdv.command ? 1 : 0) | (pdv.last ? 2 : 0);
    return Buffer.concat([head, pdv.data]);
  });
  return rawPdu({ type: 0x04, body: Buffer.concat(items) });
}

/** A request command set, implicit VR little endian. */
export function requestCommand(options: {
  commandField: number;
  messageId: number;
  sopClassUid?: string;
  sopInstanceUid?: string;
  hasDataset: boolean;
}): Buffer {
  const elements: Array<[number, Buffer]> = [];
  const ui = (uid: string): Buffer => Buffer.from(uid.length % 2 ? `${uid}\0` : uid, 'latin1');
  const us = (n: number): Buffer => {
    const value = Buffer.alloc(2);
    value.writeUInt16LE(n, 0);
    return value;
  };
  if (options.sopClassUid !== undefined) elements.push([0x0002, ui(options.sopClassUid)]);
  elements.push([0x0100, us(options.commandField)], [0x0110, us(options.messageId)], [0x0700, us(0)]);
  elements.push([0x0800, us(options.hasDataset ? 0x0000 : 0x0101)]);
  if (options.sopInstanceUid !== undefined) elements.push([0x1000, ui(options.sopInstanceUid)]);
  const encoded = elements.map(([element, value]) => {
    const head = Buffer.alloc(8);
    head.writeUInt16LE(element, 2);
    head.writeUInt32LE(value.length, 4);
    return Buffer.concat([head, value]);
  });
  const body = Buffer.concat(encoded);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt32LE(4, 4);
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([groupLength, body]);
}

/** The PDVs of a P-DATA-TF PDU received from the server. */
export function pdvsOf(pdu: Pdu): RawPdv[] {
  const pdvs: RawPdv[] = [];
  for (let pos = 0; pos < pdu.body.length; ) {
    const length = pdu.body.readUInt32BE(pos);
    const control = pdu.body[pos + 5]!;
    pdvs.push({ contextId: pdu.body[pos + 4]!, command: (control & 1) !== 0, last: (control & 2) !== 0, data: pdu.body.subarray(pos + 6, pos + 4 + length) });
    pos += 4 + length;
  }
  return pdvs;
}

/** What an A-ASSOCIATE-AC says. */
export interface RawAssociateAc {
  calledAe: string;
  contexts: Array<{ id: number; result: number; transferSyntax: string }>;
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersionName: string;
  /** [invoked, performed] when the AC carries an asynchronous operations window. */
  asyncOps: [number, number] | undefined;
}

/** Parses an A-ASSOCIATE-AC. */
export function associateAcOf(pdu: Pdu): RawAssociateAc {
  const ac: RawAssociateAc = {
    calledAe: pdu.body.toString('latin1', 4, 20).trim(),
    contexts: [],
    maxPduLength: 0,
    implementationClassUid: '',
    implementationVersionName: '',
    asyncOps: undefined,
  };
  for (const [type, value] of rawItems(pdu.body, 68)) {
    if (type === 0x21) {
      ac.contexts.push({ id: value[0]!, result: value[2]!, transferSyntax: value.subarray(8, 8 + value.readUInt16BE(6)).toString('latin1') });
    } else if (type === 0x50) {
      for (const [subType, sub] of rawItems(value, 0)) {
        if (subType === 0x51) ac.maxPduLength = sub.readUInt32BE(0);
        else if (subType === 0x52) ac.implementationClassUid = sub.toString('latin1');
        else if (subType === 0x53) ac.asyncOps = [sub.readUInt16BE(0), sub.readUInt16BE(2)];
        else if (subType === 0x55) ac.implementationVersionName = sub.toString('latin1');
      }
    }
  }
  return ac;
}

function rawItems(buf: Buffer, start: number): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  for (let pos = start; pos + 4 <= buf.length; ) {
    const value = buf.subarray(pos + 4, pos + 4 + buf.readUInt16BE(pos + 2));
    out.push([buf[pos]!, value]);
    pos += 4 + value.length;
  }
  return out;
}

/** The value of a group 0000 element of a command set, or undefined. */
export function commandElement(command: Buffer, element: number): Buffer | undefined {
  for (let pos = 0; pos + 8 <= command.length; ) {
    const length = command.readUInt32LE(pos + 4);
    if (command.readUInt16LE(pos + 2) === element) return command.subarray(pos + 8, pos + 8 + length);
    pos += 8 + length;
  }
  return undefined;
}

/** The response fields a test checks, from a command set. */
export function responseOf(command: Buffer): { commandField?: number; respondingTo?: number; status?: number; errorComment?: string; sopInstanceUid?: string } {
  const us = (element: number): number | undefined => commandElement(command, element)?.readUInt16LE(0);
  const text = (element: number): string | undefined => commandElement(command, element)?.toString('latin1').replace(/[\0 ]+$/, '');
  return { commandField: us(0x0100), respondingTo: us(0x0120), status: us(0x0900), errorComment: text(0x0902), sopInstanceUid: text(0x1000) };
}

/**
 * A hand-driven DICOM requestor on a raw socket, for input no real SCU sends:
 * it writes whatever bytes a test gives it and reads the server's PDUs.
 */
export class RawDimsePeer {
  /** Resolves once the server closed (or reset) the connection. */
  readonly closed: Promise<void>;
  private readonly socket: Socket;
  private readonly reader = new PduReader({ maxLength: (type) => (type >= 1 && type <= 7 ? 0xffffffff : undefined) });
  private readonly received: Pdu[] = [];
  private readonly waiters: Array<(pdu: Pdu | undefined) => void> = [];
  private isClosed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let pdu = this.reader.next(); pdu !== undefined; pdu = this.reader.next()) {
        const waiter = this.waiters.shift();
        if (waiter) waiter(pdu);
        else this.received.push(pdu);
      }
    });
    // A reset by the server is one way of closing; the tests look at `closed`, not at the error.
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        for (const waiter of this.waiters.splice(0)) waiter(undefined);
        resolve();
      }),
    );
  }

  static connect(port: number): Promise<RawDimsePeer> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.off('error', reject);
        resolve(new RawDimsePeer(socket));
      });
      socket.once('error', reject);
    });
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next PDU from the server, or undefined once the connection is closed. */
  nextPdu(): Promise<Pdu | undefined> {
    const pdu = this.received.shift();
    if (pdu !== undefined) return Promise.resolve(pdu);
    if (this.isClosed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Sends an A-ASSOCIATE-RQ and returns the server's answer (AC, RJ or abort). */
  async associate(options: Parameters<typeof associateRqPdu>[0]): Promise<Pdu | undefined> {
    this.send(associateRqPdu(options));
    return this.nextPdu();
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

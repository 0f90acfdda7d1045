import { describe, expect, it } from 'vitest';
import { ProtocolError } from './pdu-constants.ts';
import { PduReader } from './pdu-reader.ts';

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

const LIMITS = (type: number): number | undefined => (type === 4 ? 100 : type === 5 ? 4 : undefined);

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function drain(reader: PduReader): Array<{ type: number; body: string }> {
  const out: Array<{ type: number; body: string }> = [];
  for (let next = reader.next(); next !== undefined; next = reader.next()) out.push({ type: next.type, body: next.body.toString('hex') });
  return out;
}

describe('PduReader', () => {
  const stream = Buffer.concat([pdu(4, Buffer.from('hello world')), pdu(5, Buffer.alloc(4)), pdu(4, Buffer.alloc(0)), pdu(4, Buffer.from('x'.repeat(100)))]);
  const expected = [
    { type: 4, body: Buffer.from('hello world').toString('hex') },
    { type: 5, body: '00000000' },
    { type: 4, body: '' },
    { type: 4, body: Buffer.from('x'.repeat(100)).toString('hex') },
  ];

  it.each([1, 2, 3, 7, 64, stream.length])('yields the same PDUs whatever the chunking (%i bytes)', (size) => {
    const reader = new PduReader({ maxLength: LIMITS });
    const got = [];
    for (let i = 0; i < stream.length; i += size) {
      reader.push(stream.subarray(i, i + size));
      got.push(...drain(reader));
    }
    expect(got).toEqual(expected);
    expect(reader.pendingBytes).toBe(0);
  });

  it('returns a view, not a copy, when the body lies in one chunk', () => {
    const reader = new PduReader({ maxLength: LIMITS });
    const chunk = pdu(4, Buffer.from('abc'));
    reader.push(chunk);
    const got = reader.next()!;
    expect(got.body.buffer).toBe(chunk.buffer);
  });

  it('refuses an unknown type from its first byte, before the header is complete', () => {
    const reader = new PduReader({ maxLength: LIMITS });
    reader.push(Buffer.from([0x47]));
    expect(() => reader.next()).toThrow(/unknown PDU type 0x47/);
  });

  it('refuses a known type that is not expected now as unexpected (abort reason 2)', () => {
    const reader = new PduReader({ maxLength: LIMITS });
    reader.push(Buffer.from([0x01]));
    const error = thrown(() => reader.next());
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toMatchObject({ message: 'unexpected A-ASSOCIATE-RQ', abortReason: 2 });
  });

  it('refuses a length above the limit as soon as the header is in', () => {
    const reader = new PduReader({ maxLength: LIMITS });
    reader.push(Buffer.from([4, 0, 0, 0, 0, 101]));
    expect(() => reader.next()).toThrow(/P-DATA-TF of length 101, above the limit of 100/);
  });

  it('counts a partial PDU as pending', () => {
    const reader = new PduReader({ maxLength: LIMITS });
    reader.push(pdu(4, Buffer.from('abcdef')).subarray(0, 8));
    expect(reader.next()).toBeUndefined();
    expect(reader.pendingBytes).toBe(8);
  });
});

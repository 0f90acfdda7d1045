import { describe, expect, it } from 'vitest';
import { encodeResponse, parseCommand } from './dimse-command.ts';

describe('DIMSE command sets', () => {
  it('encodes a response that parses back, group length first and UIDs padded to even length', () => {
    const bytes = encodeResponse({
      requestField: 0x0001,
      messageIdBeingRespondedTo: 42,
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      affectedSopInstanceUid: '1.2.3',
      status: 0xa700,
      errorComment: 'odd',
    });
    expect(bytes.readUInt16LE(2)).toBe(0x0000);
    expect(bytes.readUInt32LE(8)).toBe(bytes.length - 12);
    expect(bytes.length % 2).toBe(0);
    expect(parseCommand(bytes)).toEqual({
      commandField: 0x8001,
      messageId: undefined,
      hasDataset: false,
      affectedSopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      affectedSopInstanceUid: '1.2.3',
    });
    expect(bytes.includes(Buffer.from('1.2.3\0'))).toBe(true);
    expect(bytes.includes(Buffer.from('odd '))).toBe(true);
  });

  it('keeps the error comment plain ASCII, without a backslash, at most 64 characters', () => {
    const bytes = encodeResponse({ requestField: 1, messageIdBeingRespondedTo: 1, status: 0xc000, errorComment: `é\\\n${'y'.repeat(80)}` });
    const comment = bytes.subarray(bytes.indexOf(Buffer.from('??'))).toString('latin1').trimEnd();
    expect(comment).toBe(`???${'y'.repeat(61)}`);
  });

  it('refuses an element that overruns the command set', () => {
    const bytes = encodeResponse({ requestField: 1, messageIdBeingRespondedTo: 1, status: 0 });
    expect(() => parseCommand(bytes.subarray(0, bytes.length - 1))).toThrow(/overruns the set/);
  });
});

import { describe, expect, it } from 'vitest';
import { encodeResponse } from './dimse-command.ts';
import { MessageAssembler, type DimseMessage } from './message-assembler.ts';

function pdv(options: { contextId: number; command: boolean; last: boolean; data: Buffer }): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(options.data.length + 2, 0);
  head[4] = options.contextId;
  head[5] = (options.command ? 1 : 0) | (options.last ? 2 : 0);
  return Buffer.concat([head, options.data]);
}

/** A command announcing a dataset: a response set with (0000,0800) patched to 0x0000. */
function commandWithDataset(): Buffer {
  const bytes = encodeResponse({ requestField: 0x0001, messageIdBeingRespondedTo: 1, status: 0 });
  bytes.writeUInt16LE(0x0000, bytes.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x08, 0x02, 0, 0, 0])) + 8);
  return bytes;
}

describe('MessageAssembler', () => {
  function assembler(maxDatasetBytes = 1000): { assembler: MessageAssembler; messages: DimseMessage[] } {
    const messages: DimseMessage[] = [];
    return { assembler: new MessageAssembler({ isAcceptedContext: (id) => id === 1, maxDatasetBytes, onMessage: (m) => messages.push(m) }), messages };
  }

  it('hands out a single-fragment dataset without copying', () => {
    const { assembler: a, messages } = assembler();
    a.push(pdv({ contextId: 1, command: true, last: true, data: commandWithDataset() }));
    const body = pdv({ contextId: 1, command: false, last: true, data: Buffer.from('dataset') });
    a.push(body);
    expect((messages[0]!.dataset as Buffer).buffer).toBe(body.buffer);
    expect(a.inProgress).toBe(false);
  });

  it('drops the fragments of a dataset above the limit and reports its size', () => {
    const { assembler: a, messages } = assembler(10);
    a.push(pdv({ contextId: 1, command: true, last: true, data: commandWithDataset() }));
    a.push(pdv({ contextId: 1, command: false, last: false, data: Buffer.alloc(8) }));
    a.push(pdv({ contextId: 1, command: false, last: false, data: Buffer.alloc(8) }));
    expect(a.inProgress).toBe(true);
    a.push(pdv({ contextId: 1, command: false, last: true, data: Buffer.alloc(8) }));
    expect(messages).toMatchObject([{ dataset: undefined, datasetBytes: 24, oversized: true }]);
  });

  it('refuses an empty P-DATA-TF, a PDV overrunning its PDU, and a command before the previous dataset ended', () => {
    expect(() => assembler().assembler.push(Buffer.alloc(0))).toThrow(/without any PDV/);
    const overrun = pdv({ contextId: 1, command: true, last: true, data: Buffer.alloc(4) });
    expect(() => assembler().assembler.push(overrun.subarray(0, overrun.length - 1))).toThrow(/does not fit/);
    const { assembler: a } = assembler();
    a.push(pdv({ contextId: 1, command: true, last: true, data: commandWithDataset() }));
    expect(() => a.push(pdv({ contextId: 1, command: true, last: true, data: commandWithDataset() }))).toThrow(/dataset is still expected/);
  });
});

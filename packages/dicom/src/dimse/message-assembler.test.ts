import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SpoolFile } from './dataset-spool.ts';
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

  it('spools a dataset past the memory it may use, from its first byte, and deletes the file of one discarded midway', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-assembler-'));
    try {
      const messages: DimseMessage[] = [];
      let budget = 10;
      const a = new MessageAssembler({
        isAcceptedContext: (id) => id === 1,
        maxDatasetBytes: 1000,
        onMessage: (m) => messages.push(m),
        spool: { dir, memoryBytes: () => budget, onBackpressure: () => undefined },
      });
      a.push(pdv({ contextId: 1, command: true, last: true, data: commandWithDataset() }));
      a.push(pdv({ contextId: 1, command: false, last: false, data: Buffer.from('12345678') }));
      a.push(pdv({ contextId: 1, command: false, last: true, data: Buffer.from('abcdefgh') }));
      const spooled = messages[0]!.dataset;
      expect(spooled).toBeInstanceOf(SpoolFile);
      const file = await (spooled as SpoolFile).finish();
      expect(file.bytes).toBe(16);
      expect((await readFile(file.path)).toString()).toBe('12345678abcdefgh');
      await (spooled as SpoolFile).discard();
      expect(existsSync(file.path)).toBe(false);

      // Under the budget: in memory. Then one cut off midway: its file goes, its fragments are let go.
      budget = 100;
      a.push(pdv({ contextId: 1, command: true, last: true, data: commandWithDataset() }));
      a.push(pdv({ contextId: 1, command: false, last: true, data: Buffer.alloc(50) }));
      expect(Buffer.isBuffer(messages[1]!.dataset)).toBe(true);
      a.push(pdv({ contextId: 1, command: true, last: true, data: commandWithDataset() }));
      a.push(pdv({ contextId: 1, command: false, last: false, data: Buffer.alloc(150) }));
      for (let i = 0; i < 50 && (await readdir(dir)).length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await readdir(dir)).toHaveLength(1);
      a.discard();
      expect(a.inProgress).toBe(false);
      for (let i = 0; i < 50 && (await readdir(dir)).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

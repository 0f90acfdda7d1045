import { afterEach, describe, expect, it, vi } from 'vitest';
import { associateAcOf, pDataPdu, pdvsOf, RawDimsePeer, rawPdu, requestCommand, responseOf } from './__fixtures__/raw-dimse-peer.ts';
import { inMemory, startTestDimseServer, type TestDimseServer } from './__fixtures__/test-dimse-server.ts';
import type { Pdu } from './pdu-reader.ts';

const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const VERIFICATION = '1.2.840.10008.1.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
const HTJ2K = '1.2.840.10008.1.2.4.203';

/** The command set of a response that came as one P-DATA-TF PDU with one command PDV. */
function singleCommand(pdu: Pdu | undefined): Buffer {
  expect(pdu?.type).toBe(0x04);
  const pdvs = pdvsOf(pdu!);
  expect(pdvs).toHaveLength(1);
  expect(pdvs[0]).toMatchObject({ command: true, last: true });
  return pdvs[0]!.data;
}

describe('DimseServer upper layer and DIMSE, driven by a raw peer', () => {
  let server: TestDimseServer;
  let peer: RawDimsePeer | undefined;

  async function connect(overrides: Parameters<typeof startTestDimseServer>[0] = {}): Promise<RawDimsePeer> {
    server = await startTestDimseServer(overrides);
    peer = await RawDimsePeer.connect(server.port);
    return peer;
  }

  async function associated(overrides: Parameters<typeof startTestDimseServer>[0] = {}): Promise<RawDimsePeer> {
    const raw = await connect(overrides);
    const ac = await raw.associate({
      contexts: [
        { id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] },
        { id: 3, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
      ],
    });
    expect(ac?.type).toBe(0x02);
    return raw;
  }

  function sendStore(raw: RawDimsePeer, options: { messageId: number; contextId?: number; dataset: Buffer; sopInstanceUid?: string }): void {
    const command = requestCommand({ commandField: 0x0001, messageId: options.messageId, sopClassUid: CT_STORAGE, sopInstanceUid: options.sopInstanceUid, hasDataset: true });
    raw.send(pDataPdu([{ contextId: options.contextId ?? 1, command: true, last: true, data: command }]));
    raw.send(pDataPdu([{ contextId: options.contextId ?? 1, command: false, last: true, data: options.dataset }]));
  }

  afterEach(async () => {
    peer?.destroy();
    peer = undefined;
    await server.server.close();
  });

  it('negotiates each presentation context on its own, preferring the proposer\'s order, and answers the user information', async () => {
    const raw = await connect({ maxPduLength: 65536 });
    const ac = await raw.associate({
      asyncOps: 5,
      contexts: [
        { id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: ['1.2.3.unknown', JPEG_BASELINE, EXPLICIT_LE] },
        { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.1.77.1.6', transferSyntaxes: [HTJ2K] },
        { id: 5, abstractSyntax: '1.2.840.10008.5.1.4.1.2.1.1', transferSyntaxes: [EXPLICIT_LE] }, // Patient Root Q/R FIND
        { id: 7, abstractSyntax: CT_STORAGE, transferSyntaxes: ['1.2.840.10008.1.2.4.100'] }, // MPEG2
        { id: 9, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_LE] },
        { id: 11, abstractSyntax: '1.3.6.1.4.1.9590.100.1.2.1', transferSyntaxes: [EXPLICIT_LE] }, // private storage
      ],
    });
    expect(associateAcOf(ac!)).toEqual({
      calledAe: 'TESSERA',
      maxPduLength: 65536,
      implementationClassUid: '1.2.826.0.1.3680043.10.1515.1',
      implementationVersionName: 'TESSERA_010',
      asyncOps: [1, 1], // one operation at a time, whatever the proposal
      contexts: [
        { id: 1, result: 0, transferSyntax: JPEG_BASELINE },
        { id: 3, result: 0, transferSyntax: HTJ2K },
        { id: 5, result: 3, transferSyntax: EXPLICIT_LE },
        { id: 7, result: 4, transferSyntax: '1.2.840.10008.1.2.4.100' },
        { id: 9, result: 0, transferSyntax: IMPLICIT_LE },
        { id: 11, result: 3, transferSyntax: EXPLICIT_LE },
      ],
    });
  });

  it('rejects a wrong application context or protocol version without asking onAssociate', async () => {
    const onAssociate = vi.fn(() => ({ accept: true as const }));
    const raw = await connect({ onAssociate });
    const rj = await raw.associate({ contexts: [], applicationContext: '1.2.3' });
    expect(rj?.type).toBe(0x03);
    expect([...rj!.body]).toEqual([0, 1, 1, 2]); // permanent, service-user, application context not supported
    const other = await RawDimsePeer.connect(server.port);
    const rj2 = await other.associate({ contexts: [], protocolVersion: 2 });
    expect([...rj2!.body]).toEqual([0, 1, 2, 2]); // permanent, provider (ACSE), protocol version not supported
    other.destroy();
    expect(onAssociate).not.toHaveBeenCalled();
  });

  it('sends the A-ASSOCIATE-RJ fields onAssociate chose, and transient-rejects when onAssociate throws', async () => {
    const raw = await connect({
      onAssociate: (info) => {
        if (info.callingAe === 'BROKEN') throw new Error('registry down');
        return { accept: false, reason: 'busy', result: 2, source: 3, diagnostic: 1 };
      },
    });
    expect([...(await raw.associate({ contexts: [] }))!.body]).toEqual([0, 2, 3, 1]);
    const broken = await RawDimsePeer.connect(server.port);
    expect([...(await broken.associate({ contexts: [], callingAe: 'BROKEN' }))!.body]).toEqual([0, 2, 1, 1]);
    broken.destroy();
    expect(server.logText('error')).toMatch(/onAssociate failed, rejecting \(transient\): Error: registry down/);
  });

  it('answers C-STORE in one PDU with the status, message ID and UIDs, and hands onStore one contiguous dataset', async () => {
    const raw = await associated();
    const dataset = Buffer.from('0123456789abcdef'.repeat(100));
    const command = requestCommand({ commandField: 0x0001, messageId: 7, sopClassUid: CT_STORAGE, sopInstanceUid: '1.2.3.4.5', hasDataset: true });
    // Command and dataset both split in several PDVs, some sharing a PDU.
    raw.send(pDataPdu([{ contextId: 1, command: true, last: false, data: command.subarray(0, 20) }]));
    raw.send(
      pDataPdu([
        { contextId: 1, command: true, last: true, data: command.subarray(20) },
        { contextId: 1, command: false, last: false, data: dataset.subarray(0, 700) },
      ]),
    );
    raw.send(pDataPdu([{ contextId: 1, command: false, last: false, data: dataset.subarray(700, 701) }]));
    raw.send(pDataPdu([{ contextId: 1, command: false, last: true, data: dataset.subarray(701) }]));
    expect(responseOf(singleCommand(await raw.nextPdu()))).toEqual({
      commandField: 0x8001,
      respondingTo: 7,
      status: 0,
      errorComment: undefined,
      sopInstanceUid: '1.2.3.4.5',
    });
    expect(server.stores).toHaveLength(1);
    expect(server.stores[0]).toMatchObject({ messageId: 7, sopClassUid: CT_STORAGE, sopInstanceUid: '1.2.3.4.5', transferSyntaxUid: EXPLICIT_LE });
    expect(inMemory(server.stores[0]!.dataset).equals(dataset)).toBe(true);
  });

  it('answers C-ECHO on the verification context', async () => {
    const raw = await associated();
    raw.send(pDataPdu([{ contextId: 3, command: true, last: true, data: requestCommand({ commandField: 0x0030, messageId: 2, sopClassUid: VERIFICATION, hasDataset: false }) }]));
    const pdu = await raw.nextPdu();
    expect(pdvsOf(pdu!)[0]!.contextId).toBe(3);
    expect(responseOf(singleCommand(pdu))).toMatchObject({ commandField: 0x8030, respondingTo: 2, status: 0 });
  });

  it('answers an unsupported DIMSE command with 0x0211, discarding its dataset, and goes on', async () => {
    const raw = await associated();
    const find = requestCommand({ commandField: 0x0020, messageId: 3, sopClassUid: CT_STORAGE, hasDataset: true });
    raw.send(pDataPdu([{ contextId: 1, command: true, last: true, data: find }, { contextId: 1, command: false, last: true, data: Buffer.alloc(20) }]));
    expect(responseOf(singleCommand(await raw.nextPdu()))).toMatchObject({ commandField: 0x8020, respondingTo: 3, status: 0x0211 });
    sendStore(raw, { messageId: 4, dataset: Buffer.alloc(10), sopInstanceUid: '1.2.3' });
    expect(responseOf(singleCommand(await raw.nextPdu()))).toMatchObject({ respondingTo: 4, status: 0 });
    expect(server.stores).toHaveLength(1);
  });

  it('refuses a C-STORE whose SOP class is not its context\'s, or that lacks its instance UID, without calling onStore', async () => {
    const raw = await associated();
    const onVerification = requestCommand({ commandField: 0x0001, messageId: 5, sopClassUid: CT_STORAGE, sopInstanceUid: '1.2', hasDataset: true });
    raw.send(pDataPdu([{ contextId: 3, command: true, last: true, data: onVerification }, { contextId: 3, command: false, last: true, data: Buffer.alloc(4) }]));
    expect(responseOf(singleCommand(await raw.nextPdu()))).toMatchObject({ respondingTo: 5, status: 0x0122 });
    sendStore(raw, { messageId: 6, dataset: Buffer.alloc(4) });
    expect(responseOf(singleCommand(await raw.nextPdu()))).toMatchObject({ respondingTo: 6, status: 0xc000 });
    expect(server.stores).toHaveLength(0);
  });

  it('cuts the error comment to 64 characters', async () => {
    const raw = await associated({ onStore: async () => ({ status: 0xa900, errorComment: `${'x'.repeat(70)}\\tail` }) });
    sendStore(raw, { messageId: 1, dataset: Buffer.alloc(4), sopInstanceUid: '1.2' });
    expect(responseOf(singleCommand(await raw.nextPdu())).errorComment).toBe('x'.repeat(64));
  });

  it('sends each response only after onStore settled, and the A-RELEASE-RP after every response', async () => {
    const releases: Array<() => void> = [];
    const raw = await associated({ onStore: () => new Promise((resolve) => releases.push(() => resolve({ status: 0 }))) });
    sendStore(raw, { messageId: 1, dataset: Buffer.alloc(4), sopInstanceUid: '1.1' });
    sendStore(raw, { messageId: 2, dataset: Buffer.alloc(4), sopInstanceUid: '1.2' });
    raw.send(rawPdu({ type: 0x05, body: Buffer.alloc(4) }));
    const first = raw.nextPdu();
    await vi.waitFor(() => expect(releases).toHaveLength(1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.stores).toHaveLength(1); // the second waits for the first
    releases[0]!();
    expect(responseOf(singleCommand(await first)).respondingTo).toBe(1);
    await vi.waitFor(() => expect(releases).toHaveLength(2));
    releases[1]!();
    expect(responseOf(singleCommand(await raw.nextPdu())).respondingTo).toBe(2);
    expect((await raw.nextPdu())?.type).toBe(0x06);
    await raw.closed;
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'released' }]));
  });

  it('splits a response into several PDUs when the peer accepts only tiny PDUs', async () => {
    const raw = await connect();
    await raw.associate({ contexts: [{ id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] }], maxPduLength: 40 });
    sendStore(raw, { messageId: 9, dataset: Buffer.alloc(4), sopInstanceUid: '1.2.3.4.5.6.7.8.9' });
    const parts: Buffer[] = [];
    for (;;) {
      const pdu = await raw.nextPdu();
      expect(pdu!.body.length).toBeLessThanOrEqual(40);
      const pdv = pdvsOf(pdu!)[0]!;
      parts.push(pdv.data);
      if (pdv.last) break;
    }
    expect(parts.length).toBeGreaterThan(1);
    expect(responseOf(Buffer.concat(parts))).toMatchObject({ respondingTo: 9, status: 0, sopInstanceUid: '1.2.3.4.5.6.7.8.9' });
  });

  it('aborts open associations on close() and resolves once they are gone', async () => {
    const raw = await associated();
    await server.server.close();
    expect((await raw.nextPdu())?.type).toBe(0x07);
    await raw.closed;
    expect(server.ends).toMatchObject([{ how: 'aborted' }]);
  });
});

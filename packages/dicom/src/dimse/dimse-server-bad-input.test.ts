import { afterEach, describe, expect, it, vi } from 'vitest';
import { skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { runDcmtk } from './__fixtures__/dcmtk-tools.ts';
import { associateRqPdu, pDataPdu, RawDimsePeer, rawPdu, requestCommand } from './__fixtures__/raw-dimse-peer.ts';
import { startTestDimseServer, type TestDimseServer } from './__fixtures__/test-dimse-server.ts';

const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const CT_CONTEXT = { id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] };
const A_ABORT = 0x07;

/** Every case ends the same way: a real SCU still gets its echo answered. */
async function expectStillServing(server: TestDimseServer): Promise<void> {
  const echo = await runDcmtk('echoscu', ['-aec', 'TESSERA', '127.0.0.1', String(server.port)]);
  expect(echo.code, echo.output).toBe(0);
}

function storeCommand(messageId = 1): Buffer {
  return requestCommand({ commandField: 0x0001, messageId, sopClassUid: CT_STORAGE, sopInstanceUid: '1.2.3.4', hasDataset: true });
}

describe.skipIf(skipDicomTools)('DimseServer on bad input', () => {
  let server: TestDimseServer;
  let peer: RawDimsePeer | undefined;

  async function connect(overrides: Parameters<typeof startTestDimseServer>[0] = {}): Promise<RawDimsePeer> {
    server = await startTestDimseServer(overrides);
    peer = await RawDimsePeer.connect(server.port);
    return peer;
  }

  async function associated(): Promise<RawDimsePeer> {
    const raw = await connect();
    const answer = await raw.associate({ contexts: [CT_CONTEXT] });
    expect(answer?.type).toBe(0x02);
    return raw;
  }

  /** The server's A-ABORT, then the connection closing; returns the abort's reason byte. */
  async function expectAbort(raw: RawDimsePeer): Promise<number> {
    const pdu = await raw.nextPdu();
    expect(pdu?.type).toBe(A_ABORT);
    await raw.closed;
    return pdu!.body[3]!;
  }

  afterEach(async () => {
    peer?.destroy();
    peer = undefined;
    await server.server.close();
  });

  it('aborts on garbage bytes (an HTTP request) and logs the peer', async () => {
    const raw = await connect();
    raw.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await expectAbort(raw)).toBe(1); // unrecognized PDU
    expect(server.logText('warn')).toMatch(/from 127\.0\.0\.1:\d+: unknown PDU type 0x47 before association; sending A-ABORT/);
    await expectStillServing(server);
  });

  it('aborts on P-DATA before association', async () => {
    const raw = await connect();
    raw.send(pDataPdu([{ contextId: 1, command: true, last: true, data: storeCommand() }]));
    expect(await expectAbort(raw)).toBe(2); // unexpected PDU
    expect(server.logText('warn')).toMatch(/unexpected P-DATA-TF before association/);
    await expectStillServing(server);
  });

  it('tolerates a truncated A-ASSOCIATE-RQ followed by close', async () => {
    const raw = await connect();
    raw.send(associateRqPdu({ contexts: [CT_CONTEXT] }).subarray(0, 40));
    raw.end();
    await raw.closed;
    await vi.waitFor(() => expect(server.logText('warn')).toMatch(/closed by peer .* in the middle of a PDU/));
    await expectStillServing(server);
    // Only the echo's association ended (released); the server records its end just after echoscu has its release.
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'released' }]));
  });

  it('aborts on an unknown PDU type after association', async () => {
    const raw = await associated();
    raw.send(rawPdu({ type: 0x09, body: Buffer.alloc(4) }));
    expect(await expectAbort(raw)).toBe(1);
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'aborted' }]));
    await expectStillServing(server);
  });

  it('aborts on a P-DATA-TF longer than the max PDU length we advertised, without waiting for its body', async () => {
    const raw = await associated();
    raw.send(rawPdu({ type: 0x04, body: Buffer.alloc(0), length: 0x7fffffff }));
    expect(await expectAbort(raw)).toBe(6); // invalid PDU parameter value
    expect(server.logText('warn')).toMatch(/P-DATA-TF of length 2147483647, above the limit of 1048576/);
    await expectStillServing(server);
  });

  it('aborts on an oversized A-ASSOCIATE-RQ', async () => {
    const raw = await connect();
    raw.send(rawPdu({ type: 0x01, body: Buffer.alloc(0), length: 64 * 1024 * 1024 }));
    expect(await expectAbort(raw)).toBe(6);
    await expectStillServing(server);
  });

  it('aborts on an A-ASSOCIATE-RQ whose items overrun it', async () => {
    const raw = await connect();
    const rq = associateRqPdu({ contexts: [CT_CONTEXT] });
    rq.writeUInt16BE(0xffff, 6 + 68 + 2); // the application context item claims 64 KiB
    raw.send(rq);
    expect(await expectAbort(raw)).toBe(6);
    expect(server.logText('warn')).toMatch(/overruns its parent/);
    await expectStillServing(server);
  });

  it.each([
    ['a refused context', 3],
    ['a context never proposed', 5],
  ])('aborts on a PDV on %s and does not call onStore', async (_, contextId) => {
    const raw = await connect();
    await raw.associate({ contexts: [CT_CONTEXT, { id: 3, abstractSyntax: '1.2.840.10008.5.1.4.1.2.1.1', transferSyntaxes: [EXPLICIT_LE] }] });
    raw.send(pDataPdu([{ contextId: 1, command: true, last: true, data: storeCommand() }]));
    raw.send(pDataPdu([{ contextId, command: false, last: true, data: Buffer.alloc(100) }]));
    expect(await expectAbort(raw)).toBe(5); // unexpected PDU parameter
    expect(server.logText('warn')).toMatch(new RegExp(`PDV on presentation context ${contextId}, which was not accepted`));
    expect(server.stores).toHaveLength(0);
    await expectStillServing(server);
  });

  it('aborts on a dataset fragment with no command before it', async () => {
    const raw = await associated();
    raw.send(pDataPdu([{ contextId: 1, command: false, last: true, data: Buffer.alloc(10) }]));
    expect(await expectAbort(raw)).toBe(5);
    await expectStillServing(server);
  });

  it('aborts on a command set without a command field', async () => {
    const raw = await associated();
    raw.send(pDataPdu([{ contextId: 1, command: true, last: true, data: Buffer.from([0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]) }]));
    expect(await expectAbort(raw)).toBe(6);
    expect(server.logText('warn')).toMatch(/lacks \(0000,0100\) Command Field/);
    await expectStillServing(server);
  });

  it('never calls onStore for a dataset cut off by the socket closing', async () => {
    const raw = await associated();
    raw.send(pDataPdu([{ contextId: 1, command: true, last: true, data: storeCommand() }]));
    raw.send(pDataPdu([{ contextId: 1, command: false, last: false, data: Buffer.alloc(1000) }]));
    raw.send(pDataPdu([{ contextId: 1, command: false, last: true, data: Buffer.alloc(1000) }]).subarray(0, 500));
    raw.end();
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'closed' }]));
    expect(server.stores).toHaveLength(0);
    expect(server.logText('warn')).toMatch(/closed by peer without release or abort in the middle of a PDU/);
    await expectStillServing(server);
  });

  it('never calls onStore when the peer resets the connection between dataset PDUs', async () => {
    const raw = await associated();
    raw.send(pDataPdu([{ contextId: 1, command: true, last: true, data: storeCommand() }]));
    raw.send(pDataPdu([{ contextId: 1, command: false, last: false, data: Buffer.alloc(1000) }]));
    await vi.waitFor(() => expect(server.logs.length).toBeGreaterThan(1)); // the AC log line at least
    raw.destroy();
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'closed' }]));
    expect(server.stores).toHaveLength(0);
    expect(server.logText('warn')).toMatch(/closed by peer without release or abort in the middle of a DIMSE message/);
    await expectStillServing(server);
  });

  it('closes quietly when the peer aborts', async () => {
    const raw = await associated();
    raw.send(rawPdu({ type: A_ABORT, body: Buffer.from([0, 0, 0, 0]) }));
    await raw.closed;
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'aborted' }]));
    expect(server.logText('info')).toMatch(/peer sent A-ABORT/);
    await expectStillServing(server);
  });

  it('closes a connection that never sends an A-ASSOCIATE-RQ, and aborts an idle association', async () => {
    const silent = await connect({ idleTimeoutMs: 200 });
    await silent.closed;
    expect(server.logText('warn')).toMatch(/nothing received for 200 ms before A-ASSOCIATE-RQ; closing/);
    const idle = await RawDimsePeer.connect(server.port);
    peer = idle;
    expect((await idle.associate({ contexts: [CT_CONTEXT] }))?.type).toBe(0x02);
    expect((await idle.nextPdu())?.type).toBe(A_ABORT);
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'aborted' }]));
    await expectStillServing(server);
  });
});

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { writeSampleCt } from '../samples/sample-ct.ts';
import { datasetOfFile, runDcmtk } from './__fixtures__/dcmtk-tools.ts';
import { pDataPdu, RawDimsePeer, requestCommand } from './__fixtures__/raw-dimse-peer.ts';
import { startTestDimseServer, type TestDimseServer } from './__fixtures__/test-dimse-server.ts';

const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const VERIFICATION = '1.2.840.10008.1.1';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const MIB = 1024 * 1024;

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(skipDicomTools)('DimseServer limits: spooling, association cap, timeouts', () => {
  let dir: string;
  let spoolDir: string;
  let largeFile: string;
  let running: TestDimseServer | undefined;
  const peers: RawDimsePeer[] = [];

  async function start(overrides: Parameters<typeof startTestDimseServer>[0] = {}): Promise<TestDimseServer> {
    running = await startTestDimseServer({ spoolDir, associationMemoryBytes: MIB, ...overrides });
    return running;
  }

  async function rawPeer(server: TestDimseServer): Promise<RawDimsePeer> {
    const peer = await RawDimsePeer.connect(server.port);
    peers.push(peer);
    return peer;
  }

  async function associated(server: TestDimseServer): Promise<RawDimsePeer> {
    const peer = await rawPeer(server);
    const ac = await peer.associate({ contexts: [{ id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] }] });
    expect(ac?.type).toBe(0x02);
    return peer;
  }

  /** Sends a C-STORE-RQ and `bytes` of its dataset in 64 KiB PDVs, the last one not marked last. */
  function sendPartialStore(peer: RawDimsePeer, bytes: number): void {
    peer.send(pDataPdu([{ contextId: 1, command: true, last: true, data: requestCommand({ commandField: 1, messageId: 1, sopClassUid: CT_STORAGE, sopInstanceUid: '1.2.3.4', hasDataset: true }) }]));
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let sent = 0; sent < bytes; sent += chunk.length) peer.send(pDataPdu([{ contextId: 1, command: false, last: false, data: chunk }]));
  }

  const spoolFiles = async (): Promise<string[]> => (await readdir(spoolDir)).filter((n) => n.endsWith('.spool'));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dimse-limits-'));
    // One slice of 3000 x 3000 16-bit pixels: an 18 MB instance, 18 times the memory allowed below.
    largeFile = (await writeSampleCt(join(dir, 'large'), { slices: 1, size: 3000 })).files[0]!;
  });

  afterEach(async () => {
    for (const peer of peers.splice(0)) peer.destroy();
    await running?.server.close();
    running = undefined;
    await rm(spoolDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    spoolDir = await mkdtemp(join(tmpdir(), 'tessera-dimse-spool-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('spools a dataset larger than the memory allowed to a file and hands it over byte for byte (storescu)', async () => {
    const seen: Array<{ path: string; bytes: number; sha: string; inSpoolDir: boolean }> = [];
    const server = await start({
      onStore: async (req) => {
        if (Buffer.isBuffer(req.dataset)) throw new Error('expected a spooled dataset');
        seen.push({ path: req.dataset.path, bytes: req.dataset.bytes, sha: sha256(await readFile(req.dataset.path)), inSpoolDir: req.dataset.path.startsWith(spoolDir) });
        return { status: 0 };
      },
    });
    const run = await runDcmtk('storescu', ['-aec', 'TESSERA', '-xe', '127.0.0.1', String(server.port), largeFile]);
    expect(run.code, run.output).toBe(0);
    const expected = await datasetOfFile(largeFile);
    expect(expected.length).toBeGreaterThan(17 * MIB);
    expect(seen).toEqual([{ path: expect.stringMatching(/dimse-.*\.spool$/), bytes: expected.length, sha: sha256(expected), inSpoolDir: true }]);
    // Deleted once onStore settled.
    expect(existsSync(seen[0]!.path)).toBe(false);
    expect(await spoolFiles()).toEqual([]);
  });

  it('keeps a dataset under the limit in memory', async () => {
    const server = await start({ associationMemoryBytes: 64 * MIB });
    const run = await runDcmtk('storescu', ['-aec', 'TESSERA', '-xe', '127.0.0.1', String(server.port), largeFile]);
    expect(run.code, run.output).toBe(0);
    expect(Buffer.isBuffer(server.stores[0]!.dataset)).toBe(true);
    expect(sha256(server.stores[0]!.dataset as Buffer)).toBe(sha256(await datasetOfFile(largeFile)));
  });

  it('rejects an association past the limit with A-ASSOCIATE-RJ transient, local limit exceeded, which echoscu reports', async () => {
    const server = await start({ maxAssociations: 1 });
    await associated(server);
    expect(server.server.openAssociations).toBe(1);
    const run = await runDcmtk('echoscu', ['-aec', 'TESSERA', '127.0.0.1', String(server.port)]);
    expect(run.code).not.toBe(0);
    expect(run.output).toMatch(/Rejected Transient/i);
    expect(run.output).toMatch(/Local Limit Exceeded/i);
    expect(server.logText('warn')).toMatch(/rejected \(result 2, source 3, diagnostic 2\): limit of 1 concurrent associations reached/);
    // The raw peer's RJ body: reserved, result 2 (transient), source 3 (provider, presentation), reason 2 (local limit exceeded).
    const third = await rawPeer(server);
    const rj = await third.associate({ contexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_LE] }] });
    expect(rj?.type).toBe(0x03);
    expect([...rj!.body]).toEqual([0, 2, 3, 2]);
    // Once the first one ends, a slot is free again.
    peers[0]!.destroy();
    await waitFor('the slot to be given back', () => server.server.openAssociations === 0);
    const again = await runDcmtk('echoscu', ['-aec', 'TESSERA', '127.0.0.1', String(server.port)]);
    expect(again.code, again.output).toBe(0);
  });

  it('deletes the spool file of a dataset whose sender aborts, or stalls until the idle timeout', async () => {
    const server = await start({ idleTimeoutMs: 500 });
    const aborting = await associated(server);
    sendPartialStore(aborting, 3 * MIB);
    await waitFor('a spool file', async () => (await spoolFiles()).length === 1);
    aborting.send(Buffer.from([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    await aborting.closed;
    await waitFor('the spool file to go', async () => (await spoolFiles()).length === 0);

    const stalling = await associated(server);
    sendPartialStore(stalling, 3 * MIB);
    await waitFor('a spool file', async () => (await spoolFiles()).length === 1);
    const abort = await stalling.nextPdu();
    expect(abort?.type).toBe(0x07);
    await stalling.closed;
    await waitFor('the spool file to go', async () => (await spoolFiles()).length === 0);
    expect(server.logText('warn')).toMatch(/nothing received for 500 ms; sending A-ABORT/);
    expect(server.stores).toHaveLength(0);
    expect(server.server.openAssociations).toBe(0);
  });

  it('closes a connection that sends no A-ASSOCIATE-RQ, or only part of one, within the association timeout', async () => {
    const server = await start({ associateTimeoutMs: 300 });
    const silent = await rawPeer(server);
    const partial = await rawPeer(server);
    partial.send(Buffer.from([0x01, 0, 0, 0, 0x01, 0x00, 0, 1]));
    // A trickle of bytes does not keep it open: the whole RQ must be in within the timeout.
    const trickle = setInterval(() => partial.send(Buffer.from([0x20])), 100);
    try {
      const started = Date.now();
      await Promise.all([silent.closed, partial.closed]);
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      clearInterval(trickle);
    }
    expect(server.logText('warn')).toMatch(/no A-ASSOCIATE-RQ within 300 ms of connecting; closing/);
    expect(server.logText('warn')).toMatch(/only \d+ bytes of an A-ASSOCIATE-RQ within 300 ms of connecting; closing/);
  });

  it('deletes spool files a previous run left behind when it starts listening', async () => {
    await writeFile(join(spoolDir, 'dimse-0000-left-over.spool'), 'partial');
    await writeFile(join(spoolDir, 'not-ours.txt'), 'kept');
    const server = await start();
    expect(await readdir(spoolDir)).toEqual(['not-ours.txt']);
    expect(server.logText('warn')).toMatch(/deleted 1 partial dataset file/);
  });
});

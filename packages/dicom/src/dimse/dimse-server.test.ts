import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { TesseraError } from '@tessera/model';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { pydicomFile, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { datasetOfFile, runDcmtk, storescuNormalizedCopy, uidsOfFile } from './__fixtures__/dcmtk-tools.ts';
import { inMemory, startTestDimseServer, type TestDimseServer } from './__fixtures__/test-dimse-server.ts';

const IMPLICIT_LE = '1.2.840.10008.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const EXPLICIT_BE = '1.2.840.10008.1.2.2';
const DEFLATED_LE = '1.2.840.10008.1.2.1.99';
const UNCOMPRESSED_FILES = ['CT_small.dcm', 'MR_small.dcm', 'MR_small_implicit.dcm', 'MR_small_bigendian.dcm', 'rtplan.dcm'];

describe.skipIf(skipDicomTools)('DimseServer with dcmtk echoscu/storescu', () => {
  let dir: string;
  let running: TestDimseServer | undefined;
  /** storescu re-encodes what it sends; these copies are already in that form (see storescuNormalizedCopy). */
  const normalized = (name: string): string => join(dir, name);

  async function start(overrides: Parameters<typeof startTestDimseServer>[0] = {}): Promise<TestDimseServer> {
    running = await startTestDimseServer(overrides);
    return running;
  }

  /** storescu takes its options, then peer and port, then the files. */
  async function storescu(server: TestDimseServer, options: string[], files: string[]): ReturnType<typeof runDcmtk> {
    return runDcmtk('storescu', ['-aec', 'TESSERA', ...options, '127.0.0.1', String(server.port), ...files]);
  }

  async function expectStoredAsIs(server: TestDimseServer, file: string, index: number): Promise<void> {
    const uids = await uidsOfFile(file);
    const store = server.stores[index]!;
    expect(store.sopClassUid).toBe(uids.sopClassUid);
    expect(store.sopInstanceUid).toBe(uids.sopInstanceUid);
    expect(store.transferSyntaxUid).toBe(uids.transferSyntaxUid);
    expect(inMemory(store.dataset).equals(await datasetOfFile(file))).toBe(true);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dimse-'));
    const names = [...UNCOMPRESSED_FILES, 'waveform_ecg.dcm', 'image_dfl.dcm', 'JPEG2000.dcm', 'MR_small_RLE.dcm', 'MR_small_jpeg_ls_lossless.dcm', 'JPEG-lossy.dcm'];
    await Promise.all(names.map((name) => storescuNormalizedCopy({ file: pydicomFile(name), dir })));
  });

  afterEach(async () => {
    await running?.server.close();
    running = undefined;
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('answers echoscu and reports the association released, with the context onAssociate gave', async () => {
    const seen: unknown[] = [];
    const server = await start({
      onAssociate: (info) => {
        seen.push(info);
        return { accept: true, context: { tenant: 'a' } };
      },
    });
    const run = await runDcmtk('echoscu', ['-aet', 'ECHOER', '-aec', 'TESSERA', '127.0.0.1', String(server.port)]);
    expect(run.code, run.output).toBe(0);
    expect(seen).toEqual([expect.objectContaining({ callingAe: 'ECHOER', calledAe: 'TESSERA', remoteAddress: '127.0.0.1' })]);
    await vi.waitFor(() => expect(server.ends).toHaveLength(1));
    expect(server.ends[0]).toMatchObject({ how: 'released', info: { callingAe: 'ECHOER', context: { tenant: 'a' } } });
  });

  it.each([
    ['-xi', IMPLICIT_LE],
    ['-xe', EXPLICIT_LE],
    ['-xb', EXPLICIT_BE],
  ])('stores uncompressed files proposed with storescu %s on %s', async (flag, transferSyntax) => {
    const server = await start();
    const files = UNCOMPRESSED_FILES.map(normalized);
    // +C: one context per SOP class listing every syntax, so the server's pick (the first it supports) decides.
    const run = await storescu(server, [flag, '+C'], files);
    expect(run.code, run.output).toBe(0);
    expect(server.stores).toHaveLength(files.length);
    for (const [index, file] of files.entries()) {
      const uids = await uidsOfFile(file);
      expect(server.stores[index]).toMatchObject({ sopClassUid: uids.sopClassUid, sopInstanceUid: uids.sopInstanceUid, transferSyntaxUid: transferSyntax });
      // Bytes are comparable only where storescu did not have to convert.
      if (uids.transferSyntaxUid === transferSyntax) await expectStoredAsIs(server, file, index);
    }
    expect(new Set(server.stores.map((store) => store.association.id)).size).toBe(1);
  });

  it('stores deflated datasets as received (storescu -xd)', async () => {
    const server = await start();
    const files = [normalized('image_dfl.dcm'), normalized('CT_small.dcm')];
    const run = await storescu(server, ['-xd'], files);
    expect(run.code, run.output).toBe(0);
    expect(server.stores.map((store) => store.transferSyntaxUid)).toEqual([DEFLATED_LE, DEFLATED_LE]);
    // storescu deflates anew, so the deflated bytes may differ; what they inflate to may not.
    expect(inflateRawSync(inMemory(server.stores[0]!.dataset)).equals(inflateRawSync(await datasetOfFile(files[0]!)))).toBe(true);
    expect(inflateRawSync(inMemory(server.stores[1]!.dataset)).equals(await datasetOfFile(files[1]!))).toBe(true);
  });

  it.each([
    ['-xw', 'JPEG2000.dcm'],
    ['-xr', 'MR_small_RLE.dcm'],
    ['-xt', 'MR_small_jpeg_ls_lossless.dcm'],
    ['-xx', 'JPEG-lossy.dcm'],
  ])('stores a compressed file sent in its own transfer syntax (storescu %s -R %s) byte for byte', async (flag, name) => {
    const server = await start();
    const run = await storescu(server, [flag, '-R'], [normalized(name)]);
    expect(run.code, run.output).toBe(0);
    expect(server.stores).toHaveLength(1);
    await expectStoredAsIs(server, normalized(name), 0);
  });

  it('reassembles a dataset fragmented over many PDUs when advertising a small max PDU length', async () => {
    const server = await start({ maxPduLength: 4096 });
    const run = await storescu(server, ['-xe'], [normalized('CT_small.dcm')]);
    expect(run.code, run.output).toBe(0);
    await expectStoredAsIs(server, normalized('CT_small.dcm'), 0);
  });

  it('reassembles a dataset larger than the PDUs storescu sends (waveform_ecg.dcm, 290 KB)', async () => {
    const server = await start();
    const run = await storescu(server, ['-R'], [normalized('waveform_ecg.dcm')]);
    expect(run.code, run.output).toBe(0);
    await expectStoredAsIs(server, normalized('waveform_ecg.dcm'), 0);
  });

  it('reports an association storescu aborts instead of releasing as aborted, its stores done', async () => {
    const server = await start();
    const run = await storescu(server, ['--abort', '-xe'], [normalized('CT_small.dcm')]);
    expect(run.code, run.output).toBe(0);
    expect(server.stores).toHaveLength(1);
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'aborted' }]));
  });

  it('refuses an association onAssociate rejects and keeps serving others', async () => {
    const server = await start({
      onAssociate: (info) => (info.calledAe === 'TESSERA' ? { accept: true } : { accept: false, reason: `unknown called AE ${info.calledAe}` }),
    });
    const refused = await runDcmtk('storescu', ['-aec', 'NOT_US', '127.0.0.1', String(server.port), normalized('CT_small.dcm')]);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toMatch(/Association Rejected/i);
    expect(refused.output).toMatch(/Called AE Title Not Recognized/i);
    expect(server.logText('info')).toMatch(/rejected .*unknown called AE NOT_US/);
    const echo = await runDcmtk('echoscu', ['-aec', 'TESSERA', '127.0.0.1', String(server.port)]);
    expect(echo.code, echo.output).toBe(0);
    expect(server.stores).toHaveLength(0);
    await vi.waitFor(() => expect(server.ends).toHaveLength(1)); // the refused one never counts
  });

  it('sends the failure status and comment onStore returns, and the association goes on', async () => {
    const server = await start({
      onStore: async (req) => (req.sopClassUid.endsWith('.1.2') ? { status: 0xa900, errorComment: 'CT refused by test' } : { status: 0 }),
    });
    const halted = await storescu(server, ['-v', '-xe'], [normalized('CT_small.dcm')]);
    expect(halted.code).not.toBe(0);
    expect(halted.output).toMatch(/Received Store Response \(Error: DataSetDoesNotMatchSOPClass\)/);
    const run = await storescu(server, ['-nh', '-d', '-xe'], [normalized('CT_small.dcm'), normalized('MR_small.dcm')]);
    expect(run.output).toMatch(/DIMSE Status\s*: 0xa900/);
    expect(run.output).toMatch(/\(0000,0902\) LO \[CT refused by test\]/);
    expect(run.output).toMatch(/DIMSE Status\s*: 0x0000/);
    expect(server.stores).toHaveLength(3);
    await vi.waitFor(() => expect(server.ends.map((end) => end.how)).toEqual(['released', 'released']));
  });

  it('answers 0xA700 when onStore throws, 0xC000 when it throws a user TesseraError, with the message', async () => {
    const server = await start({
      onStore: async (req) => {
        if (req.sopClassUid.endsWith('.1.2')) throw new Error('disk on fire');
        throw new TesseraError('TESSERA_INVALID_DICOM', 'pixel data truncated');
      },
    });
    const run = await storescu(server, ['-nh', '-d', '-xe'], [normalized('CT_small.dcm'), normalized('MR_small.dcm')]);
    expect(run.output).toMatch(/DIMSE Status\s*: 0xa700/);
    expect(run.output).toMatch(/\(0000,0902\) LO \[disk on fire\]/);
    expect(run.output).toMatch(/DIMSE Status\s*: 0xc000/);
    expect(run.output).toMatch(/\(0000,0902\) LO \[pixel data truncated\]/);
    expect(server.logText('error')).toContain('disk on fire');
    expect(server.logText('error')).toContain('pixel data truncated');
  });

  it('refuses a dataset above maxDatasetBytes with 0xA700 without calling onStore, and keeps the association', async () => {
    const server = await start({ maxDatasetBytes: 20_000, maxPduLength: 4096 });
    const run = await storescu(server, ['-nh', '-d', '-xe'], [normalized('CT_small.dcm'), normalized('MR_small.dcm')]);
    expect(run.output).toMatch(/DIMSE Status\s*: 0xa700/);
    expect(run.output).toMatch(/\(0000,0902\) LO \[Dataset of 38732 bytes exceeds limit 20000\]/);
    expect(run.output).toMatch(/DIMSE Status\s*: 0x0000/);
    expect(server.stores.map((store) => store.sopClassUid)).toEqual(['1.2.840.10008.5.1.4.1.1.4']);
    expect(server.logText('warn')).toMatch(/exceeds limit 20000/);
    await vi.waitFor(() => expect(server.ends).toMatchObject([{ how: 'released' }]));
  });
});

import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { pydicomFile, skipDicomTools } from '../__fixtures__/dicom-env.ts';
import { datasetOfFile, runDcmtk, storescuNormalizedCopy } from './__fixtures__/dcmtk-tools.ts';
import { inMemory, startTestDimseServer, type TestDimseServer } from './__fixtures__/test-dimse-server.ts';
import { DimseServer } from './dimse-server.ts';

const BATCHES = 4;
const PER_BATCH = 50;
const THROUGHPUT_INSTANCES = 500;

/** `count` copies of `file` in a new folder `dir`; storescu does not mind that they share their UIDs. */
async function copies(options: { file: string; dir: string; count: number }): Promise<string> {
  await mkdir(options.dir, { recursive: true });
  await Promise.all(Array.from({ length: options.count }, (_, i) => copyFile(options.file, join(options.dir, `ct${i}.dcm`))));
  return options.dir;
}

describe.skipIf(skipDicomTools)('DimseServer under load', () => {
  let dir: string;
  let ct: string;
  let batches: string[];
  let running: TestDimseServer | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dimse-load-'));
    ct = await storescuNormalizedCopy({ file: pydicomFile('CT_small.dcm'), dir });
    batches = await Promise.all(Array.from({ length: BATCHES }, (_, i) => copies({ file: ct, dir: join(dir, `batch${i}`), count: PER_BATCH })));
  });

  afterEach(async () => {
    await running?.server.close();
    running = undefined;
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function storescu(server: TestDimseServer, folders: string[]): ReturnType<typeof runDcmtk> {
    return runDcmtk('storescu', ['-aec', 'TESSERA', '-xe', '+sd', '127.0.0.1', String(server.port), ...folders]);
  }

  it(`stores ${BATCHES * PER_BATCH} instances over one association`, async () => {
    running = await startTestDimseServer();
    const run = await storescu(running, batches);
    expect(run.code, run.output).toBe(0);
    expect(running.stores).toHaveLength(BATCHES * PER_BATCH);
    expect(new Set(running.stores.map((store) => store.association.id)).size).toBe(1);
    expect(running.stores.map((store) => store.messageId)).toEqual(running.stores.map((_, i) => i + 1));
    const expected = await datasetOfFile(ct);
    expect(running.stores.every((store) => inMemory(store.dataset).equals(expected))).toBe(true);
    await vi.waitFor(() => expect(running?.ends).toMatchObject([{ how: 'released' }]));
  });

  it(`serves ${BATCHES} concurrent storescu processes independently`, async () => {
    const server = await startTestDimseServer();
    running = server;
    const runs = await Promise.all(batches.map((batch) => storescu(server, [batch])));
    for (const run of runs) expect(run.code, run.output).toBe(0);
    expect(server.stores).toHaveLength(BATCHES * PER_BATCH);
    const perAssociation = new Map<string, number>();
    for (const store of server.stores) perAssociation.set(store.association.id, (perAssociation.get(store.association.id) ?? 0) + 1);
    expect([...perAssociation.values()]).toEqual(Array(BATCHES).fill(PER_BATCH));
    await vi.waitFor(() => expect(server.ends).toHaveLength(BATCHES));
  });

  it(`logs the C-STORE throughput for ${THROUGHPUT_INSTANCES} small CT instances`, async () => {
    const folder = await copies({ file: ct, dir: join(dir, 'throughput'), count: THROUGHPUT_INSTANCES });
    const stamps: number[] = [];
    // A bare server: the recording fixture keeps every dataset alive, and the GC work that causes is not ours to measure.
    const server = new DimseServer({
      host: '127.0.0.1',
      port: 0,
      aeTitle: 'TESSERA',
      log: { info: () => undefined, warn: console.warn, error: console.error },
      onStore: async () => {
        stamps.push(performance.now());
        return { status: 0 };
      },
    });
    const { port } = await server.listen();
    try {
      const run = await runDcmtk('storescu', ['-aec', 'TESSERA', '-xe', '+sd', '127.0.0.1', String(port), folder]);
      expect(run.code, run.output).toBe(0);
      expect(stamps).toHaveLength(THROUGHPUT_INSTANCES);
      // Not asserted: timing depends on the machine and its load. The figure is for the README and reviews.
      const serverSpanMs = stamps.at(-1)! - stamps[0]!;
      console.info(
        `C-STORE throughput: ${THROUGHPUT_INSTANCES} instances, storescu wall time ${run.elapsedMs.toFixed(0)} ms ` +
          `= ${((THROUGHPUT_INSTANCES * 1000) / run.elapsedMs).toFixed(0)} instances/s; ` +
          `first to last onStore ${serverSpanMs.toFixed(0)} ms = ${(((THROUGHPUT_INSTANCES - 1) * 1000) / serverSpanMs).toFixed(0)} instances/s`,
      );
    } finally {
      await server.close();
    }
  });
});

import { execFile } from 'node:child_process';
import { watch } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '../../../dicom/src/samples/sample-ct.ts';
import { DCMTK_ENV, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';
import { loadConfig } from '../config.ts';

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: DCMTK_ENV, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

describe.skipIf(skipDicomTools)('DICOM listener limits on the real server', () => {
  let s: TestServer;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-dicom-limits-'));
    s = await startTestServer({ dicomAssociationMemoryMb: 1, dicomMaxAssociations: 4 });
  });
  afterAll(async () => {
    await s?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores an instance larger than TESSERA_DICOM_ASSOCIATION_MEMORY_MB through a spool file, byte for byte', async () => {
    // 2500 x 2500 16-bit pixels: a 12.5 MB instance, 12 times the 1 MB an association may hold.
    const { files, series, study } = await writeSampleCt(join(dir, 'large'), { slices: 1, size: 2500 });
    const incoming = join(s.home, 'dicom', '.incoming');
    const spooled = new Set<string>();
    const watcher = watch(incoming, (_event, name) => {
      if (name && /^dimse-.*\.spool$/.test(name)) spooled.add(name);
    });
    try {
      const r = await run('storescu', ['-xe', '-aec', 'TESSERA', '127.0.0.1', String(s.tessera.dicomPort), files[0]!]);
      expect(r.code, r.out).toBe(0);
    } finally {
      watcher.close();
    }
    expect(spooled.size).toBe(1);
    expect(await readdir(incoming)).toEqual([]);
    const inst = await s.call('GET', `/api/series/${series}/instances`);
    expect(inst.status).toBe(200);
    expect(inst.body.items).toHaveLength(1);
    const original = await readFile(files[0]!);
    const sop = inst.body.items[0].sop_instance_uid as string;
    const found = (await readdir(join(s.home, 'dicom'), { recursive: true })).filter((f) => f.endsWith(`${sop}.dcm`));
    expect(found).toHaveLength(1);
    const stored = await readFile(join(s.home, 'dicom', found[0]!));
    // The meta header is ours; the dataset after it is the one sent.
    const datasetOf = (f: Buffer): Buffer => f.subarray(144 + f.readUInt32LE(140));
    expect(datasetOf(stored).length).toBeGreaterThan(12_000_000);
    expect(datasetOf(stored).equals(datasetOf(original))).toBe(true);
    // And it is served: WADO-RS metadata of the series names the instance.
    const meta = await fetch(`${s.url}/dicom-web/studies/${study}/series/${series}/metadata`);
    expect(meta.status).toBe(200);
    expect(await meta.text()).toContain(sop);
  });
});

describe('DICOM listener limit settings', () => {
  it('has defaults and refuses a value out of range, naming the setting', () => {
    const c = loadConfig({});
    expect([c.dicomMaxAssociations, c.dicomAssociationMemoryMb, c.dicomIdleTimeoutSeconds]).toEqual([32, 16, 60]);
    expect(() => loadConfig({ TESSERA_DICOM_MAX_ASSOCIATIONS: '0' })).toThrow(/TESSERA_DICOM_MAX_ASSOCIATIONS="0" must be an integer from 1 to 10000/);
    expect(() => loadConfig({ TESSERA_DICOM_ASSOCIATION_MEMORY_MB: 'lots' })).toThrow(/TESSERA_DICOM_ASSOCIATION_MEMORY_MB="lots" must be an integer/);
    expect(() => loadConfig({ TESSERA_DICOM_IDLE_TIMEOUT_SECONDS: '-1' })).toThrow(/TESSERA_DICOM_IDLE_TIMEOUT_SECONDS="-1"/);
  });
});

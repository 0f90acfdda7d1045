import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DCMTK_ENV, pydicomFile, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: DCMTK_ENV, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

// Every transfer syntax the receiver must take, sent by dcmtk's storescu as it stands.
const SYNTAXES: { name: string; file: string; flag: string; ts: string }[] = [
  { name: 'implicit VR little endian', file: 'CT_small.dcm', flag: '-xi', ts: '1.2.840.10008.1.2' },
  { name: 'explicit VR little endian', file: 'CT_small.dcm', flag: '-xe', ts: '1.2.840.10008.1.2.1' },
  { name: 'explicit VR big endian', file: 'MR_small_bigendian.dcm', flag: '-xb', ts: '1.2.840.10008.1.2.2' },
  { name: 'deflated explicit VR little endian', file: 'CT_small.dcm', flag: '-xd', ts: '1.2.840.10008.1.2.1.99' },
  { name: 'JPEG baseline', file: 'SC_rgb_jpeg_dcmtk.dcm', flag: '-xy', ts: '1.2.840.10008.1.2.4.50' },
  { name: 'JPEG extended', file: 'JPEG-lossy.dcm', flag: '-xx', ts: '1.2.840.10008.1.2.4.51' },
  { name: 'JPEG lossless SV1', file: 'SC_rgb_jpeg_gdcm.dcm', flag: '-xs', ts: '1.2.840.10008.1.2.4.70' },
  { name: 'JPEG-LS lossless', file: 'MR_small_jpeg_ls_lossless.dcm', flag: '-xt', ts: '1.2.840.10008.1.2.4.80' },
  { name: 'JPEG 2000 lossless', file: 'MR_small_jp2klossless.dcm', flag: '-xv', ts: '1.2.840.10008.1.2.4.90' },
  { name: 'JPEG 2000', file: 'JPEG2000.dcm', flag: '-xw', ts: '1.2.840.10008.1.2.4.91' },
  { name: 'RLE lossless', file: 'MR_small_RLE.dcm', flag: '-xr', ts: '1.2.840.10008.1.2.5' },
];

describe.skipIf(skipDicomTools)('DICOM ingest over C-STORE (dcmtk storescu against the real server)', () => {
  let s: TestServer;
  let port: string;
  beforeAll(async () => {
    s = await startTestServer();
    port = String(s.tessera.dicomPort);
  });
  afterAll(async () => s?.close());

  it('answers C-ECHO', async () => {
    const r = await run('echoscu', ['-aec', 'TESSERA', '127.0.0.1', port]);
    expect(r.code, r.out).toBe(0);
  });

  it.each(SYNTAXES.map((x, i) => ({ ...x, i })))('stores $name as received, indexed and queryable when acknowledged', async ({ file, flag, ts, i }) => {
    // One project per syntax (several MR files share their SOP Instance UIDs); AE titles have at most 16 characters.
    const project = `ts-${i}`;
    expect((await s.call('POST', '/api/projects', { name: project })).status).toBe(201);
    const r = await run('storescu', [flag, '-aet', 'kp-syntaxes', '-aec', `kp-${project}`, '127.0.0.1', port, pydicomFile(file)]);
    expect(r.code, r.out).toBe(0);
    // Acknowledged means indexed: no waiting.
    const list = await s.call('GET', `/api/series?project=${project}`);
    expect(list.body.total).toBe(1);
    const uid = list.body.items[0].series_instance_uid as string;
    const inst = await s.call('GET', `/api/series/${uid}/instances?project=${project}`);
    expect(inst.body.items).toHaveLength(1);
    expect(inst.body.items[0].transfer_syntax).toBe(ts);
    // Kaapana's routing: calling AE kp-<dataset> put it into that dataset.
    const ds = await s.call('GET', `/api/datasets/syntaxes/series?project=${project}`);
    expect(ds.body.items.map((x: { series_instance_uid: string }) => x.series_instance_uid)).toEqual([uid]);
    const qido = await fetch(`${s.url}/projects/${project}/dicom-web/studies/${list.body.items[0].study_instance_uid}/instances`);
    expect(qido.status).toBe(200);
    expect(await qido.json()).toHaveLength(1);
  });

  it('puts data without kp- AE titles into the admin project and the import-date dataset', async () => {
    const r = await run('storescu', ['-aec', 'TESSERA', '127.0.0.1', port, pydicomFile('CT_small.dcm')]);
    expect(r.code, r.out).toBe(0);
    const d = new Date();
    const name = `import-${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
    const ds = await s.call('GET', `/api/datasets/${name}/series`);
    expect(ds.status).toBe(200);
    expect(ds.body.total).toBe(1);
  });

  it('refuses an association whose called AE title names an unknown project, and keeps serving', async () => {
    const r = await run('storescu', ['-aec', 'kp-no-such-project', '127.0.0.1', port, pydicomFile('CT_small.dcm')]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/Association Rejected/i);
    expect(r.out).toMatch(/Called AE Title Not Recognized/i);
    expect((await run('echoscu', ['-aec', 'TESSERA', '127.0.0.1', port])).code).toBe(0);
  });

  it('answers a failure status for an instance without Series Instance UID, stores nothing of it, and keeps serving', async () => {
    await s.call('POST', '/api/projects', { name: 'no-uid' });
    const dir = await mkdtemp(join(tmpdir(), 'tessera-bad-'));
    try {
      const bad = join(dir, 'bad.dcm');
      await copyFile(pydicomFile('CT_small.dcm'), bad);
      expect((await run('dcmodify', ['-nb', '-ea', '(0020,000e)', bad])).code).toBe(0);
      // storescu exits 0 whatever the status; with -v it prints the status it received.
      const r = await run('storescu', ['-v', '-aec', 'kp-no-uid', '127.0.0.1', port, bad]);
      expect(r.out).toMatch(/Received Store Response \(Error: CannotUnderstand\)/);
      expect((await s.call('GET', '/api/series?project=no-uid')).body.total).toBe(0);
      expect((await run('storescu', ['-aec', 'kp-no-uid', '127.0.0.1', port, pydicomFile('CT_small.dcm')])).code).toBe(0);
      expect((await s.call('GET', '/api/series?project=no-uid')).body.total).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the first copy of a duplicate SOP instance and acknowledges the resend (policy "keep")', async () => {
    await s.call('POST', '/api/projects', { name: 'dups' });
    for (let i = 0; i < 2; i++) {
      const r = await run('storescu', ['-aec', 'kp-dups', '127.0.0.1', port, pydicomFile('MR_small.dcm')]);
      expect(r.code, r.out).toBe(0);
    }
    const list = await s.call('GET', '/api/series?project=dups');
    expect(list.body.items[0].instances).toBe(1);
  });

  it('takes a folder over one association and four associations at once', async () => {
    await s.call('POST', '/api/projects', { name: 'many' });
    const dir = await mkdtemp(join(tmpdir(), 'tessera-many-'));
    try {
      // Uncompressed files only: storescu proposes a compressed syntax only when told (-xw, ...), one per association.
      const files = ['CT_small.dcm', 'MR_small.dcm', 'rtdose.dcm', 'SC_rgb_small_odd.dcm', 'reportsi.dcm', 'test-SR.dcm', 'waveform_ecg.dcm', 'rtplan.dcm'];
      for (const f of files) await copyFile(pydicomFile(f), join(dir, f)).catch(() => undefined);
      const present = await readdir(dir);
      const r = await run('storescu', ['+sd', '-aec', 'kp-many', '127.0.0.1', port, dir]);
      expect(r.code, r.out).toBe(0);
      const parallel = await Promise.all([1, 2, 3, 4].map(() => run('storescu', ['+sd', '-aec', 'kp-many', '127.0.0.1', port, dir])));
      for (const p of parallel) expect(p.code, p.out).toBe(0);
      const total = await s.call('GET', '/api/series?project=many&limit=100');
      const instances = total.body.items.reduce((n: number, x: { instances: number }) => n + x.instances, 0);
      expect(instances).toBe(present.length);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('marks a series complete after the quiet period and makes its thumbnail off the ingest path', async () => {
    await s.call('POST', '/api/projects', { name: 'thumbs' });
    const r = await run('storescu', ['-aec', 'kp-thumbs', '127.0.0.1', port, pydicomFile('CT_small.dcm')]);
    expect(r.code, r.out).toBe(0);
    const first = await s.call('GET', '/api/series?project=thumbs');
    const uid = first.body.items[0].series_instance_uid;
    const done = await waitFor(async () => {
      const x = await s.call('GET', `/api/series/${uid}?project=thumbs`);
      return x.body.thumbnail ? x.body : undefined;
    }, 10_000, 'thumbnail');
    expect(done.complete).toBe(true);
    const png = await fetch(`${s.url}${done.thumbnail}`);
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await png.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
  });
});

import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DCMTK_ENV, pydicomFile, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';

/** A copy of a pydicom file with new UIDs (dcmodify -gin -gse -gst) and the given attributes changed. */
function modified(dir: string, name: string, changes: string[]): Buffer {
  const path = join(dir, `${name}-${Math.random().toString(36).slice(2)}.dcm`);
  copyFileSync(pydicomFile(name), path);
  execFileSync('dcmodify', ['-nb', '-gin', '-gse', '-gst', ...changes.flatMap((c) => ['-m', c]), path], { env: DCMTK_ENV });
  return readFileSync(path);
}

interface Uids {
  study: string;
  series: string;
  sop: string;
}

describe.skipIf(skipDicomTools)('instances that claim more pixels than they have', () => {
  let s: TestServer;
  let dir: string;
  beforeAll(async () => {
    s = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'tessera-hostile-'));
  });
  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function upload(body: Buffer): Promise<Uids> {
    const r = await fetch(`${s.url}/api/dicom/import`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(body) });
    const json = (await r.json()) as { files: { sop_instance_uid: string; series_instance_uid: string; study_instance_uid: string }[] };
    expect(r.status, JSON.stringify(json)).toBe(200);
    const f = json.files[0]!;
    return { study: f.study_instance_uid, series: f.series_instance_uid, sop: f.sop_instance_uid };
  }

  const resources = (u: Uids) => {
    const i = `/dicom-web/studies/${u.study}/series/${u.series}/instances/${u.sop}`;
    return [`${i}/frames/1`, `${i}/rendered`, `${i}/frames/1/rendered`, `${i}/thumbnail`, `/dicom-web/studies/${u.study}/series/${u.series}/rendered`, `/dicom-web/studies/${u.study}/thumbnail`];
  };

  it.each([
    { name: 'native (CT_small.dcm)', file: 'CT_small.dcm', encapsulated: false },
    { name: 'RLE (MR_small_RLE.dcm)', file: 'MR_small_RLE.dcm', encapsulated: true },
    { name: 'JPEG baseline (SC_rgb_jpeg_dcmtk.dcm)', file: 'SC_rgb_jpeg_dcmtk.dcm', encapsulated: true },
    { name: 'JPEG 2000 (JPEG2000.dcm)', file: 'JPEG2000.dcm', encapsulated: true },
  ])('65535 x 65535 pixels claimed by a $name instance: frames, rendered and thumbnail answer 406 naming the mismatch, and the server keeps rendering', async ({ file, encapsulated }) => {
    const u = await upload(modified(dir, file, ['(0028,0010)=65535', '(0028,0011)=65535']));
    for (const path of resources(u)) {
      const accepts = path.endsWith('/frames/1') ? ['multipart/related; type="application/octet-stream"', 'multipart/related; type="application/octet-stream"; transfer-syntax=*', '*/*'] : ['image/jpeg', 'image/png', '*/*'];
      for (const accept of accepts) {
        const r = await fetch(`${s.url}${path}`, { headers: { accept } });
        const text = await r.text();
        // A compressed frame can be sent as stored without decoding it: that is not wrong.
        if (encapsulated && path.endsWith('/frames/1') && r.status === 200) continue;
        expect(r.status, `${path} (${accept}): ${text}`).toBe(406);
        const body = JSON.parse(text) as { error: { code: string; message: string } };
        expect(body.error.code).toBe('TESSERA_NOT_ACCEPTABLE');
        expect(body.error.message).toMatch(encapsulated ? /65535 rows x 65535 columns .* too large to decode/ : /65535 rows x 65535 columns .* needs bytes .* but the value has \d+ bytes/);
      }
    }
    const good = await upload(modified(dir, 'CT_small.dcm', []));
    for (const path of resources(good)) expect((await fetch(`${s.url}${path}`)).status, path).toBe(200);
  });
});

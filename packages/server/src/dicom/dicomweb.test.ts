import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import XHR from 'xhr2';
import { pydicomFile, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { ctWithNestedSequence } from '../../../dicom/src/__fixtures__/nested-sequences.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';

const CT = 'CT_small.dcm';
const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const CT_SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';
const CT_SOP = '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322';

function stowBody(parts: { type: string; body: Buffer }[], boundary = 'tessera-test-boundary-0123456789abcdef'): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: ${p.type}\r\n\r\n`), p.body, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

async function stow(url: string, parts: { type: string; body: Buffer }[]): Promise<{ status: number; json: Record<string, { Value?: Record<string, { Value: unknown[] }>[] }> }> {
  const { body, contentType } = stowBody(parts);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType, accept: 'application/dicom+json' }, body: new Uint8Array(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : {} };
}

const file = (name: string) => readFileSync(pydicomFile(name));

describe.skipIf(skipDicomTools)('DICOMweb (QIDO-RS, WADO-RS, STOW-RS)', () => {
  let s: TestServer;
  let dw: string;
  beforeAll(async () => {
    s = await startTestServer();
    dw = `${s.url}/dicom-web`;
    const r = await stow(`${dw}/studies`, ['CT_small.dcm', 'MR_small.dcm', 'JPEG2000.dcm', 'MR_small_RLE.dcm', 'rtdose.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'MR_small_jpeg_ls_lossless.dcm'].map((f) => ({ type: 'application/dicom', body: file(f) })));
    // MR_small_RLE and the JPEG-LS file share MR_small's SOP Instance UID: kept once, acknowledged (duplicate policy "keep").
    expect(r.status).toBe(200);
  });
  afterAll(async () => s?.close());

  describe('STOW-RS', () => {
    it('stores good parts, fails bad ones with a reason, and answers 202 with both sequences', async () => {
      await s.call('POST', '/api/projects', { name: 'stow' });
      const r = await stow(`${s.url}/projects/stow/dicom-web/studies`, [
        { type: 'application/dicom', body: file(CT) },
        { type: 'application/dicom', body: Buffer.from('this is not DICOM at all, just some text that is long enough to have a preamble........................................................') },
        { type: 'application/dicom', body: file('MR_truncated.dcm') },
      ]);
      expect(r.status).toBe(202);
      expect(r.json['00081199']!.Value).toHaveLength(1);
      const failed = r.json['00081198']!.Value!;
      expect(failed).toHaveLength(2);
      expect(failed.map((f) => f['00081197']!.Value[0])).toEqual([0xc000, 0xc000]);
      const reasons = failed.map((f) => String(f['00091001']!.Value[0]));
      expect(reasons[0]).toMatch(/DICM/);
      expect(reasons[1]).toMatch(/truncated/);
      // Only the good instance is in the store.
      const series = await s.call('GET', '/api/series?project=stow');
      expect(series.body.total).toBe(1);
    });

    it('refuses an instance whose sequences nest too deep as its own failed part (202 for the request), and serves the others', async () => {
      await s.call('POST', '/api/projects', { name: 'deep' });
      const r = await stow(`${s.url}/projects/deep/dicom-web/studies`, [
        { type: 'application/dicom', body: file('MR_small.dcm') },
        { type: 'application/dicom', body: ctWithNestedSequence(2000, '.9') },
        { type: 'application/dicom', body: file('rtdose.dcm') },
      ]);
      expect(r.status).toBe(202);
      expect(r.json['00081199']!.Value).toHaveLength(2);
      const failed = r.json['00081198']!.Value!;
      expect(failed.map((f) => f['00081197']!.Value[0])).toEqual([0xc000]);
      expect(String(failed[0]!['00091001']!.Value[0])).toMatch(/sequences nest deeper than 64 levels/);
      // Everything acknowledged is served, metadata included.
      const studies = (await (await fetch(`${s.url}/projects/deep/dicom-web/studies`)).json()) as Record<string, { Value: string[] }>[];
      for (const study of studies) expect((await fetch(`${s.url}/projects/deep/dicom-web/studies/${study['0020000D']!.Value[0]}/metadata`)).status).toBe(200);
      // The same file as an upload: a 400 naming the limit, nothing stored.
      const up = await fetch(`${s.url}/api/dicom/import?project=deep`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(ctWithNestedSequence(2000, '.9')) });
      expect(up.status).toBe(400);
      expect((await up.json()).error.message).toMatch(/sequences nest deeper than 64 levels/);
      expect((await s.call('GET', '/api/series?project=deep')).body.total).toBe(2);
    });

    it('answers 409 when nothing was stored, 415 for a body that is not multipart/related, 400 for a truncated body', async () => {
      const bad = await stow(`${dw}/studies`, [{ type: 'application/dicom', body: Buffer.alloc(10) }]);
      expect(bad.status).toBe(409);
      const wrongType = await fetch(`${dw}/studies`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' });
      expect(wrongType.status).toBe(415);
      expect((await wrongType.json()).error.message).toMatch(/multipart\/related/);
      const { body, contentType } = stowBody([{ type: 'application/dicom', body: file(CT) }]);
      const cut = await fetch(`${dw}/studies`, { method: 'POST', headers: { 'content-type': contentType }, body: new Uint8Array(body.subarray(0, body.length - 60)) });
      expect(cut.status).toBe(400);
      expect((await cut.json()).error.message).toMatch(/truncated/);
      expect((await fetch(`${s.url}/api/health`)).status).toBe(200);
    });

    it('refuses an instance of another study when the URL names a study', async () => {
      const r = await stow(`${dw}/studies/1.2.3.4`, [{ type: 'application/dicom', body: file(CT) }]);
      expect(r.status).toBe(409);
      expect(String(r.json['00081198']!.Value![0]!['00091001']!.Value[0])).toMatch(/not to study 1\.2\.3\.4/);
    });
  });

  describe('QIDO-RS', () => {
    const qido = async (path: string): Promise<Record<string, { Value?: unknown[] }>[]> => {
      const res = await fetch(`${dw}${path}`, { headers: { accept: 'application/dicom+json' } });
      if (res.status === 204) return [];
      expect(res.status, await res.clone().text()).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/application\/dicom\+json/);
      return res.json() as Promise<Record<string, { Value?: unknown[] }>[]>;
    };
    const uids = (list: Record<string, { Value?: unknown[] }>[], tag: string) => list.map((x) => x[tag]!.Value![0]).sort();

    it('matches exactly, with wildcards (person names case-insensitively), date ranges and UID lists', async () => {
      expect(uids(await qido('/studies?PatientID=1CT1'), '0020000D')).toEqual([CT_STUDY]);
      expect(uids(await qido('/studies?PatientName=compressedsamples%5Ect*'), '0020000D')).toEqual([CT_STUDY]);
      expect((await qido('/studies?PatientName=Compressed*')).length).toBeGreaterThanOrEqual(3);
      expect(uids(await qido('/studies?StudyDate=20040119-20040120'), '0020000D')).toEqual([CT_STUDY]);
      expect((await qido('/studies?StudyDate=-19990101')).length).toBe(0);
      const two = await qido(`/studies?StudyInstanceUID=${CT_STUDY},1.3.6.1.4.1.5962.1.2.4.20040826185059.5457`);
      expect(two).toHaveLength(2);
      expect(uids(await qido('/studies?ModalitiesInStudy=CT'), '0020000D')).toEqual([CT_STUDY]);
      expect(uids(await qido('/series?Modality=CT'), '0020000E')).toEqual([CT_SERIES]);
      expect(uids(await qido(`/studies/${CT_STUDY}/series/${CT_SERIES}/instances?SOPInstanceUID=${CT_SOP}`), '00080018')).toEqual([CT_SOP]);
    });

    it('returns the study-level counts and a RetrieveURL, pages with limit and offset, and honours includefield', async () => {
      const [study] = await qido(`/studies?StudyInstanceUID=${CT_STUDY}&includefield=00180050,PatientAge`);
      expect(study!['00201206']!.Value).toEqual([1]);
      expect(study!['00201208']!.Value).toEqual([1]);
      expect(study!['00080061']!.Value).toEqual(['CT']);
      expect(String(study!['00081190']!.Value![0])).toBe(`${dw}/studies/${CT_STUDY}`);
      expect(study!['00180050']!.Value).toEqual([5]); // SliceThickness, from includefield
      const all = await qido('/studies');
      const page = await qido('/studies?limit=2&offset=1');
      expect(page).toHaveLength(2);
      expect(page.map((x) => x['0020000D']!.Value![0])).toEqual(all.slice(1, 3).map((x) => x['0020000D']!.Value![0]));
      const [inst] = await qido(`/studies/${CT_STUDY}/instances?includefield=ImagePositionPatient`);
      expect(inst!['00200032']!.Value).toHaveLength(3);
    });

    it('rejects an unknown query parameter with a message naming it', async () => {
      const res = await fetch(`${dw}/studies?NoSuchKeyword=1`);
      expect(res.status).toBe(400);
      expect((await res.json()).error.message).toMatch(/NoSuchKeyword/);
    });
  });

  describe('WADO-RS', () => {
    const instanceUrl = `/studies/${CT_STUDY}/series/${CT_SERIES}/instances/${CT_SOP}`;

    it('retrieves an instance as multipart/related application/dicom, byte for byte', async () => {
      const res = await fetch(`${dw}${instanceUrl}`, { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
      expect(res.status).toBe(200);
      const type = res.headers.get('content-type')!;
      expect(type).toMatch(/^multipart\/related; type="application\/dicom"/);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.includes(file(CT))).toBe(true);
    });

    it('refuses to transcode with 406 naming the stored transfer syntax', async () => {
      const res = await fetch(`${dw}${instanceUrl}`, { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' } });
      expect(res.status).toBe(406);
      expect((await res.json()).error.message).toMatch(/1\.2\.840\.10008\.1\.2\.1/);
    });

    it('gives metadata with pixel data as a BulkDataURI, frames, and rendered images', async () => {
      const md = (await (await fetch(`${dw}/studies/${CT_STUDY}/series/${CT_SERIES}/metadata`)).json()) as Record<string, { BulkDataURI?: string; Value?: unknown[] }>[];
      expect(md).toHaveLength(1);
      expect(md[0]!['00100010']!.Value).toEqual([{ Alphabetic: 'CompressedSamples^CT1' }]);
      expect(md[0]!['7FE00010']!.BulkDataURI).toBe(`${dw}${instanceUrl}/frames/1`);
      const frames = await fetch(`${dw}${instanceUrl}/frames/1`, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
      expect(frames.status).toBe(200);
      expect(Buffer.from(await frames.arrayBuffer()).length).toBeGreaterThan(128 * 128 * 2);
      const png = await fetch(`${dw}${instanceUrl}/rendered`, { headers: { accept: 'image/png' } });
      expect(png.headers.get('content-type')).toBe('image/png');
      const jpeg = await fetch(`${dw}/studies/${CT_STUDY}/series/${CT_SERIES}/thumbnail?viewport=64,64`);
      expect(jpeg.headers.get('content-type')).toBe('image/jpeg');
      const jpegBytes = Buffer.from(await jpeg.arrayBuffer());
      expect(jpegBytes[0]).toBe(0xff);
      expect(jpegBytes[1]).toBe(0xd8);
      const missing = await fetch(`${dw}${instanceUrl}/frames/2`);
      expect(missing.status).toBe(404);
      expect((await missing.json()).error.message).toMatch(/1 frame/);
      expect((await fetch(`${dw}/studies/1.2.3/metadata`)).status).toBe(404);
    });

    it.each([
      ['JPEG 2000', 'JPEG2000.dcm'],
      ['RLE', 'SC_rgb_rle.dcm'],
      ['JPEG baseline', 'SC_rgb_jpeg_dcmtk.dcm'],
      ['JPEG-LS', 'MR_small_jpeg_ls_lossless.dcm'],
      ['big endian', 'MR_small_bigendian.dcm'],
      ['deflate', 'image_dfl.dcm'],
    ])('renders a %s instance as PNG', async (_name, f) => {
      const project = `r-${f.replace(/[^a-z0-9]/gi, '').toLowerCase().slice(0, 20)}`;
      await s.call('POST', '/api/projects', { name: project });
      const up = await fetch(`${s.url}/api/dicom/import?project=${project}`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(file(f)) });
      const result = await up.json();
      expect(up.status, JSON.stringify(result)).toBe(200);
      const r = result.files[0];
      const res = await fetch(`${s.url}/projects/${project}/dicom-web/studies/${r.study_instance_uid}/series/${r.series_instance_uid}/instances/${r.sop_instance_uid}/rendered`, { headers: { accept: 'image/png' } });
      expect(res.status, await res.clone().text()).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
    });

    it('renders an RT Dose (10x10, 15 frames, 32-bit) as JPEG, and every other instance goes on rendering as JPEG after it', async () => {
      await s.call('POST', '/api/projects', { name: 'r-rtdose' });
      const up = await fetch(`${s.url}/api/dicom/import?project=r-rtdose`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(file('rtdose.dcm')) });
      const r = (await up.json()).files[0];
      const dose = `${s.url}/projects/r-rtdose/dicom-web/studies/${r.study_instance_uid}/series/${r.series_instance_uid}/instances/${r.sop_instance_uid}`;
      for (const path of [`${dose}/rendered`, `${dose}/frames/15/rendered`, `${dose}/thumbnail`, `${dw}${instanceUrl}/rendered`, `${dw}/studies/${CT_STUDY}/series/${CT_SERIES}/thumbnail`]) {
        const res = await fetch(path, { headers: { accept: 'image/jpeg' } });
        expect(res.status, `${path}: ${await res.clone().text()}`).toBe(200);
        expect(res.headers.get('content-type')).toBe('image/jpeg');
        expect(Buffer.from(await res.arrayBuffer()).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
      }
    });
  });

  describe('the contract (packages/api/src/dicomweb.ts)', () => {
    it('lists both roots in the OpenAPI document, the per-project one in its project', async () => {
      const doc = (await s.call('GET', '/api/openapi.json')).body;
      const qido = doc.paths['/projects/{project}/dicom-web/studies'].get;
      expect(qido.operationId).toBe('searchProjectStudies');
      expect(qido['x-tessera-project']).toEqual({ in: 'path', name: 'project' });
      expect(Object.keys(qido.responses)).toEqual(expect.arrayContaining(['200', '204', '400', '404']));
      expect(doc.paths['/dicom-web/studies'].get['x-tessera-project']).toEqual({ in: 'default' });
      expect(Object.keys(doc.paths['/dicom-web/studies'].post.requestBody.content)).toEqual(['multipart/related', 'application/dicom']);
      const dicomweb = Object.values(doc.paths as Record<string, Record<string, { tags: string[] }>>).flatMap((p) => Object.values(p)).filter((op) => op.tags.includes('dicomweb'));
      expect(dicomweb).toHaveLength(48);
    });

    it('takes repeated and unknown-to-the-contract QIDO parameters, and answers 404 for an unknown project', async () => {
      const res = await fetch(`${dw}/studies?StudyInstanceUID=${CT_STUDY}&includefield=PatientAge&includefield=00180050&fuzzymatching=true`);
      expect(res.status).toBe(200);
      expect((await res.json())[0]['00180050'].Value).toEqual([5]);
      for (const [method, path] of [['GET', '/studies'], ['POST', '/studies']] as const) {
        const missing = await fetch(`${s.url}/projects/no-such-project/dicom-web${path}`, { method, headers: { 'content-type': 'application/dicom' }, ...(method === 'POST' ? { body: new Uint8Array(file(CT)) } : {}) });
        expect(missing.status).toBe(404);
        expect((await missing.json()).error.message).toMatch(/no-such-project/);
      }
    });

    it('answers HEAD like GET, takes a single application/dicom instance, and refuses other bodies with 415', async () => {
      const head = await fetch(`${dw}/studies/${CT_STUDY}/series/${CT_SERIES}/metadata`, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toMatch(/application\/dicom\+json/);
      const one = await fetch(`${dw}/studies`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(file(CT)) });
      expect(one.status).toBe(200);
      expect(one.headers.get('content-type')).toMatch(/application\/dicom\+json/);
      const xml = await fetch(`${dw}/studies`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<x/>' });
      expect(xml.status).toBe(415);
    });
  });

  it('works with a real DICOMweb client (dicomweb-client): search, retrieve, metadata, frames, store', async () => {
    (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XHR;
    const { api } = await import('dicomweb-client');
    await s.call('POST', '/api/projects', { name: 'client' });
    // The package's generated typings mark every option as required; the calls below are its documented usage.
    type Call = (o?: Record<string, unknown>) => Promise<unknown>;
    const client = new api.DICOMwebClient({ url: `${s.url}/projects/client/dicom-web`, singlepart: false }) as unknown as Record<
      'storeInstances' | 'searchForStudies' | 'searchForSeries' | 'searchForInstances' | 'retrieveInstanceMetadata' | 'retrieveInstance' | 'retrieveInstanceFrames',
      Call
    >;
    const buf = file('rtdose.dcm');
    await client.storeInstances({ datasets: [buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer] });
    await client.storeInstances({ datasets: [file(CT).buffer.slice(file(CT).byteOffset, file(CT).byteOffset + file(CT).byteLength) as ArrayBuffer] });
    const studies = (await client.searchForStudies()) as Record<string, { Value: string[] }>[];
    expect(studies).toHaveLength(2);
    const series = (await client.searchForSeries({ studyInstanceUID: CT_STUDY })) as Record<string, { Value: string[] }>[];
    expect(series.map((x) => x['0020000E']!.Value[0])).toEqual([CT_SERIES]);
    const instances = (await client.searchForInstances({ studyInstanceUID: CT_STUDY, seriesInstanceUID: CT_SERIES })) as Record<string, { Value: string[] }>[];
    expect(instances.map((x) => x['00080018']!.Value[0])).toEqual([CT_SOP]);
    const md = (await client.retrieveInstanceMetadata({ studyInstanceUID: CT_STUDY, seriesInstanceUID: CT_SERIES, sopInstanceUID: CT_SOP })) as Record<string, unknown>[];
    expect(Object.keys(md[0]!).length).toBeGreaterThan(100);
    const instance = (await client.retrieveInstance({ studyInstanceUID: CT_STUDY, seriesInstanceUID: CT_SERIES, sopInstanceUID: CT_SOP })) as ArrayBuffer;
    expect(Buffer.from(instance).equals(file(CT))).toBe(true);
    const frames = (await client.retrieveInstanceFrames({ studyInstanceUID: CT_STUDY, seriesInstanceUID: CT_SERIES, sopInstanceUID: CT_SOP, frameNumbers: [1] })) as ArrayBuffer[];
    expect(frames).toHaveLength(1);
    expect(frames[0]!.byteLength).toBe(128 * 128 * 2);
  });
});

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ZipFile } from 'yazl';
import { fromBuffer } from 'yauzl';
import { rawZip } from '../../../dicom/src/__fixtures__/raw-zip.ts';
import { pydicomFile, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

const file = (name: string) => readFileSync(pydicomFile(name));
const CT_SERIES = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';

async function zipOf(entries: { name: string; data: Buffer }[]): Promise<Buffer> {
  const zip = new ZipFile();
  for (const e of entries) zip.addBuffer(e.data, e.name);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

function zipNames(buf: Buffer): Promise<string[]> {
  return new Promise((resolve, reject) => {
    fromBuffer(buf, { lazyEntries: true }, (err, z) => {
      if (err || !z) return reject(err);
      const names: string[] = [];
      z.on('entry', (e: { fileName: string }) => {
        names.push(e.fileName);
        z.readEntry();
      });
      z.on('end', () => resolve(names));
      z.readEntry();
    });
  });
}

/** A copy of CT_small with one element's value overwritten (same length), to make bad instances. */
function patched(name: string, find: string, replace: string): Buffer {
  const b = Buffer.from(file(name));
  const i = b.indexOf(find, 0, 'latin1');
  if (i < 0) throw new Error(`${find} not in ${name}`);
  b.write(replace.padEnd(find.length, '\0'), i, 'latin1');
  return b;
}

/** Every occurrence (the meta header's and the dataset's) replaced, padded to the same length. */
function patchedAll(name: string, find: string, replace: string): Buffer {
  const b = Buffer.from(file(name));
  let i = b.indexOf(find, 0, 'latin1');
  if (i < 0) throw new Error(`${find} not in ${name}`);
  for (; i >= 0; i = b.indexOf(find, i + 1, 'latin1')) b.write(replace.padEnd(find.length, '\0'), i, 'latin1');
  return b;
}

async function upload(s: TestServer, body: Buffer, type: string, query = ''): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${s.url}/api/dicom/import${query}`, { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(body) });
  return { status: res.status, json: await res.json() };
}

async function form(files: { name: string; data: Buffer }[]): Promise<{ body: Buffer; type: string }> {
  const fd = new FormData();
  for (const f of files) fd.append('file', new Blob([new Uint8Array(f.data)]), f.name);
  const req = new Request('http://x', { method: 'POST', body: fd });
  return { body: Buffer.from(await req.arrayBuffer()), type: req.headers.get('content-type')! };
}

describe.skipIf(skipDicomTools)('data API: uploads, bad input, search, datasets, downloads, data workflows', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ dicomMaxInstanceMb: 1 });
  });
  afterAll(async () => s?.close());

  describe('uploads reject bad input with a reason and keep nothing of it', () => {
    const bad: [string, Buffer, RegExp][] = [
      ['garbage bytes', Buffer.from('x'.repeat(400)), /DICM/],
      ['a truncated file', file('MR_truncated.dcm'), /truncated/],
      ['a file without preamble (no_meta.dcm)', file('no_meta.dcm'), /DICM/],
      ['an instance without Series Instance UID', patched('CT_small.dcm', '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322', ''), /Series Instance UID/],
      ['a SOP Instance UID with a leading zero in a component', patchedAll('CT_small.dcm', '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322', '1.3.6.01.2'), /SOP Instance UID .*"1\.3\.6\.01\.2" is not a valid UID \(.*no component with a leading zero/],
      ['a SOP Instance UID with two values', patchedAll('CT_small.dcm', '1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322', '1.2.3\\1.2.4'), /SOP Instance UID .* has 2 values .*it must have exactly one/],
      ['an unsupported transfer syntax', patched('CT_small.dcm', '1.2.840.10008.1.2.1\0', '1.2.840.10008.1.2.9'), /transfer syntax 1\.2\.840\.10008\.1\.2\.9/],
    ];
    it.each(bad)('%s', async (_what, body, reason) => {
      await s.call('POST', '/api/projects', { name: 'bad' }).catch(() => undefined);
      const r = await upload(s, body, 'application/dicom', '?project=bad');
      expect(r.status).toBe(400);
      expect(r.json.error.code).toMatch(/TESSERA_INVALID_DICOM/);
      expect(r.json.error.message).toMatch(reason);
      expect((await s.call('GET', '/api/series?project=bad')).body.total).toBe(0);
      const dicomDir = join(s.home, 'dicom');
      const incoming = await readdir(join(dicomDir, '.incoming'));
      expect(incoming).toEqual([]);
    });

    it('an oversized upload answers 413 with the limit', async () => {
      const r = await upload(s, Buffer.alloc(2 * 1024 * 1024), 'application/dicom');
      expect(r.status).toBe(413);
      expect(r.json.error.message).toMatch(/limit/);
    });

    it('a zip with a ".." entry, an absolute path or a link is refused whole: nothing of it is stored', async () => {
      await s.call('POST', '/api/projects', { name: 'zips' });
      for (const entries of [
        [{ name: 'ok.dcm', data: file('CT_small.dcm') }, { name: '../evil.dcm', data: file('MR_small.dcm') }],
        [{ name: 'ok.dcm', data: file('CT_small.dcm') }, { name: '/etc/evil.dcm', data: file('MR_small.dcm') }],
        [{ name: 'ok.dcm', data: file('CT_small.dcm') }, { name: 'link.dcm', data: Buffer.from('/etc/passwd'), mode: 0o120777 }],
      ]) {
        const r = await upload(s, rawZip(entries), 'application/zip', '?project=zips');
        expect(r.status).toBe(400);
        expect(r.json.error.message).toMatch(/\.\.|absolute|link/);
      }
      expect((await s.call('GET', '/api/series?project=zips')).body.total).toBe(0);
      expect(existsSync(join(s.home, 'evil.dcm'))).toBe(false);
    });

    it('a deflated dataset that would inflate past the instance limit is refused with 413, quickly', async () => {
      // image_dfl.dcm's deflated body, followed by 3 MB of zeros deflated (a few KB): over the 1 MB limit once inflated.
      const dfl = file('image_dfl.dcm');
      const p = (await import('../../../dicom/src/parse/part10-reader.ts')).readPart10(dfl);
      const { deflateRawSync, inflateRawSync } = await import('node:zlib');
      const body = deflateRawSync(Buffer.concat([inflateRawSync(dfl.subarray(p.datasetOffset)), Buffer.alloc(3 * 1024 * 1024)]));
      const bomb = Buffer.concat([dfl.subarray(0, p.datasetOffset), body]);
      expect(bomb.length).toBeLessThan(1024 * 1024);
      const t = Date.now();
      const r = await upload(s, bomb, 'application/dicom');
      expect(r.status).toBe(413);
      expect(r.json.error.message).toMatch(/inflates to more than/);
      expect(Date.now() - t).toBeLessThan(5000);
    });

    it('an instance naming another study than its series already has is refused', async () => {
      await s.call('POST', '/api/projects', { name: 'mixed' });
      expect((await upload(s, file('CT_small.dcm'), 'application/dicom', '?project=mixed')).status).toBe(200);
      const other = patched('CT_small.dcm', '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322', '1.3.6.1.4.1.5962.1.2.1.20040119072730.99999');
      const otherSop = Buffer.from(other.toString('latin1').split('1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322').join('1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.99999'), 'latin1');
      const r = await upload(s, otherSop, 'application/dicom', '?project=mixed');
      expect(r.status).toBe(400);
      expect(r.json.error.message).toMatch(/belongs to study 1\.3\.6\.1\.4\.1\.5962\.1\.2\.1\.20040119072730\.12322/);
    });

    it('a disk fault while storing a STOW request fails its instances with 0xA700 and the server keeps serving', async () => {
      const proj = await s.call('POST', '/api/projects', { name: 'diskfault' });
      // A file where the study's folder must go: writing the instance fails (ENOTDIR).
      await mkdir(join(s.home, 'dicom', proj.body.id), { recursive: true });
      await writeFile(join(s.home, 'dicom', proj.body.id, '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322'), 'in the way');
      const boundary = 'fault-boundary-0123456789';
      const parts = [file('CT_small.dcm'), file('MR_small.dcm')].map((b) => Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), b, Buffer.from('\r\n')]));
      const res = await fetch(`${s.url}/projects/diskfault/dicom-web/studies`, {
        method: 'POST',
        headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
        body: new Uint8Array(Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)])),
      });
      expect(res.status).toBe(202);
      const json = (await res.json()) as Record<string, { Value: Record<string, { Value: unknown[] }>[] }>;
      expect(json['00081198']!.Value.map((f) => f['00081197']!.Value[0])).toEqual([0xa700]);
      expect(json['00081199']!.Value).toHaveLength(1);
      expect((await s.call('GET', '/api/health')).status).toBe(200);
      await rm(join(s.home, 'dicom', proj.body.id, '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322'));
    });

    it('a STOW body that breaks off after some parts reports what was stored and why the rest was not', async () => {
      await s.call('POST', '/api/projects', { name: 'partial' });
      const boundary = 'partial-boundary-0123456789';
      const part = (b: Buffer) => Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), b, Buffer.from('\r\n')]);
      const res = await fetch(`${s.url}/projects/partial/dicom-web/studies`, {
        method: 'POST',
        headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
        body: new Uint8Array(Buffer.concat([part(file('CT_small.dcm')), part(file('MR_small.dcm')), part(Buffer.alloc(2 * 1024 * 1024)), Buffer.from(`--${boundary}--\r\n`)])),
      });
      expect(res.status).toBe(202);
      const json = (await res.json()) as Record<string, { Value: Record<string, { Value: unknown[] }>[] }>;
      expect(json['00081199']!.Value).toHaveLength(2);
      expect(String(json['00081198']!.Value[0]!['00091001']!.Value[0])).toMatch(/part 3/);
      expect((await s.call('GET', '/api/series?project=partial')).body.total).toBe(2);
    });

    it('the server keeps serving after all of it', async () => {
      expect((await s.call('GET', '/api/health')).status).toBe(200);
    });
  });

  describe('uploads of files, zips and forms report each file', () => {
    it('stores a zip, counts duplicates and rejects non-DICOM entries one by one', async () => {
      await s.call('POST', '/api/projects', { name: 'up' });
      const zip = await zipOf([
        { name: 'a/CT_small.dcm', data: file('CT_small.dcm') },
        { name: 'a/MR_small.dcm', data: file('MR_small.dcm') },
        { name: 'a/again.dcm', data: file('MR_small.dcm') },
        { name: 'notes.txt', data: Buffer.from('not dicom') },
      ]);
      const r = await upload(s, zip, 'application/zip', '?project=up&dataset=uploaded');
      expect(r.status).toBe(200);
      expect([r.json.stored, r.json.duplicates, r.json.rejected]).toEqual([2, 1, 1]);
      expect(r.json.files.find((f: { file: string }) => f.file === 'notes.txt').error.message).toMatch(/DICM|DICOM/);
      const ds = await s.call('GET', '/api/datasets/uploaded?project=up');
      expect(ds.body.series_count).toBe(2);
      // Taken out of the dataset, then imported again naming it: back in.
      const ct = '1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322';
      expect((await s.call('DELETE', '/api/datasets/uploaded/series?project=up', { series: [ct] })).body.series_count).toBe(1);
      await upload(s, file('CT_small.dcm'), 'application/dicom', '?project=up&dataset=uploaded');
      expect((await s.call('GET', '/api/datasets/uploaded?project=up')).body.series_count).toBe(2);
    });

    it('a re-import that names a dataset puts the series kept as they were into it; an import that stores nothing creates no dataset', async () => {
      const again = await upload(s, file('CT_small.dcm'), 'application/dicom', '?project=up&dataset=second-look');
      expect(again.json).toMatchObject({ project: 'up', dataset: 'second-look', duplicates: 1 });
      expect((await s.call('GET', '/api/datasets/second-look/series?project=up')).body.total).toBe(1);
      const nothing = await upload(s, Buffer.from('x'.repeat(300)), 'application/dicom', '?project=up&dataset=never-made');
      expect(nothing.status).toBe(400);
      expect((await s.call('GET', '/api/datasets/never-made?project=up')).status).toBe(404);
    });

    it('takes multipart/form-data with files and a zip', async () => {
      await s.call('POST', '/api/projects', { name: 'forms' });
      const f = await form([
        { name: 'rtdose.dcm', data: file('rtdose.dcm') },
        { name: 'more.zip', data: await zipOf([{ name: 'ct.dcm', data: file('CT_small.dcm') }]) },
        { name: 'junk.bin', data: Buffer.from('junk') },
      ]);
      const r = await upload(s, f.body, f.type, '?project=forms');
      expect(r.status).toBe(200);
      expect(r.json.stored).toBe(2);
      expect(r.json.rejected).toBe(1);
      expect(r.json.files.map((x: { file: string }) => x.file)).toEqual(['rtdose.dcm', 'more.zip/ct.dcm', 'junk.bin']);
    });

    it("takes a browser's FormData body, whose boundary is mixed-case (Chromium's WebKitFormBoundary...)", async () => {
      await s.call('POST', '/api/projects', { name: 'browser-form' });
      const f = await form([{ name: 'CT_small.dcm', data: file('CT_small.dcm') }]);
      const ours = /boundary=(.+)$/.exec(f.type)![1]!;
      const chromium = '----WebKitFormBoundaryAbC7dEf9GhIjKlMn';
      const body = Buffer.from(f.body.toString('latin1').split(ours).join(chromium), 'latin1');
      const r = await upload(s, body, `multipart/form-data; boundary=${chromium}`, '?project=browser-form');
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ stored: 1, rejected: 0 });
    });
  });

  describe('search, facets and the typed metadata index', () => {
    beforeAll(async () => {
      await s.call('POST', '/api/projects', { name: 'idx' });
      const zip = await zipOf(['CT_small.dcm', 'MR_small.dcm', 'rtdose.dcm', 'JPEG2000.dcm', 'SC_rgb_small_odd.dcm', 'chrFren.dcm', 'chrJapMulti.dcm'].map((n) => ({
        name: n,
        data: existsSync(pydicomFile(n)) ? file(n) : readFileSync(join(pydicomFile(''), '..', 'charset_files', n)),
      })));
      const r = await upload(s, zip, 'application/zip', '?project=idx');
      expect(r.json.rejected).toBe(0);
    });

    it('filters by modality, free text, date range and tag values; pages and sorts', async () => {
      const ct = await s.call('GET', '/api/series?project=idx&modality=CT');
      expect(ct.body.items.map((x: { series_instance_uid: string }) => x.series_instance_uid)).toEqual([CT_SERIES]);
      const text = await s.call('GET', '/api/series?project=idx&q=compressedsamples%20ct1');
      expect(text.body.total).toBe(1);
      const dates = await s.call('GET', '/api/series?project=idx&study_date_from=2004-01-01&study_date_to=2004-01-31');
      expect(dates.body.items.map((x: { modality: string }) => x.modality)).toEqual(['CT']);
      const tag = await s.call('GET', '/api/series?project=idx&tag=SliceThickness=5');
      expect(tag.body.total).toBe(1);
      const tagRange = await s.call('GET', '/api/series?project=idx&tag=SliceThickness=%3E%3D1');
      expect(tagRange.body.total).toBeGreaterThanOrEqual(1);
      const page = await s.call('GET', '/api/series?project=idx&sort=modality&order=asc&limit=2&offset=1');
      const all = await s.call('GET', '/api/series?project=idx&sort=modality&order=asc&limit=100');
      expect(page.body.items.map((x: { series_instance_uid: string }) => x.series_instance_uid)).toEqual(all.body.items.slice(1, 3).map((x: { series_instance_uid: string }) => x.series_instance_uid));
      expect(all.body.total).toBe(7);
      const badTag = await s.call('GET', '/api/series?project=idx&tag=NotAKeyword=1');
      expect(badTag.status).toBe(400);
      expect(badTag.body.error.message).toMatch(/NotAKeyword/);
    });

    it('counts facets and keeps values typed, decoded by their character set', async () => {
      const f = await s.call('GET', '/api/series/facets?project=idx');
      expect(f.body.modality.find((m: { value: string }) => m.value === 'CT').count).toBe(1);
      expect(f.body.manufacturer.length).toBeGreaterThan(0);
      const one = await s.call('GET', `/api/series/${CT_SERIES}?project=idx`);
      expect(one.body.tags.SliceThickness).toBe(5);
      expect(one.body.tags.StudyDate).toBe('2004-01-19');
      expect(one.body.tags.PatientName).toBe('CompressedSamples^CT1');
      expect(one.body.tags.ImageType).toEqual(['ORIGINAL', 'PRIMARY', 'AXIAL']);
      const fr = await s.call('GET', '/api/series?project=idx&q=jérôme');
      expect(fr.body.total).toBe(1);
      const jp = await s.call('GET', '/api/series?project=idx&q=やまだ');
      expect(jp.body.total).toBe(1);
    });
  });

  describe('datasets', () => {
    it('create with series by query, list, add and remove by UID, rename, delete; a series may be in several', async () => {
      const made = await s.call('POST', '/api/datasets', { project: 'idx', name: 'ct-only', query: { modality: ['CT'] } });
      expect(made.status).toBe(201);
      expect(made.body.series_count).toBe(1);
      const mr = await s.call('GET', '/api/series?project=idx&modality=MR');
      const mrUid = mr.body.items[0].series_instance_uid;
      expect((await s.call('POST', '/api/datasets/ct-only/series', { project: 'idx', series: [mrUid] })).body.series_count).toBe(2);
      expect((await s.call('POST', '/api/datasets', { project: 'idx', name: 'mr', series: [mrUid] })).status).toBe(201);
      const memberships = (await s.call('GET', `/api/series/${mrUid}?project=idx`)).body.datasets;
      expect(memberships).toContain('ct-only');
      expect(memberships).toContain('mr');
      const unknown = await s.call('POST', '/api/datasets/mr/series', { project: 'idx', series: ['1.2.3.4.5'] });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.message).toMatch(/1\.2\.3\.4\.5/);
      const noDup = await s.call('POST', '/api/datasets', { project: 'idx', name: 'never', series: ['9.9.9'] });
      expect(noDup.status).toBe(404);
      expect((await s.call('GET', '/api/datasets/never?project=idx')).status).toBe(404);
      expect((await s.call('PATCH', '/api/datasets/ct-only', { project: 'idx', name: 'ct-and-mr' })).body.name).toBe('ct-and-mr');
      expect((await s.call('DELETE', '/api/datasets/ct-and-mr/series', { project: 'idx', series: [mrUid] })).body.series_count).toBe(1);
      const list = await s.call('GET', '/api/datasets?project=idx&sort=name');
      const names = list.body.items.map((d: { name: string }) => d.name);
      expect(names.filter((n: string) => !n.startsWith('import-'))).toEqual(['ct-and-mr', 'mr']);
      expect((await s.call('POST', '/api/datasets', { project: 'idx', name: 'bad name/..' })).status).toBe(400);
      expect((await s.call('DELETE', '/api/datasets/mr?project=idx')).status).toBe(200);
      expect((await s.call('GET', `/api/series/${mrUid}?project=idx`)).status).toBe(200);
    });
  });

  describe('downloads', () => {
    it('gives a series, a study and a dataset as a .zip of DICOM files', async () => {
      const series = await fetch(`${s.url}/api/series/${CT_SERIES}/download?project=idx`);
      expect(series.headers.get('content-type')).toBe('application/zip');
      const names = await zipNames(Buffer.from(await series.arrayBuffer()));
      expect(names).toEqual([`1.3.6.1.4.1.5962.1.2.1.20040119072730.12322/${CT_SERIES}/1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322.dcm`]);
      const ds = await fetch(`${s.url}/api/datasets/ct-and-mr/download?project=idx`);
      expect((await zipNames(Buffer.from(await ds.arrayBuffer()))).length).toBe(1);
      const study = await fetch(`${s.url}/api/studies/1.3.6.1.4.1.5962.1.2.1.20040119072730.12322/download?project=idx`);
      expect(study.status).toBe(200);
      expect((await fetch(`${s.url}/api/series/1.2.3/download?project=idx`)).status).toBe(404);
    });
  });

  describe('data workflows', () => {
    it('collect-metadata on a dataset puts metadata.zip with one JSON per series into the result bucket', async () => {
      const job = await s.call('POST', '/api/jobs', { workflow: 'collect-metadata', project: 'up', conf: { data_form: { dataset_name: 'uploaded' } } });
      expect(job.status).toBe(201);
      const run = await waitFor(async () => {
        const r = await s.call('GET', `/api/runs/${job.body.runs[0].id}`);
        return ['success', 'failed'].includes(r.body.state) ? r.body : undefined;
      }, 30_000, 'collect-metadata to end');
      expect(run.state, JSON.stringify(run.tasks)).toBe('success');
      const results = await s.call('GET', `/api/results/${run.id}?project=up`);
      expect(results.body.items.map((x: { path: string }) => x.path)).toEqual(['zip-json/metadata.zip']);
      const zip = Buffer.from(await (await fetch(`${s.url}${results.body.items[0].url}`)).arrayBuffer());
      const names = await zipNames(zip);
      expect(names.sort()).toEqual([`${CT_SERIES}.json`, '1.3.6.1.4.1.5962.1.3.4.1.20040826185059.5457.json'].sort());
    });

    it('get-input places the files, put-result stores what a workflow made, and delete-series deletes series', async () => {
      const ext = join(s.extRoot, 'copy-back');
      await mkdir(join(ext, 'workflows'), { recursive: true });
      await mkdir(join(ext, 'scripts'), { recursive: true });
      // A third-party extension: copies each input file with new UIDs (dcmodify), then put-result stores them.
      await writeFile(join(ext, 'scripts', 'relabel.sh'), [
        'set -e',
        'for d in "$BATCHES_INPUT_DIR"/*/; do',
        '  mkdir -p "$d$OPERATOR_OUT_DIR"',
        '  for f in "$d$OPERATOR_IN_DIR"/*.dcm; do',
        '    o="$d$OPERATOR_OUT_DIR/$(basename "$f")"; cp "$f" "$o"',
        '    dcmodify -nb -gin -gse -gst -i "(0008,103E)=relabelled" "$o"',
        '  done',
        'done',
      ].join('\n'));
      // The DAG spec the SDK's getInput() and putResult() compile to (a temp folder cannot import the SDK).
      await writeFile(join(ext, 'workflows', 'copy-back.json'), JSON.stringify({
        spec_version: 1, id: 'copy-back', workflow_form: { type: 'object' }, data_form: { type: 'object' },
        tasks: [
          { id: 'get-input', operator: 'get-input', builtin: 'get-input', level: 'batch', output_dir: 'get-input' },
          { id: 'relabel', operator: 'relabel', upstream: ['get-input'], level: 'batch', input_dir: 'get-input', output_dir: 'relabel', process: { command: ['sh', 'scripts/relabel.sh'] } },
          { id: 'put-result', operator: 'put-result', upstream: ['relabel'], builtin: 'put-result', builtin_params: { dataset: 'relabelled' }, level: 'batch', input_dir: 'relabel', output_dir: 'put-result' },
        ],
      }));
      await writeFile(join(ext, 'tessera-extension.json'), JSON.stringify({ name: 'copy-back', version: '1.0.0', kind: 'workflow', workflows: ['workflows/copy-back.json'] }));
      expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
      const job = await s.call('POST', '/api/jobs', { workflow: 'copy-back', project: 'idx', conf: { data_form: { identifiers: [CT_SERIES] } } });
      expect(job.status, JSON.stringify(job.body)).toBe(201);
      const run = await waitFor(async () => {
        const r = await s.call('GET', `/api/runs/${job.body.runs[0].id}`);
        return ['success', 'failed'].includes(r.body.state) ? r.body : undefined;
      }, 30_000, 'copy-back to end');
      expect(run.state, JSON.stringify(run.tasks)).toBe('success');
      const made = await s.call('GET', '/api/datasets/relabelled/series?project=idx');
      expect(made.body.total).toBe(1);
      expect(made.body.items[0].series_description).toBe('relabelled');
      const newUid = made.body.items[0].series_instance_uid;

      const del = await s.call('POST', '/api/jobs', { workflow: 'delete-series', project: 'idx', conf: { data_form: { identifiers: [newUid] } } });
      const ended = await waitFor(async () => {
        const r = await s.call('GET', `/api/runs/${del.body.runs[0].id}`);
        return ['success', 'failed'].includes(r.body.state) ? r.body : undefined;
      }, 30_000, 'delete-series to end');
      expect(ended.state).toBe('success');
      expect((await s.call('GET', `/api/series/${newUid}?project=idx`)).status).toBe(404);
      expect((await s.call('GET', '/api/datasets/relabelled?project=idx')).body.series_count).toBe(0);
      const projectDirs = await readdir(join(s.home, 'dicom'));
      for (const p of projectDirs.filter((d) => !d.startsWith('.') && d !== 'thumbnails')) {
        for (const study of await readdir(join(s.home, 'dicom', p))) expect(await readdir(join(s.home, 'dicom', p, study))).not.toContain(newUid);
      }
    });

    it('an arrival trigger starts a workflow when a matching series has fully arrived', async () => {
      const ext = join(s.extRoot, 'on-ct');
      await mkdir(ext, { recursive: true });
      const marks = join(s.home, 'triggered.txt');
      await writeFile(join(ext, 'on-ct.json'), JSON.stringify({
        spec_version: 1, id: 'on-ct', workflow_form: { type: 'object' }, data_form: { type: 'object' },
        tasks: [{ id: 'mark', operator: 'mark', output_dir: 'mark', level: 'batch', process: { command: ['sh', '-c', `ls "$BATCHES_INPUT_DIR" >> ${marks}`] } }],
      }));
      await writeFile(join(ext, 'tessera-extension.json'), JSON.stringify({ name: 'on-ct', version: '1.0.0', kind: 'workflow', workflows: ['on-ct.json'], triggers: [{ workflow: 'on-ct', when: { Modality: 'CT', PatientName: 'Compressed*' } }] }));
      expect((await s.call('POST', '/api/workflows/reload')).body.problems.filter((p: { dir: string }) => p.dir.includes('on-ct'))).toEqual([]);
      await s.call('POST', '/api/projects', { name: 'trig' });
      await upload(s, file('MR_small.dcm'), 'application/dicom', '?project=trig');
      await upload(s, file('CT_small.dcm'), 'application/dicom', '?project=trig');
      const text = await waitFor(async () => (existsSync(marks) ? readFileSync(marks, 'utf8') : undefined), 15_000, 'the triggered run');
      expect(text.trim().split('\n')).toEqual([CT_SERIES]);
    });
  });

  it('an extension whose trigger names a workflow it does not provide is refused with the reason', async () => {
    const ext = join(s.extRoot, 'bad-trigger');
    await mkdir(ext, { recursive: true });
    await writeFile(join(ext, 'w.json'), JSON.stringify({ spec_version: 1, id: 'bt', workflow_form: { type: 'object' }, data_form: { type: 'object' }, tasks: [{ id: 'a', operator: 'a', output_dir: 'a', builtin: 'empty' }] }));
    await writeFile(join(ext, 'tessera-extension.json'), JSON.stringify({ name: 'bad-trigger', version: '1.0.0', kind: 'workflow', workflows: ['w.json'], triggers: [{ workflow: 'nope', when: { Modality: 'CT' } }] }));
    const r = await s.call('POST', '/api/workflows/reload');
    expect(r.body.problems.map((p: { message: string }) => p.message).join('\n')).toMatch(/triggers\[0\] starts workflow "nope"/);
    await rm(ext, { recursive: true });
  });

  it('dcmodify is there for the workflow test', () => {
    expect(() => execFileSync('sh', ['-c', 'command -v dcmodify'])).not.toThrow();
  });
});
void mkdtemp;
void tmpdir;

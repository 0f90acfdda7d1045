import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DCMTK_ENV, PYDICOM_CHARSET_FILES, PYDICOM_FILES, pydicomFile, skipDicomTools } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { seeded, shuffle } from '../__fixtures__/contract-fuzz-inputs.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

const SEED = Number(process.env.TESSERA_FUZZ_SEED ?? 13);

interface Stored {
  file: string;
  study: string;
  series: string;
  sop: string;
}

interface ImportAnswer {
  files?: { file: string; status: string; sop_instance_uid?: string; series_instance_uid?: string; study_instance_uid?: string; error?: { message: string } }[];
  error?: { code: string; message: string };
}

/** Every .dcm of pydicom's test corpus, the character-set files too. */
function corpus(): string[] {
  const list = (dir: string) => readdirSync(dir).filter((f) => f.endsWith('.dcm')).sort().map((f) => join(dir, f));
  return [...list(PYDICOM_FILES), ...list(PYDICOM_CHARSET_FILES)];
}

describe.skipIf(skipDicomTools)("pydicom's whole test corpus, imported, then rendered, thumbnailed and read in a shuffled order", () => {
  let s: TestServer;
  let dir: string;
  const stored: Stored[] = [];
  const refused: string[] = [];
  const good: { name: string; path: string }[] = [];

  beforeAll(async () => {
    s = await startTestServer();
    dir = mkdtempSync(join(tmpdir(), 'tessera-corpus-'));
    expect((await s.call('POST', '/api/projects', { name: 'corpus' })).status).toBe(201);
    expect((await s.call('POST', '/api/projects', { name: 'keep' })).status).toBe(201);
    const upload = async (project: string, bytes: Buffer): Promise<{ status: number; body: ImportAnswer }> => {
      const r = await fetch(`${s.url}/api/dicom/import?project=${project}`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(bytes) });
      return { status: r.status, body: (await r.json()) as ImportAnswer };
    };
    // Known-good instances, in a project of its own: one per codec a trap could poison (the JPEG encoder, the JPEG and JPEG 2000 decoders).
    for (const name of ['CT_small.dcm', 'SC_rgb_jpeg_dcmtk.dcm', 'JPEG2000.dcm']) {
      const f = (await upload('keep', readFileSync(pydicomFile(name)))).body.files![0]!;
      good.push({ name, path: `/projects/keep/dicom-web/studies/${f.study_instance_uid}/series/${f.series_instance_uid}/instances/${f.sop_instance_uid}/rendered` });
    }

    for (const path of corpus()) {
      let r = await upload('corpus', readFileSync(path));
      expect(r.status, `import of ${basename(path)}: ${JSON.stringify(r.body)}`).toBeLessThan(500);
      // Files that share UIDs with one already stored (rtdose_expb.dcm, rtdose_rle.dcm, the MR_small variants...) are imported again as copies with new UIDs.
      if (r.status === 200 && r.body.files![0]!.status === 'duplicate') {
        const copy = join(dir, basename(path));
        copyFileSync(path, copy);
        execFileSync('dcmodify', ['-nb', '-gin', '-gse', '-gst', '-ie', copy], { env: DCMTK_ENV, stdio: 'ignore' });
        r = await upload('corpus', readFileSync(copy));
        expect(r.status, `import of ${basename(path)} with new UIDs: ${JSON.stringify(r.body)}`).toBe(200);
        expect(r.body.files![0]!.status).toBe('stored');
      }
      if (r.status !== 200) {
        expect(r.body.error?.message, basename(path)).toBeTruthy();
        refused.push(`${basename(path)}: ${r.status} ${r.body.error!.message}`);
        continue;
      }
      const file = r.body.files![0]!;
      stored.push({ file: basename(path), study: file.study_instance_uid!, series: file.series_instance_uid!, sop: file.sop_instance_uid! });
    }
  }, 180_000);
  afterAll(async () => {
    await s?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('stores every valid file, the copies of duplicates under their new UIDs', () => {
    console.log(`pydicom corpus: ${stored.length} stored, ${refused.length} refused:\n${refused.join("\n")}`);
    expect(stored.length).toBeGreaterThanOrEqual(70);
    for (const name of ['rtdose.dcm', 'rtdose_expb.dcm', 'rtdose_rle.dcm', 'CT_small.dcm', 'MR_small.dcm', 'MR_small_RLE.dcm']) {
      expect(stored.map((x) => x.file), name).toContain(name);
    }
  });

  it('answers 2xx or a 4xx naming the problem for every resource of every instance, never 5xx, and known-good instances render after each failure', { timeout: 240_000 }, async () => {
    const requests = stored.flatMap((x) => {
      const i = `/projects/corpus/dicom-web/studies/${x.study}/series/${x.series}/instances/${x.sop}`;
      return [
        { x, path: `${i}/rendered`, accept: 'image/jpeg' },
        { x, path: `${i}/rendered`, accept: 'image/png' },
        { x, path: `${i}/thumbnail`, accept: 'image/jpeg' },
        { x, path: `${i}/metadata`, accept: 'application/dicom+json' },
        { x, path: `${i}/frames/1`, accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' },
        { x, path: `${i}/frames/1`, accept: 'multipart/related; type="application/octet-stream"' },
        { x, path: `/projects/corpus/dicom-web/studies/${x.study}/series/${x.series}/metadata`, accept: 'application/dicom+json' },
      ];
    });
    const problems: string[] = [];
    const counts: Record<string, number> = {};
    for (const q of shuffle(requests, seeded(SEED))) {
      const r = await fetch(`${s.url}${q.path}`, { headers: { accept: q.accept } });
      const body = Buffer.from(await r.arrayBuffer());
      const kind = `${q.path.split('/').slice(-1)[0]} ${q.accept.split(';')[0]}`;
      const key = `${kind} ${r.status}`;
      counts[key] = (counts[key] ?? 0) + 1;
      if (r.status >= 500) problems.push(`${q.x.file} ${kind}: ${r.status} ${body.toString('utf8', 0, 300)}`);
      if (r.status >= 400) {
        if (process.env.TESSERA_CORPUS_VERBOSE) console.log(`${q.x.file} ${kind}: ${r.status} ${body.toString('utf8', 0, 300)}`);
        const message = (JSON.parse(body.toString('utf8')) as { error?: { message?: string } }).error?.message;
        if (!message || message.length < 10) problems.push(`${q.x.file} ${kind}: ${r.status} without a message`);
        // A failure must not poison the next call (a codec's trap): the known-good instances still render, as JPEG and PNG.
        for (const g of good) {
          for (const accept of ['image/jpeg', 'image/png']) {
            const after = await fetch(`${s.url}${g.path}`, { headers: { accept } });
            await after.arrayBuffer();
            if (after.status !== 200) problems.push(`after ${q.x.file} ${kind} (${r.status}), ${g.name} rendered as ${accept} answered ${after.status}`);
          }
        }
      } else if (kind.startsWith('rendered') || kind.startsWith('thumbnail')) {
        const jpeg = body[0] === 0xff && body[1] === 0xd8;
        const png = body.subarray(1, 4).toString('latin1') === 'PNG';
        if (q.accept === 'image/png' ? !png : !jpeg) problems.push(`${q.x.file} ${kind}: 200 but not a ${q.accept} image`);
      }
    }
    console.log(`pydicom corpus: ${requests.length} requests: ${JSON.stringify(counts)}`);
    expect(problems).toEqual([]);
  });

  it("gives every series the platform's own thumbnail or a thumbnail_error saying why, and serves it", { timeout: 120_000 }, async () => {
    type Row = { series_instance_uid: string; thumbnail: string | null; thumbnail_error: string | null };
    const rows = await waitFor(
      async () => {
        const r = await s.call<{ items: Row[]; total: number }>('GET', '/api/series?project=corpus&limit=1000');
        return r.body.items.every((x) => x.thumbnail !== null || x.thumbnail_error !== null) && r.body.items;
      },
      90_000,
      'every series has a thumbnail or a thumbnail error',
    );
    expect(rows.length).toBe(new Set(stored.map((x) => x.series)).size);
    const problems: string[] = [];
    for (const row of rows) {
      const r = await fetch(`${s.url}/api/series/${row.series_instance_uid}/thumbnail?project=corpus`);
      const body = Buffer.from(await r.arrayBuffer());
      if (row.thumbnail !== null ? r.status !== 200 || body.subarray(1, 4).toString('latin1') !== 'PNG' : r.status !== 404 || !body.toString('utf8').includes(row.thumbnail_error!)) {
        problems.push(`${row.series_instance_uid}: ${r.status} ${body.toString('utf8', 0, 200)}`);
      }
    }
    console.log(`pydicom corpus: ${rows.filter((x) => x.thumbnail).length} of ${rows.length} series have a thumbnail; the others say why: ${[...new Set(rows.map((x) => x.thumbnail_error).filter(Boolean))].join(' | ')}`);
    expect(problems).toEqual([]);
  });
});

import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMultipart } from '../../dicom/src/dicomweb/multipart-reader.ts';
import { CliError } from './api-client.ts';
import { serverFilename } from './commands/export-command.ts';
import { confirm } from './confirm.ts';
import { ProgressLine } from './progress.ts';
import { filterBody, filterQuery, type SeriesFilterOptions } from './series-filters.ts';
import { dispositionFilename, findFiles, LocalReadError, multipartBody, planUploads, type LocalFile } from './upload-files.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-cli-upload-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const file = (name: string, size: number, zip = false): LocalFile => ({ path: `/x/${name}`, name, size, zip });

describe('findFiles', () => {
  it('walks folders in name order, leaves out hidden files and DICOMDIR, takes what is named, follows links once', async () => {
    const root = join(dir, 'walk');
    await mkdir(join(root, 'b', '.git'), { recursive: true });
    await mkdir(join(root, 'a'), { recursive: true });
    await writeFile(join(root, 'b', '2.dcm'), 'xx');
    await writeFile(join(root, 'b', '.git', 'config'), 'x');
    await writeFile(join(root, 'a', '1.dcm'), 'x');
    await writeFile(join(root, 'a', 'DICOMDIR'), 'x');
    await writeFile(join(root, '.DS_Store'), 'x');
    await writeFile(join(root, 'c.ZIP'), 'PK');
    await symlink(root, join(root, 'b', 'loop'));
    const hidden = join(dir, '.named.dcm');
    await writeFile(hidden, 'x');

    const found = await findFiles([`${root}/`, hidden]);
    expect(found.files.map((f) => f.name)).toEqual([`${root}/a/1.dcm`, `${root}/b/2.dcm`, `${root}/c.ZIP`, hidden]);
    expect(found.files.map((f) => [f.size, f.zip])).toEqual([[1, false], [2, false], [2, true], [1, false]]);
    expect(found.skipped).toBe(3);
  });

  it('is a usage error for a path that does not exist', async () => {
    const err = await findFiles([join(dir, 'nope')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(2);
    expect((err as CliError).message).toContain('does not exist');
  });
});

describe('planUploads', () => {
  it('batches files by count and bytes, sends each .zip alone and a large file alone', () => {
    const files = [file('1', 10), file('2', 10), file('3', 10), file('a.zip', 5, true), file('4', 100), file('5', 1)];
    const jobs = [...planUploads(files, { maxFiles: 2, maxBytes: 50 })];
    expect(jobs.map((j) => [j.kind, j.files.map((f) => f.name).join(','), j.bytes])).toEqual([
      ['multipart', '1,2', 20],
      ['zip', 'a.zip', 5],
      ['multipart', '3', 10],
      ['multipart', '4', 100],
      ['multipart', '5', 1],
    ]);
  });
});

describe('multipartBody', () => {
  it('streams files from disk into a form-data body the server reads back, names with quotes and accents intact', async () => {
    const a = join(dir, 'a.dcm');
    const b = join(dir, 'b.dcm');
    await writeFile(a, Buffer.alloc(3 * 1024 * 1024, 7));
    await writeFile(b, 'second');
    const files: LocalFile[] = [
      { path: a, name: 'dir/"quoted" \\ été.dcm', size: 3 * 1024 * 1024, zip: false },
      { path: join(dir, 'gone.dcm'), name: 'gone.dcm', size: 1, zip: false },
      { path: b, name: 'b.dcm', size: 6, zip: false },
    ];
    let sent = 0;
    const unreadable: string[] = [];
    const body = multipartBody(files, 'BOUNDARY', (n) => (sent += n), (u) => unreadable.push(`${u.file.name}: ${(u.error as NodeJS.ErrnoException).code}`));
    const parts = [];
    for await (const p of readMultipart(body, 'multipart/form-data; boundary=BOUNDARY', { maxPartBytes: 1 << 30, maxTotalBytes: 1 << 30 })) parts.push(p);
    expect(parts.map((p) => p.filename)).toEqual(['dir/"quoted" \\ été.dcm', 'b.dcm']);
    expect(parts[0]!.body.length).toBe(3 * 1024 * 1024);
    expect(parts[1]!.body.toString()).toBe('second');
    expect(sent).toBe(3 * 1024 * 1024 + 6);
    expect(unreadable).toEqual(['gone.dcm: ENOENT']);
  });

  it('fails with an error naming the file when a file fails while it is read', async () => {
    const body = multipartBody([{ path: dir, name: 'a-folder.dcm', size: 1, zip: false }], 'B', () => {}, () => {});
    const err = await (async () => {
      for await (const _ of body) {
        // drain
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LocalReadError);
    expect((err as LocalReadError).message).toMatch(/^could not read a-folder\.dcm: EISDIR/);
  });

  it('writes a plain filename when it can, and an RFC 5987 one next to it when it cannot', () => {
    expect(dispositionFilename('a/b c.dcm')).toBe('filename="a/b c.dcm"');
    expect(dispositionFilename('été "x".dcm')).toBe(`filename="_t_ _x_.dcm"; filename*=UTF-8''%C3%A9t%C3%A9%20%22x%22.dcm`);
  });
});

describe('serverFilename', () => {
  it('takes the name of a Content-Disposition, never a path', () => {
    expect(serverFilename('attachment; filename="series-1.2.3.zip"')).toBe('series-1.2.3.zip');
    expect(serverFilename('attachment; filename="../../etc/passwd"')).toBe('passwd');
    expect(serverFilename(`attachment; filename*=UTF-8''d%C3%A9j%C3%A0.zip`)).toBe('déjà.zip');
    expect(serverFilename('attachment; filename=".."')).toBeUndefined();
    expect(serverFilename(null)).toBeUndefined();
  });
});

describe('series filters', () => {
  const none: SeriesFilterOptions = {};
  it('become query parameters and a JSON query', () => {
    const o = { ...none, query: 'lung', modality: ['CT', 'MR'], from: '2024-01-01', tag: ['SliceThickness=1.25', 'SeriesDescription=*T1*'], inDataset: 'd' };
    expect(filterQuery(o)).toMatchObject({ q: 'lung', modality: 'CT,MR', study_date_from: '2024-01-01', tag: ['SliceThickness=1.25', 'SeriesDescription=*T1*'], dataset: 'd' });
    expect(filterBody(o)).toEqual({ q: 'lung', modality: ['CT', 'MR'], study_date_from: '2024-01-01', tags: { SliceThickness: '1.25', SeriesDescription: '*T1*' }, dataset: 'd' });
    expect(filterBody(none)).toBeUndefined();
  });

  it('catch bad dates, tags and UIDs as usage errors', () => {
    for (const bad of [{ ...none, from: '2024-1-1' }, { ...none, tag: ['SliceThickness'] }, { ...none, study: '1.2.abc' }]) {
      expect(() => filterQuery(bad)).toThrow(CliError);
      try {
        filterQuery(bad);
      } catch (err) {
        expect((err as CliError).exitCode).toBe(2);
      }
    }
  });
});

describe('confirm', () => {
  const ask = async (answer: string | undefined) => {
    const input = new PassThrough();
    const output = new PassThrough();
    const asked = confirm('Delete 2 series?', { input, output });
    if (answer === undefined) input.end();
    else input.write(`${answer}\n`);
    const yes = await asked;
    return { yes, shown: String(output.read() ?? '') };
  };
  it('takes only y or yes as a yes', async () => {
    expect(await ask('y')).toEqual({ yes: true, shown: 'Delete 2 series? [y/N] ' });
    expect((await ask('YES')).yes).toBe(true);
    expect((await ask('')).yes).toBe(false);
    expect((await ask('no')).yes).toBe(false);
    expect((await ask(undefined)).yes).toBe(false);
  });
});

describe('ProgressLine', () => {
  const sink = (isTTY: boolean) => {
    const out = new PassThrough() as PassThrough & { isTTY?: boolean };
    out.isTTY = isTTY;
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    return { out, text: () => text };
  };

  it('redraws one line in place on a terminal', () => {
    const s = sink(true);
    let n = 0;
    const p = new ProgressLine(() => `got ${n}`, { stream: s.out as unknown as NodeJS.WriteStream });
    n = 1;
    p.tick();
    p.done('finished');
    expect(s.text()).toBe('\r\x1b[Kgot 1\r\x1b[Kfinished\n');
  });

  it('prints a line every interval off a terminal, and the last one; nothing when quiet', async () => {
    const s = sink(false);
    const p = new ProgressLine(() => 'moving', { stream: s.out as unknown as NodeJS.WriteStream, intervalMs: 20 });
    p.tick();
    await new Promise((r) => setTimeout(r, 70));
    p.done('done');
    expect(s.text()).toMatch(/^(moving\n)+done\n$/);
    const q = sink(false);
    const quiet = new ProgressLine(() => 'moving', { stream: q.out as unknown as NodeJS.WriteStream, intervalMs: 20, quiet: true });
    await new Promise((r) => setTimeout(r, 50));
    quiet.done('done');
    expect(q.text()).toBe('');
  });
});

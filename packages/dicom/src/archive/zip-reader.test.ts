import { randomBytes } from 'node:crypto';
import { createWriteStream, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ZipFile } from 'yazl';
import { TesseraError } from '@tessera/model';
import { rawZip, type RawEntry } from '../__fixtures__/raw-zip.ts';
import { readZipEntries, type ZipEntry, type ZipLimits } from './zip-reader.ts';

const LIMITS: ZipLimits = { maxEntryBytes: 100 * 1024 * 1024, maxTotalBytes: 200 * 1024 * 1024 };
const SYMLINK = 0o120777;

/** Every entry read, and the error that ended the reading, if any. */
async function drain(file: string, limits = LIMITS): Promise<{ entries: ZipEntry[]; error: TesseraError | undefined }> {
  const entries: ZipEntry[] = [];
  try {
    for await (const entry of readZipEntries(file, limits)) entries.push(entry);
    return { entries, error: undefined };
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    return { entries, error: err as TesseraError };
  }
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('readZipEntries', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-zip-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function yazlZip(name: string, build: (zip: ZipFile) => void): Promise<string> {
    const zip = new ZipFile();
    build(zip);
    zip.end();
    const file = join(dir, name);
    await pipeline(zip.outputStream, createWriteStream(file));
    return file;
  }

  async function raw(entries: RawEntry[]): Promise<string> {
    const file = join(dir, `raw-${randomBytes(4).toString('hex')}.zip`);
    await writeFile(file, rawZip(entries));
    return file;
  }

  it('reads the files of an archive in order, byte-equal, skipping directories and macOS metadata', async () => {
    const one = randomBytes(200_000);
    const two = Buffer.alloc(300_000, 'compressible ');
    const file = await yazlZip('study.zip', (zip) => {
      zip.addEmptyDirectory('Study/');
      zip.addBuffer(one, 'Study/Series 1/IM0001.dcm', { compress: false });
      zip.addBuffer(two, 'Study/Series 1/IM0002.dcm', { compress: true });
      zip.addBuffer(Buffer.alloc(0), 'Study/empty.dcm');
      zip.addBuffer(Buffer.from('mac'), '__MACOSX/Study/._IM0001.dcm');
      zip.addBuffer(Buffer.from('mac'), 'Study/.DS_Store');
      zip.addBuffer(Buffer.from('root'), 'DICOMDIR');
    });
    const { entries, error } = await drain(file);
    expect(error).toBeUndefined();
    expect(entries.map((e) => e.name)).toEqual(['Study/Series 1/IM0001.dcm', 'Study/Series 1/IM0002.dcm', 'Study/empty.dcm', 'DICOMDIR']);
    expect(entries.map((e) => e.data.toString('base64'))).toEqual([one, two, Buffer.alloc(0), Buffer.from('root')].map((b) => b.toString('base64')));
  });

  it('reads backslash names as folders', async () => {
    const { entries } = await drain(await raw([{ name: 'Study\\Series\\IM1.dcm', data: Buffer.from('x') }]));
    expect(entries.map((e) => e.name)).toEqual(['Study/Series/IM1.dcm']);
  });

  describe('refuses the whole archive, before yielding anything', () => {
    const cases: Array<[string, RawEntry, RegExp]> = [
      ['a ".." name', { name: '../evil.dcm' }, /"\.\.\/evil\.dcm" has a "\.\." segment/],
      ['a ".." segment inside', { name: 'Study/../../evil.dcm' }, /has a "\.\." segment/],
      ['a ".." behind backslashes', { name: 'Study\\..\\..\\evil.dcm' }, /"Study\/\.\.\/\.\.\/evil\.dcm" has a "\.\." segment/],
      ['an absolute name', { name: '/etc/cron.d/evil' }, /"\/etc\/cron\.d\/evil" is an absolute path/],
      ['a drive letter', { name: 'C:\\evil.dcm' }, /"C:\/evil\.dcm" is an absolute path/],
      ['a UNC path', { name: '\\\\server\\share\\evil.dcm' }, /is an absolute path/],
      ['a symbolic link', { name: 'Study/link.dcm', data: Buffer.from('/etc/passwd'), mode: SYMLINK }, /"Study\/link\.dcm" is a symbolic link/],
      ['an encrypted entry', { name: 'Study/secret.dcm', data: Buffer.from('x'), method: 8, flags: 1 }, /"Study\/secret\.dcm" is encrypted/],
      ['an unknown compression method', { name: 'Study/IM.dcm', data: Buffer.from('x'), method: 12 }, /compression method 12/],
    ];
    for (const [what, bad, message] of cases) {
      it(`for ${what}`, async () => {
        const fds = openFds();
        const file = await raw([{ name: 'Study/IM0001.dcm', data: Buffer.from('fine') }, bad]);
        const { entries, error } = await drain(file);
        expect(entries).toEqual([]);
        expect(error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: expect.stringMatching(message) });
        expect(error?.message).toMatch(/^the \.zip archive is refused: its entry /);
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(openFds()).toBe(fds);
      });
    }
  });

  describe('refuses an archive whose declared sizes break a limit, naming the entry and the limit', () => {
    it('a file over maxEntryBytes', async () => {
      const file = await raw([{ name: 'a.dcm', data: Buffer.alloc(100) }, { name: 'big.dcm', data: Buffer.alloc(2000) }]);
      const { entries, error } = await drain(file, { maxEntryBytes: 1000, maxTotalBytes: 1e6 });
      expect(entries).toEqual([]);
      expect(error).toMatchObject({ code: 'TESSERA_PAYLOAD_TOO_LARGE', status: 413, message: expect.stringMatching(/"big\.dcm".*2000 bytes.*limit of 1000 bytes/) });
    });

    it('files that add up to more than maxTotalBytes', async () => {
      const file = await raw([1, 2, 3].map((i) => ({ name: `${i}.dcm`, data: Buffer.alloc(400) })));
      const { entries, error } = await drain(file, { maxEntryBytes: 1000, maxTotalBytes: 1000 });
      expect(entries).toEqual([]);
      expect(error).toMatchObject({ code: 'TESSERA_PAYLOAD_TOO_LARGE', message: expect.stringMatching(/more than 1000 bytes.*"3\.dcm"/) });
    });

    it('more files than maxEntries, not counting directories and macOS metadata', async () => {
      const names = ['Study/', '__MACOSX/._1.dcm', '1.dcm', '2.dcm', '3.dcm'];
      const { error } = await drain(await raw(names.map((name) => ({ name }))), { ...LIMITS, maxEntries: 2 });
      expect(error).toMatchObject({ code: 'TESSERA_PAYLOAD_TOO_LARGE', message: expect.stringContaining('more than 2 files') });
      expect((await drain(await raw(names.slice(0, 4).map((name) => ({ name }))), { ...LIMITS, maxEntries: 2 })).error).toBeUndefined();
    });

    it('a zip bomb: 50 MB of zeros deflated, a ratio far over 200', async () => {
      const file = await yazlZip('bomb.zip', (zip) => {
        zip.addBuffer(Buffer.from('fine'), 'fine.dcm');
        zip.addBuffer(Buffer.alloc(50 * 1024 * 1024), 'zeros.dcm', { compress: true });
      });
      const { entries, error } = await drain(file);
      expect(entries).toEqual([]);
      expect(error).toMatchObject({ code: 'TESSERA_PAYLOAD_TOO_LARGE', message: expect.stringMatching(/"zeros\.dcm".*inflate \d+ times.*ratio of 200/) });
      const allowed = await drain(file, { ...LIMITS, maxCompressionRatio: 5000 });
      expect(allowed.entries.map((e) => e.data.length)).toEqual([4, 50 * 1024 * 1024]);
    });
  });

  describe('says a file is not a valid .zip archive', () => {
    it('when it is not a zip at all', async () => {
      const file = join(dir, 'not.zip');
      await writeFile(file, Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), randomBytes(1000)]));
      const { error } = await drain(file);
      expect(error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: expect.stringMatching(/^not a valid \.zip archive: .+/) });
    });

    it('when it is truncated', async () => {
      const whole = await yazlZip('whole.zip', (zip) => {
        for (let i = 0; i < 5; i++) zip.addBuffer(randomBytes(10_000), `${i}.dcm`);
      });
      const file = join(dir, 'truncated.zip');
      const bytes = await readFile(whole);
      for (const length of [bytes.length - 10, Math.floor(bytes.length / 2), 0]) {
        await writeFile(file, bytes.subarray(0, length));
        const { entries, error } = await drain(file);
        expect(entries).toEqual([]);
        expect(error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: expect.stringMatching(/^not a valid \.zip archive: /) });
      }
    });

    it('when an entry inflates to more than its declared size, or its CRC is wrong', async () => {
      const liar = await raw([{ name: 'liar.dcm', data: Buffer.alloc(100_000), method: 8, declaredSize: 10 }]);
      expect((await drain(liar)).error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: expect.stringMatching(/^not a valid \.zip archive: entry "liar\.dcm": /) });
      const damaged = await raw([{ name: 'ok.dcm', data: Buffer.from('ok') }, { name: 'damaged.dcm', data: Buffer.from('payload'), crc: 1234 }]);
      const { entries, error } = await drain(damaged);
      expect(entries.map((e) => e.name)).toEqual(['ok.dcm']);
      expect(error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: expect.stringContaining('entry "damaged.dcm": its CRC-32 does not match') });
    });
  });

  it('closes the archive when the consumer stops early', async () => {
    const file = await raw([1, 2, 3].map((i) => ({ name: `${i}.dcm`, data: Buffer.from(String(i)) })));
    const fds = openFds();
    for await (const entry of readZipEntries(file, LIMITS)) {
      expect(openFds()).toBe(fds + 1);
      expect(entry.name).toBe('1.dcm');
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(openFds()).toBe(fds);
  });
});

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openPromise } from 'yauzl';
import { readZipEntries } from './zip-reader.ts';
import { zipStream, type ZipStreamEntry } from './zip-writer.ts';

const LIMITS = { maxEntryBytes: 10 * 1024 * 1024, maxTotalBytes: 100 * 1024 * 1024 };

function hasUnzip(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v unzip'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function* listOf(entries: ZipStreamEntry[]): AsyncGenerator<ZipStreamEntry> {
  yield* entries;
}

describe('zipStream', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-zipstream-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeZip(entries: AsyncIterable<ZipStreamEntry>, compress?: boolean): Promise<string> {
    const file = join(dir, `out-${randomBytes(4).toString('hex')}.zip`);
    await pipeline(zipStream(entries, compress === undefined ? undefined : { compress }), createWriteStream(file));
    return file;
  }

  /** 100 instances, half from files on disk and half from buffers, in Study/Series/instance paths. */
  async function hundredInstances(): Promise<{ entries: ZipStreamEntry[]; bytes: Map<string, Buffer> }> {
    const entries: ZipStreamEntry[] = [];
    const bytes = new Map<string, Buffer>();
    await mkdir(join(dir, 'store'));
    for (let i = 0; i < 100; i++) {
      const name = `Study 1.2.3/Series ${i % 4}/IM${String(i).padStart(4, '0')}.dcm`;
      const data = i % 10 === 0 ? Buffer.alloc(0) : randomBytes(1000 + i * 500);
      bytes.set(name, data);
      if (i % 2 === 0) {
        const file = join(dir, 'store', `${i}.dcm`);
        await writeFile(file, data);
        entries.push({ name, file });
      } else {
        entries.push({ name, data });
      }
    }
    return { entries, bytes };
  }

  it('writes 100 files and buffers that readZipEntries reads back byte-equal, stored by default', async () => {
    const { entries, bytes } = await hundredInstances();
    const file = await writeZip(listOf(entries));
    const read = new Map<string, string>();
    for await (const entry of readZipEntries(file, LIMITS)) read.set(entry.name, entry.data.toString('base64'));
    expect([...read.keys()]).toEqual([...bytes.keys()]);
    expect([...read.values()]).toEqual([...bytes.values()].map((b) => b.toString('base64')));

    const zip = await openPromise(file, { lazyEntries: true });
    const methods = new Set<number>();
    for await (const entry of zip.eachEntry()) methods.add(entry.compressionMethod);
    expect(methods).toEqual(new Set([0]));
  });

  it('deflates when asked, and writes archives unzip accepts', async () => {
    const text = Buffer.alloc(100_000, 'DICOM ');
    const file = await writeZip(listOf([{ name: 'Study/report.txt', data: text }]), true);
    const read = [];
    for await (const entry of readZipEntries(file, LIMITS)) read.push(entry);
    expect(read.map((e) => e.data.equals(text))).toEqual([true]);
    const zip = await openPromise(file, { lazyEntries: true });
    for await (const entry of zip.eachEntry()) expect(entry.compressedSize).toBeLessThan(text.length / 10);

    if (!hasUnzip()) return console.warn('unzip not installed: skipping the unzip -t check');
    const { entries } = await hundredInstances();
    execFileSync('unzip', ['-tq', await writeZip(listOf(entries))], { stdio: 'pipe' });
  });

  it('pulls entries only as fast as the archive is read, and stops pulling when it is destroyed', async () => {
    let pulled = 0;
    let closed = false;
    async function* many(): AsyncGenerator<ZipStreamEntry> {
      try {
        for (let i = 0; i < 1000; i++) {
          pulled++;
          yield { name: `Study/IM${i}.dcm`, data: Buffer.alloc(256 * 1024, i) };
        }
      } finally {
        closed = true;
      }
    }
    const stream = zipStream(many());
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(pulled).toBeLessThanOrEqual(3);
    stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(closed).toBe(true);
  });

  it('fails the stream with TESSERA_INTERNAL for a name that climbs out or is absolute (our bug)', async () => {
    for (const name of ['../evil.dcm', 'Study/../../evil.dcm', 'Study\\..\\..\\evil.dcm', '/abs.dcm', 'C:\\abs.dcm', '']) {
      const entries = listOf([
        { name: 'Study/fine.dcm', data: Buffer.from('fine') },
        { name, data: Buffer.from('evil') },
      ]);
      await expect(writeZip(entries), name).rejects.toMatchObject({ code: 'TESSERA_INTERNAL', message: expect.stringContaining('bug') });
    }
    await expect(writeZip(listOf([{ name: 'a.dcm' }]))).rejects.toMatchObject({ code: 'TESSERA_INTERNAL' });
  });

  it('fails the stream when a file cannot be read', async () => {
    await expect(writeZip(listOf([{ name: 'a.dcm', file: join(dir, 'missing.dcm') }]))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { readMultipart, type MultipartPart } from './multipart-reader.ts';
import { multipartRelated, type RelatedPart } from './multipart-writer.ts';

const LIMITS = { maxPartBytes: 10 * 1024 * 1024, maxTotalBytes: 100 * 1024 * 1024 };

async function readBack(body: { contentType: string; stream: Readable }): Promise<MultipartPart[]> {
  const parts: MultipartPart[] = [];
  for await (const part of readMultipart(body.stream, body.contentType, LIMITS)) parts.push(part);
  return parts;
}

async function* listOf(parts: RelatedPart[]): AsyncGenerator<RelatedPart> {
  yield* parts;
}

describe('multipartRelated', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-multipart-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a multipart/related body that reads back byte-equal, from buffers, streams and loaders', async () => {
    const fileBytes = randomBytes(300_000);
    const file = join(dir, 'instance.dcm');
    await writeFile(file, fileBytes);
    const bodies = [randomBytes(1000), Buffer.alloc(0), fileBytes, Buffer.from('loaded later')];
    const body = multipartRelated(
      listOf([
        { contentType: 'application/dicom', body: bodies[0] as Buffer, headers: { 'Content-Location': '/studies/1.2/series/3.4/instances/5.6' } },
        { contentType: 'application/dicom', body: bodies[1] as Buffer },
        { contentType: 'application/dicom', body: createReadStream(file, { highWaterMark: 4096 }) },
        { contentType: 'application/octet-stream', body: async () => bodies[3] as Buffer },
      ]),
      { type: 'application/dicom' },
    );
    expect(body.contentType).toMatch(/^multipart\/related; type="application\/dicom"; boundary=tessera-[0-9a-f]{32}$/);
    const parts = await readBack(body);
    // As base64: Vitest compares buffers element by element, which takes seconds for a few hundred KB.
    expect(parts.map((p) => p.body.toString('base64'))).toEqual(bodies.map((b) => b.toString('base64')));
    expect(parts.map((p) => p.contentType)).toEqual(['application/dicom', 'application/dicom', 'application/dicom', 'application/octet-stream']);
    expect(parts[0]?.headers['content-location']).toBe('/studies/1.2/series/3.4/instances/5.6');
  });

  it('round-trips parts that hold their own boundary string and 1,000 tiny parts', async () => {
    let boundary = '';
    // Parts are pulled lazily, so they can be built from the boundary the writer has just chosen.
    async function* tricky(): AsyncGenerator<RelatedPart> {
      for (const text of [`--${boundary}`, `--${boundary}--`, `\n--${boundary}\r\n`, `\r\n--${boundary.slice(0, -1)}`]) {
        yield { contentType: 'application/dicom', body: Buffer.from(text) };
      }
    }
    const body = multipartRelated(tricky(), { type: 'application/dicom' });
    boundary = /boundary=(.*)$/.exec(body.contentType)?.[1] ?? '';
    expect((await readBack(body)).map((p) => p.body.toString())).toEqual([
      `--${boundary}`,
      `--${boundary}--`,
      `\n--${boundary}\r\n`,
      `\r\n--${boundary.slice(0, -1)}`,
    ]);

    const tiny = Array.from({ length: 1000 }, (_, i) => String(i));
    const many = multipartRelated(listOf(tiny.map((text) => ({ contentType: 'application/dicom', body: Buffer.from(text) }))), { type: 'application/dicom' });
    expect((await readBack(many)).map((p) => p.body.toString())).toEqual(tiny);
  });

  it('pulls parts and loads their bodies only as fast as the stream is read, and stops when it is destroyed', async () => {
    let loaded = 0;
    let closed = false;
    async function* lazyParts(): AsyncGenerator<RelatedPart> {
      try {
        for (let i = 0; i < 100; i++) {
          yield { contentType: 'application/dicom', body: async () => (loaded++, Buffer.alloc(1024 * 1024, i)) };
        }
      } finally {
        closed = true;
      }
    }
    const body = multipartRelated(lazyParts(), { type: 'application/dicom' });
    const first = await new Promise<Buffer>((resolve) => body.stream.once('data', resolve));
    expect(first.toString()).toMatch(/^--tessera-/);
    body.stream.pause();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(loaded).toBeLessThanOrEqual(2);
    body.stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(closed).toBe(true);
  });

  it('refuses header values that would break the framing: our bug, so TESSERA_INTERNAL', async () => {
    expect(() => multipartRelated(listOf([]), { type: 'application/dicom"; boundary=x' })).toThrow(TesseraError);
    const body = multipartRelated(listOf([{ contentType: 'application/dicom', body: Buffer.from('x'), headers: { 'Content-Location': 'a\r\nX-Evil: 1' } }]), {
      type: 'application/dicom',
    });
    await expect(readBack(body)).rejects.toMatchObject({ code: 'TESSERA_INTERNAL' });
  });

  it('writes a body with no parts as just the close delimiter', async () => {
    expect(await readBack(multipartRelated(listOf([]), { type: 'application/dicom' }))).toEqual([]);
  });
});

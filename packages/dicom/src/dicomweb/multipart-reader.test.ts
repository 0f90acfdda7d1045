import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TesseraError } from '@tessera/model';
import { readMultipart, type MultipartLimits, type MultipartPart } from './multipart-reader.ts';

const LIMITS: MultipartLimits = { maxPartBytes: 10 * 1024 * 1024, maxTotalBytes: 100 * 1024 * 1024 };
const B = 'b0und4ry';
const RELATED = `multipart/related; type="application/dicom"; boundary=${B}`;

async function* fromChunks(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) yield chunk;
}

function split(body: Buffer, size: number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) chunks.push(body.subarray(i, i + size));
  return chunks;
}

/** Every part read, and the error that ended the reading, if any. */
async function drain(parts: AsyncGenerator<MultipartPart>): Promise<{ parts: MultipartPart[]; error: TesseraError | undefined }> {
  const read: MultipartPart[] = [];
  try {
    for await (const part of parts) read.push(part);
    return { parts: read, error: undefined };
  } catch (err) {
    expect(err).toBeInstanceOf(TesseraError);
    return { parts: read, error: err as TesseraError };
  }
}

async function readAll(body: Buffer | Buffer[], contentType = RELATED, limits = LIMITS): Promise<MultipartPart[]> {
  const { parts, error } = await drain(readMultipart(fromChunks(Array.isArray(body) ? body : [body]), contentType, limits));
  if (error) throw error;
  return parts;
}

/** A body built by hand: `head` is the text between the delimiter line and the part's bytes. */
function multipart(parts: Array<{ head: string; body: Buffer | string }>, options: { preamble?: string; epilogue?: string; boundary?: string } = {}): Buffer {
  const boundary = options.boundary ?? B;
  const pieces: Buffer[] = [Buffer.from(options.preamble ?? '')];
  for (const part of parts) {
    pieces.push(Buffer.from(`${pieces.length === 1 && !options.preamble ? '' : '\r\n'}--${boundary}\r\n${part.head}\r\n`), Buffer.from(part.body));
  }
  pieces.push(Buffer.from(`\r\n--${boundary}--${options.epilogue ?? ''}`));
  return Buffer.concat(pieces);
}

/** Part bodies that look like the delimiter without being one, or are one byte short of it. */
const TRICKY = [
  Buffer.from(`--${B}`),
  Buffer.from(`x\n--${B}\r\ny`),
  Buffer.from(`x\r--${B}--`),
  Buffer.from(`\r\n--${B.slice(0, -1)}`),
  Buffer.from(`\r\n-${B}\r\n\r\n`),
  Buffer.alloc(0),
  Buffer.from('\r\n\r\r\n'),
];

describe('readMultipart', () => {
  it('reads parts whose bytes hold the boundary string, CRLFs and nothing at all, byte-equal', async () => {
    const body = multipart(TRICKY.map((bytes, i) => ({ head: `Content-Type: application/dicom\r\nContent-ID: <${i}>\r\n`, body: bytes })));
    const parts = await readAll(body);
    expect(parts.map((p) => p.body)).toEqual(TRICKY);
    expect(parts[1]).toMatchObject({ contentType: 'application/dicom', filename: undefined, headers: { 'content-type': 'application/dicom', 'content-id': '<1>' } });
  });

  it('gives the same parts for a body split at every byte, and fed one byte at a time', async () => {
    const body = multipart(
      TRICKY.map((bytes) => ({ head: 'Content-Type: application/dicom\r\n', body: bytes })),
      { preamble: `preamble --${B}\r\n`, epilogue: '\r\nepilogue' },
    );
    const expected = (await readAll(body)).map((p) => p.body);
    expect(expected).toEqual(TRICKY);
    for (let at = 0; at <= body.length; at++) {
      const parts = await readAll([body.subarray(0, at), body.subarray(at)]);
      expect(parts.map((p) => p.body), `split at ${at}`).toEqual(expected);
    }
    expect((await readAll(split(body, 1))).map((p) => p.body)).toEqual(expected);
  });

  it('reads 1,000 tiny parts, whole and in 7-byte chunks', async () => {
    const bodies = Array.from({ length: 1000 }, (_, i) => `part ${i}`);
    const body = multipart(bodies.map((text) => ({ head: 'Content-Type: application/dicom\r\n', body: text })));
    expect((await readAll(body)).map((p) => p.body.toString())).toEqual(bodies);
    expect((await readAll(split(body, 7))).map((p) => p.body.toString())).toEqual(bodies);
  });

  it('takes a quoted or unquoted boundary, in any parameter order and case', async () => {
    const odd = "a'()+_,-./:=? z";
    const body = multipart([{ head: '', body: 'x' }], { boundary: odd });
    expect(await readAll(body, `Multipart/Related; boundary="${odd}"; type="application/dicom"`)).toHaveLength(1);
    expect(await readAll(multipart([{ head: '', body: 'x' }]), `multipart/related;type=application/dicom;BOUNDARY=${B}`)).toHaveLength(1);
    expect(await readAll(multipart([{ head: '', body: 'x' }]), `multipart/related; boundary = "${B}" ; type="application/dicom"`)).toHaveLength(1);
  });

  it('skips the preamble and the epilogue, and transport padding after a boundary', async () => {
    const body = Buffer.from(`This is a preamble.\r\n--${B}  \t\r\nContent-Type: text/plain\r\n\r\none\r\n--${B}\r\n\r\ntwo\r\n--${B}-- \r\nThis is the epilogue.\r\n`);
    const parts = await readAll(body);
    expect(parts.map((p) => p.body.toString())).toEqual(['one', 'two']);
    expect(parts[1]).toMatchObject({ headers: {}, contentType: undefined });
    expect(await readAll(Buffer.from(`--${B}--`))).toEqual([]);
  });

  it('reads multipart/form-data: file names (RFC 5987 too), folded and repeated headers', async () => {
    const body = multipart([
      { head: 'Content-Disposition: form-data; name="file"; filename="CT 1.dcm"\r\nContent-Type: application/dicom\r\n', body: 'a' },
      { head: `Content-Disposition: form-data; name="file"; filename="x.dcm"; filename*=UTF-8''%C3%A9t%C3%A9.dcm\r\n`, body: 'b' },
      { head: 'content-disposition: form-data; name="note"\r\nX-A: 1\r\nX-A: 2\r\nX-Folded: one\r\n two\r\nConstructor: c\r\n', body: 'c' },
    ]);
    const parts = await readAll(body, `multipart/form-data; boundary=${B}`);
    expect(parts.map((p) => p.filename)).toEqual(['CT 1.dcm', 'été.dcm', undefined]);
    expect(parts[0]?.contentType).toBe('application/dicom');
    expect(parts[2]?.headers).toEqual({ 'content-disposition': 'form-data; name="note"', 'x-a': '1, 2', 'x-folded': 'one two', constructor: 'c' });
  });

  it('refuses a content type that is not multipart or has no boundary, naming what it got and what it takes', () => {
    for (const type of ['application/dicom', 'multipart/related; type="application/dicom"', 'multipart/mixed; boundary=x']) {
      try {
        readMultipart(fromChunks([]), type, LIMITS);
        expect.unreachable();
      } catch (err) {
        expect(err).toMatchObject({ code: 'TESSERA_UNSUPPORTED_MEDIA_TYPE', status: 415 });
        expect((err as Error).message).toContain(`"${type}"`);
        expect((err as Error).message).toContain('multipart/related; type="application/dicom"');
      }
    }
  });

  it('says a body that ends before its closing boundary is truncated, after yielding the parts it completed', async () => {
    const body = multipart([{ head: '', body: 'one' }, { head: '', body: 'two' }]);
    for (const [cut, complete] of [[body.length - 1, 2], [body.length - 12, 1], [30, 1], [0, 0]] as const) {
      const { parts, error } = await drain(readMultipart(fromChunks([body.subarray(0, cut)]), RELATED, LIMITS));
      expect(error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: 'the multipart body ended before its closing boundary (truncated upload?)' });
      expect(parts, `cut at ${cut}`).toHaveLength(complete);
    }
  });

  it('refuses malformed part headers', async () => {
    const cases = [
      multipart([{ head: 'Content-Type application/dicom\r\n', body: 'x' }]),
      multipart([{ head: ': nameless\r\n', body: 'x' }]),
      Buffer.from(`--${B}junk\r\n\r\nx\r\n--${B}--`),
      Buffer.concat([Buffer.from(`--${B}\r\nX-Long: `), Buffer.alloc(20_000, 'a')]),
    ];
    for (const body of cases) {
      const { error } = await drain(readMultipart(fromChunks(split(body, 1000)), RELATED, LIMITS));
      expect(error).toMatchObject({ code: 'TESSERA_INVALID_REQUEST', message: expect.stringContaining('of the multipart body is malformed') });
    }
  });

  describe('limits, hit at part 3 of 5', () => {
    const sizes = [100, 100, 5000, 100, 100];
    const body = multipart(sizes.map((size) => ({ head: 'Content-Type: application/dicom\r\n', body: Buffer.alloc(size, 7) })));

    /** Reads the body in 64-byte chunks, noting how far the source was read and whether it was closed. */
    async function readLimited(limits: MultipartLimits) {
      const source = { pulled: 0, closed: false };
      async function* chunks(): AsyncGenerator<Buffer> {
        try {
          for (const chunk of split(body, 64)) {
            source.pulled += chunk.length;
            yield chunk;
          }
        } finally {
          source.closed = true;
        }
      }
      return { ...(await drain(readMultipart(chunks(), RELATED, limits))), source };
    }

    it('stops at once at a part over maxPartBytes, naming the part and the limit', async () => {
      const { parts, error, source } = await readLimited({ maxPartBytes: 1000, maxTotalBytes: 1e6 });
      expect(parts.map((p) => p.body.length)).toEqual([100, 100]);
      expect(error).toMatchObject({ code: 'TESSERA_PAYLOAD_TOO_LARGE', status: 413, message: expect.stringMatching(/part 3 .*1000 bytes/) });
      expect(source.closed).toBe(true);
      expect(source.pulled).toBeLessThan(body.indexOf(Buffer.alloc(5000, 7)) + 1000 + 128);
    });

    it('stops at once when the body passes maxTotalBytes, naming the part and the limit', async () => {
      const { parts, error, source } = await readLimited({ maxPartBytes: 1e6, maxTotalBytes: 2000 });
      expect(parts).toHaveLength(2);
      expect(error).toMatchObject({ code: 'TESSERA_PAYLOAD_TOO_LARGE', message: expect.stringMatching(/2000 bytes.*part 3/) });
      expect(source.closed).toBe(true);
      expect(source.pulled).toBeLessThan(2000 + 64);
    });

    it('stops at part maxParts + 1', async () => {
      const { parts, error } = await readLimited({ maxPartBytes: 1e6, maxTotalBytes: 1e6, maxParts: 2 });
      expect(parts).toHaveLength(2);
      expect(error).toMatchObject({ code: 'TESSERA_PAYLOAD_TOO_LARGE', message: expect.stringContaining('more than 2 parts') });
    });
  });

  it('reads 200 parts of 500 KB (speed, logged)', async () => {
    const part = randomBytes(500 * 1024);
    const limits = { maxPartBytes: 1e6, maxTotalBytes: 2e8 };
    /** The best of a few runs, in ms per part: this machine is shared, and only the floor says what the code costs. */
    async function msPerPart(run: () => Promise<void> | void, runs = 3): Promise<number> {
      let best = Infinity;
      for (let i = 0; i < runs; i++) {
        const start = process.hrtime.bigint();
        await run();
        best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6 / 200);
      }
      return best;
    }
    async function parse(chunks: Buffer[], boundary: string): Promise<void> {
      let count = 0;
      for await (const read of readMultipart(fromChunks(chunks), `multipart/related; boundary=${boundary}`, limits)) {
        count += read.body.length === part.length ? 1 : 0;
      }
      expect(count).toBe(200);
    }
    const log = (what: string, ms: number) => console.log(`${what}: ${(part.length / 1e3 / ms).toFixed(0)} MB/s, ${ms.toFixed(3)} ms per 500 KB part`);

    // DICOMweb clients send UUID boundaries; a short one makes the delimiter search skip less.
    for (const boundary of [randomUUID(), B]) {
      // Each part in a chunk of its own: no copy, so this is the parser's own cost (search and bookkeeping).
      const aligned = Array.from({ length: 200 }, () => [Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), part]).flat();
      aligned.push(Buffer.from(`\r\n--${boundary}--`));
      log(`multipart parse, ${boundary.length}-char boundary, each part in one chunk`, await msPerPart(() => parse(aligned, boundary)));
    }
    // Socket-sized chunks: every part is also copied into one new buffer, which any reader must do.
    const boundary = randomUUID();
    const body = multipart(Array.from({ length: 200 }, () => ({ head: 'Content-Type: application/dicom\r\n', body: part })), { boundary });
    log('multipart parse, 36-char boundary, 64 KB chunks', await msPerPart(() => parse(split(body, 64 * 1024), boundary), 2));
    log('copying each part out of 64 KB chunks alone, no parsing', await msPerPart(() => {
      for (let i = 0; i < 200; i++) Buffer.concat(split(part, 64 * 1024));
    }, 2));
  });
});

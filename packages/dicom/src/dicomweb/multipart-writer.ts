import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { TesseraError } from '@tessera/model';

/** One part of an outgoing multipart/related body. */
export interface RelatedPart {
  contentType: string;
  /** The bytes: a buffer, a stream, or a function that loads them only when the part's turn comes. */
  body: Buffer | NodeJS.ReadableStream | (() => Promise<Buffer>);
  /** More headers for the part (e.g. Content-Location); values must fit on one line. */
  headers?: Record<string, string>;
}

/** Options of {@link multipartRelated}. */
export interface MultipartRelatedOptions {
  /** The root media type, the `type` parameter (e.g. `application/dicom` for WADO-RS instances). */
  type: string;
}

/** A multipart body ready to send: its Content-Type header (boundary included) and its bytes. */
export interface MultipartBody {
  contentType: string;
  stream: Readable;
}

/**
 * Encodes parts as one `multipart/related` body (DICOMweb WADO-RS). Parts are pulled from `parts`
 * and their bodies read one at a time, only as fast as the consumer reads `stream`; destroying
 * `stream` stops the iteration. The boundary is 128 random bits, so it cannot occur in the data by
 * chance and the bodies need no scan.
 *
 * @throws TesseraError TESSERA_INTERNAL when a header value would break the framing (a line break,
 *   or `"` in `type`): a bug of the caller. Thrown at once for `type`, emitted by `stream` for a part.
 */
export function multipartRelated(parts: AsyncIterable<RelatedPart>, options: MultipartRelatedOptions): MultipartBody {
  assertHeaderValue('type', options.type, /[\r\n"]/);
  const boundary = `tessera-${randomBytes(16).toString('hex')}`;
  return {
    contentType: `multipart/related; type="${options.type}"; boundary=${boundary}`,
    stream: Readable.from(encodeParts(parts, boundary), { objectMode: false }),
  };
}

async function* encodeParts(parts: AsyncIterable<RelatedPart>, boundary: string): AsyncGenerator<Buffer> {
  // RFC 2046: the CRLF before a delimiter belongs to the delimiter, so the first one needs none.
  let delimiter = `--${boundary}`;
  for await (const part of parts) {
    yield Buffer.from(`${delimiter}\r\n${headerBlock(part)}\r\n`);
    delimiter = `\r\n--${boundary}`;
    const body = part.body;
    if (typeof body === 'function') yield* nonEmpty(await body());
    else if (Buffer.isBuffer(body)) yield* nonEmpty(body);
    else for await (const chunk of body) yield* nonEmpty(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }
  yield Buffer.from(`${delimiter}--\r\n`);
}

/** An empty chunk would be pushed as nothing at all, so it is not pushed. */
function nonEmpty(chunk: Buffer): Buffer[] {
  return chunk.length === 0 ? [] : [chunk];
}

function headerBlock(part: RelatedPart): string {
  const headers: Record<string, string> = { 'Content-Type': part.contentType, ...part.headers };
  let block = '';
  for (const [name, value] of Object.entries(headers)) {
    assertHeaderValue(name, value, /[\r\n]/);
    block += `${name}: ${value}\r\n`;
  }
  return block;
}

function assertHeaderValue(name: string, value: string, forbidden: RegExp): void {
  if (!forbidden.test(value) && !forbidden.test(name)) return;
  throw new TesseraError('TESSERA_INTERNAL', `the multipart header ${JSON.stringify(name)}: ${JSON.stringify(value)} would break the body's framing; this is a bug in the code that built the part`);
}

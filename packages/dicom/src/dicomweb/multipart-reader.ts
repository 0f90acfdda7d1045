import { TesseraError } from '@tessera/model';

/** One body part of a multipart message. */
export interface MultipartPart {
  /** The part's headers, names lower-cased; a repeated header's values are joined with ", ". */
  headers: Record<string, string>;
  /** The part's Content-Type, or undefined when it has none. */
  contentType: string | undefined;
  /** The `filename` of Content-Disposition (multipart/form-data uploads). Sent by the client: never use it as a path. */
  filename: string | undefined;
  body: Buffer;
}

/** What one multipart body may cost: each bounds memory or work before it is spent. */
export interface MultipartLimits {
  /** Largest body of a single part, in bytes. */
  maxPartBytes: number;
  /** Largest whole body (preamble, headers and epilogue included), in bytes. */
  maxTotalBytes: number;
  /** Most parts in one body; unlimited when absent. */
  maxParts?: number;
}

const EXPECTED = 'multipart/related; type="application/dicom"; boundary=... (DICOMweb STOW-RS) or multipart/form-data; boundary=... (uploads)';
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const PARAM = /\s*;\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))/y;
const CR = 0x0d;
const DASH = 0x2d;
const CRLF = Buffer.from('\r\n');
const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
/** Part headers are a few lines; a block this long without its blank line is garbage, not a part. */
const MAX_HEADER_BYTES = 16 * 1024;

/**
 * Reads a `multipart/related` (DICOMweb STOW-RS) or `multipart/form-data` (browser upload) body,
 * yielding each part as soon as its closing delimiter arrives while the rest is still coming in.
 * Only the part being read is held in memory. A part that arrived within one chunk is a view of
 * that chunk, so chunks must not be reused once yielded (Node streams never do). On an error or
 * when the consumer stops early, the body's iterator is returned at once: a Node stream is then
 * destroyed, so pass `req.iterator({ destroyOnReturn: false })` to answer 413 before closing.
 *
 * @throws TesseraError TESSERA_UNSUPPORTED_MEDIA_TYPE at once when `contentType` is not multipart
 *   with a boundary; while iterating, TESSERA_INVALID_REQUEST for a malformed or truncated body and
 *   TESSERA_PAYLOAD_TOO_LARGE when a limit is hit (parts completed before it are yielded first).
 */
export function readMultipart(
  body: AsyncIterable<Buffer | Uint8Array>,
  contentType: string,
  limits: MultipartLimits,
): AsyncGenerator<MultipartPart> {
  return parseBody(body, boundaryOf(contentType), limits);
}

async function* parseBody(
  body: AsyncIterable<Buffer | Uint8Array>,
  boundary: string,
  limits: MultipartLimits,
): AsyncGenerator<MultipartPart> {
  const parser = new MultipartParser(boundary, limits);
  let received = 0;
  for await (const input of body) {
    let chunk = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    received += chunk.length;
    const overTotal = received > limits.maxTotalBytes;
    // Parse up to the limit exactly, so that parts wholly inside it still reach the consumer.
    if (overTotal) chunk = chunk.subarray(0, chunk.length - (received - limits.maxTotalBytes));
    let failure: unknown;
    try {
      parser.push(chunk);
    } catch (err) {
      failure = err;
    }
    yield* parser.takeReady();
    if (failure !== undefined) throw failure;
    if (overTotal) throw parser.totalTooLarge();
  }
  parser.end();
}

type State = 'preamble' | 'delimiter' | 'headers' | 'body' | 'epilogue';

/** A push parser: `push` consumes a chunk and queues the parts it completes; the caller drains them. */
class MultipartParser {
  private readonly delimiter: Buffer;
  private ready: MultipartPart[] = [];
  private state: State = 'preamble';
  // RFC 2046 puts a CRLF before every delimiter, but the first may open the body without one: pretend it was there.
  private carry: Buffer = CRLF;
  private part = 0;
  private pieces: Buffer[] = [];
  private partBytes = 0;
  private headers: Record<string, string> = {};

  constructor(boundary: string, private readonly limits: MultipartLimits) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
  }

  takeReady(): MultipartPart[] {
    const ready = this.ready;
    this.ready = [];
    return ready;
  }

  push(chunk: Buffer): void {
    // The carry is empty or a few bytes almost always, so the common chunk is searched in place, uncopied.
    const data = this.carry.length === 0 ? chunk : Buffer.concat([this.carry, chunk]);
    this.carry = EMPTY;
    let pos = 0;
    for (;;) {
      switch (this.state) {
        case 'preamble':
        case 'body': {
          const at = data.indexOf(this.delimiter, pos);
          if (at === -1) {
            const keep = this.delimiterPrefixAt(data, Math.max(pos, data.length - this.delimiter.length + 1));
            if (this.state === 'body') this.append(data.subarray(pos, keep));
            this.carry = data.subarray(keep);
            return;
          }
          if (this.state === 'body') {
            this.append(data.subarray(pos, at));
            this.finishPart();
          }
          pos = at + this.delimiter.length;
          this.state = 'delimiter';
          break;
        }
        case 'delimiter': {
          if (data.length - pos < 2) return this.wait(data, pos);
          if (data[pos] === DASH && data[pos + 1] === DASH) {
            this.state = 'epilogue';
            return;
          }
          const eol = data.indexOf(CRLF, pos);
          if (eol === -1) return this.wait(data, pos);
          for (let i = pos; i < eol; i++) {
            if (data[i] !== 0x20 && data[i] !== 0x09) throw this.malformed('the boundary line is followed by characters other than spaces');
          }
          pos = eol;
          this.state = 'headers';
          this.startPart();
          break;
        }
        case 'headers': {
          // From the CRLF that ends the boundary line, so that a part with no headers ends its block at once.
          const end = data.indexOf(CRLFCRLF, pos);
          if (end === -1) return this.wait(data, pos);
          this.headers = this.parseHeaders(end > pos ? data.toString('utf8', pos + 2, end) : '');
          pos = end + CRLFCRLF.length;
          this.state = 'body';
          break;
        }
        case 'epilogue':
          return;
      }
    }
  }

  end(): void {
    if (this.state !== 'epilogue') {
      throw new TesseraError('TESSERA_INVALID_REQUEST', 'the multipart body ended before its closing boundary (truncated upload?)', {
        details: [{ where: this.where(), message: 'send the whole body, ending with --boundary--' }],
      });
    }
  }

  totalTooLarge(): TesseraError {
    return new TesseraError(
      'TESSERA_PAYLOAD_TOO_LARGE',
      `the multipart body is larger than the limit of ${this.limits.maxTotalBytes} bytes (hit while reading ${this.where()}); send fewer or smaller parts per request`,
      { details: [{ where: this.where(), message: `the body exceeds ${this.limits.maxTotalBytes} bytes` }] },
    );
  }

  /** Keeps an unfinished header block for the next chunk, unless it is already too long to be one. */
  private wait(data: Buffer, pos: number): void {
    if (data.length - pos > MAX_HEADER_BYTES) throw this.malformed(`its headers do not end within ${MAX_HEADER_BYTES} bytes`);
    this.carry = data.subarray(pos);
  }

  /** Where the data may end with the start of a delimiter, which must wait for the next chunk. */
  private delimiterPrefixAt(data: Buffer, from: number): number {
    for (let i = data.indexOf(CR, from); i !== -1; i = data.indexOf(CR, i + 1)) {
      if (data.compare(this.delimiter, 0, data.length - i, i) === 0) return i;
    }
    return data.length;
  }

  private startPart(): void {
    this.part += 1;
    if (this.limits.maxParts !== undefined && this.part > this.limits.maxParts) {
      throw new TesseraError(
        'TESSERA_PAYLOAD_TOO_LARGE',
        `the multipart body has more than ${this.limits.maxParts} parts, the most one request may carry; send the rest in another request`,
        { details: [{ where: this.where(), message: `over the limit of ${this.limits.maxParts} parts` }] },
      );
    }
  }

  private append(piece: Buffer): void {
    if (piece.length === 0) return;
    this.partBytes += piece.length;
    if (this.partBytes > this.limits.maxPartBytes) {
      throw new TesseraError(
        'TESSERA_PAYLOAD_TOO_LARGE',
        `${this.where()} of the multipart body is larger than the limit of ${this.limits.maxPartBytes} bytes per part; it cannot be stored unless that limit is raised`,
        { details: [{ where: this.where(), message: `larger than ${this.limits.maxPartBytes} bytes` }] },
      );
    }
    this.pieces.push(piece);
  }

  private finishPart(): void {
    const headers = this.headers;
    this.ready.push({
      headers,
      contentType: headers['content-type'],
      filename: filenameOf(headers['content-disposition']),
      // Copied only when the part spans chunks: a copy into fresh memory costs more than finding the delimiter.
      body: this.pieces.length === 1 ? (this.pieces[0] as Buffer) : Buffer.concat(this.pieces, this.partBytes),
    });
    this.pieces = [];
    this.partBytes = 0;
    this.headers = {};
  }

  private parseHeaders(block: string): Record<string, string> {
    const headers: Record<string, string> = {};
    let last: string | undefined;
    for (const line of block === '' ? [] : block.split('\r\n')) {
      if ((line.startsWith(' ') || line.startsWith('\t')) && last !== undefined) {
        // Obsolete line folding (RFC 5322): the line continues the previous header's value.
        headers[last] = `${headers[last]} ${line.trim()}`;
        continue;
      }
      const colon = line.indexOf(':');
      const name = line.slice(0, Math.max(colon, 0)).trim().toLowerCase();
      if (colon <= 0 || !TOKEN.test(name)) throw this.malformed(`its header line "${line.slice(0, 100)}" is not "Name: value"`);
      const value = line.slice(colon + 1).trim();
      // hasOwn: a header named like an Object.prototype member (`constructor`) must not see the inherited one.
      headers[name] = Object.hasOwn(headers, name) ? `${headers[name]}, ${value}` : value;
      last = name;
    }
    return headers;
  }

  private malformed(why: string): TesseraError {
    return new TesseraError('TESSERA_INVALID_REQUEST', `${this.where()} of the multipart body is malformed: ${why}; check how the client encodes multipart bodies`, {
      details: [{ where: this.where(), message: why }],
    });
  }

  private where(): string {
    if (this.state === 'preamble') return 'the preamble, before the first part';
    if (this.state === 'epilogue') return `the epilogue, after part ${this.part}`;
    if (this.state === 'delimiter') return this.part === 0 ? 'the first boundary' : `the boundary after part ${this.part}`;
    return `part ${this.part}`;
  }
}

/** The boundary of a multipart content type, or a 415 saying what was received and what is taken. */
function boundaryOf(contentType: string): string {
  const slash = contentType.indexOf(';');
  const mediaType = (slash === -1 ? contentType : contentType.slice(0, slash)).trim().toLowerCase();
  const boundary = parseParams(contentType, Math.max(slash, 0)).boundary;
  const problem =
    mediaType !== 'multipart/related' && mediaType !== 'multipart/form-data'
      ? 'it is not multipart'
      : boundary === undefined || boundary === ''
        ? 'it has no boundary parameter'
        : boundary.length > 70
          ? 'its boundary is longer than 70 characters (RFC 2046)'
          : undefined;
  if (problem === undefined) return boundary as string;
  throw new TesseraError('TESSERA_UNSUPPORTED_MEDIA_TYPE', `the request body's content type "${contentType}" is not taken here: ${problem}; send ${EXPECTED}`, {
    details: [{ where: 'Content-Type', message: `got "${contentType}", expected ${EXPECTED}` }],
  });
}

/** The `name=value` parameters after `from` in a header value (RFC 9110 quoted strings included), names lower-cased. */
function parseParams(value: string, from: number): Record<string, string> {
  const params: Record<string, string> = {};
  PARAM.lastIndex = from;
  for (let match = PARAM.exec(value); match !== null; match = PARAM.exec(value)) {
    const name = (match[1] as string).toLowerCase();
    // Browsers send `\` in file names unescaped (they percent-encode `"`), so only `\"` and `\\` are escapes.
    params[name] = match[2] !== undefined ? match[2].replace(/\\(["\\])/g, '$1') : (match[3] ?? '');
  }
  return params;
}

/** The file name of a Content-Disposition header, preferring the RFC 5987 `filename*` form. */
function filenameOf(disposition: string | undefined): string | undefined {
  if (disposition === undefined) return undefined;
  const params = parseParams(disposition, Math.max(disposition.indexOf(';'), 0));
  const extended = params['filename*']?.match(/^utf-8'[^']*'(.*)$/i)?.[1];
  if (extended !== undefined) {
    try {
      return decodeURIComponent(extended);
    } catch {
      // A broken percent-encoding: fall back to the plain parameter below.
    }
  }
  return params.filename;
}

import { Transform } from 'node:stream';
import { TesseraError } from '@tessera/model';

/** A request body read whole, refused with 413 as soon as it passes `max` bytes. */
export async function readBody(stream: AsyncIterable<unknown>, max: number, what: string, setting: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = c as Buffer;
    size += b.length;
    if (size > max) throw new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', `${what} is over the limit of ${max} bytes (${setting})`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** A pass-through that fails with 413 once more than `max` bytes went through it. */
export function limitBytes(max: number, what: string, setting: string): Transform {
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      if (size > max) cb(new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', `${what} is over the limit of ${max} bytes (${setting})`));
      else cb(null, chunk);
    },
  });
}

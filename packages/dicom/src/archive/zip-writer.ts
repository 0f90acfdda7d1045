import { createReadStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { ZipFile } from 'yazl';
import { TesseraError } from '@tessera/model';

/** One file to put in an archive: its bytes come from a file on disk or from a buffer. */
export interface ZipStreamEntry {
  /** Its path in the archive, e.g. `Study/Series/instance.dcm`: relative, `/` separators, no `..`. */
  name: string;
  /** A file to copy into the archive (exactly one of `file` and `data`). */
  file?: string;
  data?: Buffer;
}

/** Options of {@link zipStream}. */
export interface ZipStreamOptions {
  /**
   * Deflate the entries. Off by default: DICOM pixel data is mostly already compressed or noisy, so
   * deflate gains a few percent for a lot of CPU, and stored entries stream at disk speed.
   */
  compress?: boolean;
}

/**
 * Streams a .zip archive of `entries`, pulling the next entry only when the previous one starts
 * being written, and writing only as fast as the consumer reads: at most one file is open and one
 * entry waits. Destroying the returned stream stops the iteration of `entries`.
 *
 * The stream fails with TesseraError TESSERA_INTERNAL when an entry name is absolute or has a `..`
 * segment, or an entry has not exactly one of `file` and `data`: names are built by our code, so
 * that is a bug, not bad input. A file that cannot be read fails the stream with the fs error.
 */
export function zipStream(entries: AsyncIterable<ZipStreamEntry>, options: ZipStreamOptions = {}): Readable {
  const zip = new ZipFile();
  // yazl's own typing says NodeJS.ReadableStream; the object is a PassThrough.
  const output = zip.outputStream as PassThrough;
  let stopped = false;
  let wake: (() => void) | undefined;
  output.once('close', () => {
    stopped = true;
    wake?.();
  });
  zip.on('error', (err: Error) => output.destroy(err));

  const pump = async (): Promise<void> => {
    for await (const entry of entries) {
      if (stopped) break;
      const name = checkedName(entry);
      await new Promise<void>((resolve) => {
        wake = resolve;
        // yazl calls this when every earlier entry is written; only then is the next entry pulled.
        zip.addReadStreamLazy(name, { compress: options.compress ?? false, ...sizeOf(entry) }, (callback) => {
          resolve();
          callback(undefined, openEntry(entry, output));
        });
      });
      if (stopped) break;
    }
    if (!stopped) zip.end();
  };
  pump().catch((err: unknown) => output.destroy(err instanceof Error ? err : new Error(String(err))));
  return output;
}

function checkedName(entry: ZipStreamEntry): string {
  const name = entry.name.replace(/\\/g, '/');
  const bad =
    name === '' || name.startsWith('/') || /^[A-Za-z]:/.test(name)
      ? 'is empty or absolute'
      : name.split('/').includes('..')
        ? 'has a ".." segment'
        : (entry.file === undefined) === (entry.data === undefined)
          ? 'needs exactly one of file and data'
          : undefined;
  if (bad === undefined) return name;
  throw new TesseraError('TESSERA_INTERNAL', `zip entry ${JSON.stringify(entry.name)} ${bad}; this is a bug in the code that listed the entries`);
}

function sizeOf(entry: ZipStreamEntry): { size?: number } {
  return entry.data === undefined ? {} : { size: entry.data.length };
}

function openEntry(entry: ZipStreamEntry, output: PassThrough): Readable {
  if (entry.data !== undefined) return new PassThrough().end(entry.data);
  // yazl pipes the stream but does not listen for its errors.
  return createReadStream(entry.file as string).on('error', (err) => output.destroy(err));
}

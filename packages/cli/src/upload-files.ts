import { open, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { CliError } from './api-client.ts';

/** A file to upload, as found on disk. */
export interface LocalFile {
  /** Where it is read from. */
  path: string;
  /** The name the server reports it under: the path as the user gave it, with `/` separators. */
  name: string;
  size: number;
  /** A .zip archive: sent alone, as application/zip. */
  zip: boolean;
}

/** What a walk found: the files to send and how many it left out (hidden files, DICOMDIR). */
export interface FoundFiles {
  files: LocalFile[];
  skipped: number;
}

/**
 * Finds the files to import under the given paths. Folders are walked recursively in
 * name order, following links (each folder once); hidden files and folders (`.name`)
 * and DICOMDIR index files are left out. A path the user names is always taken, even
 * a hidden one. A path that does not exist is a usage error.
 */
export async function findFiles(paths: string[]): Promise<FoundFiles> {
  const files: LocalFile[] = [];
  const seenDirs = new Set<string>();
  let skipped = 0;
  const walk = async (dir: string, name: string): Promise<void> => {
    const real = await realpath(dir);
    if (seenDirs.has(real)) return;
    seenDirs.add(real);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw new CliError(`cannot read the folder ${name}: ${(err as Error).message}`);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.') || e.name.toUpperCase() === 'DICOMDIR') {
        skipped++;
        continue;
      }
      const path = join(dir, e.name);
      const childName = `${name}/${e.name}`;
      if (e.isDirectory()) await walk(path, childName);
      else if (e.isFile()) files.push(localFile(path, childName, (await stat(path)).size));
      else if (e.isSymbolicLink()) {
        const st = await stat(path).catch(() => undefined);
        if (st?.isDirectory()) await walk(path, childName);
        else if (st?.isFile()) files.push(localFile(path, childName, st.size));
        else skipped++;
      }
    }
  };
  for (const given of paths) {
    const st = await stat(given).catch((err: NodeJS.ErrnoException) => {
      throw new CliError(
        err.code === 'ENOENT' ? `"${given}" does not exist: give DICOM files, .zip archives or folders holding them` : `cannot read "${given}": ${err.message}`,
        { exitCode: 2 },
      );
    });
    const name = given.length > 1 ? given.replace(/[\\/]+$/, '') : given;
    if (st.isDirectory()) await walk(given, name.split('\\').join('/'));
    else files.push(localFile(given, name.split('\\').join('/'), st.size));
  }
  return { files, skipped };
}

function localFile(path: string, name: string, size: number): LocalFile {
  return { path, name, size, zip: /\.zip$/i.test(basename(path)) };
}

/** One request of an import: a .zip alone, or a batch of files as multipart/form-data. */
export interface UploadJob {
  kind: 'zip' | 'multipart';
  files: LocalFile[];
  bytes: number;
}

/**
 * Groups files into requests: each .zip alone; other files in batches of at most
 * `maxFiles` files and `maxBytes` bytes (a larger file goes alone). Lazy: a batch
 * exists only while it is being sent.
 */
export function* planUploads(files: LocalFile[], limits: { maxFiles: number; maxBytes: number }): Generator<UploadJob> {
  let batch: LocalFile[] = [];
  let bytes = 0;
  for (const f of files) {
    if (f.zip) {
      yield { kind: 'zip', files: [f], bytes: f.size };
      continue;
    }
    if (batch.length > 0 && (batch.length >= limits.maxFiles || bytes + f.size > limits.maxBytes)) {
      yield { kind: 'multipart', files: batch, bytes };
      batch = [];
      bytes = 0;
    }
    batch.push(f);
    bytes += f.size;
  }
  if (batch.length > 0) yield { kind: 'multipart', files: batch, bytes };
}

/** A file that could not be opened when its turn came: it is not sent, and reported as rejected. */
export interface UnreadableFile {
  file: LocalFile;
  error: Error;
}

/** A file failed while it was being sent: the request cannot be finished. */
export class LocalReadError extends Error {
  readonly file: LocalFile;
  constructor(file: LocalFile, cause: Error) {
    super(`could not read ${file.name}: ${cause.message}`, { cause });
    this.file = file;
  }
}

/** The file's bytes from an open handle, counted; a read error names the file. */
async function* chunksOf(file: LocalFile, handle: FileHandle, onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: 1024 * 1024, autoClose: false }) as AsyncIterable<Buffer>) {
      onBytes(chunk.length);
      yield chunk;
    }
  } catch (err) {
    throw new LocalReadError(file, err as Error);
  }
}

/**
 * A multipart/form-data body of the files, read from disk as the request goes out:
 * only one chunk of one file is in memory at a time. A file that cannot be opened is
 * left out (`onUnreadable`); one that fails while being read fails the body with a
 * LocalReadError. `onBytes` counts the bytes of file content read.
 */
export async function* multipartBody(
  files: LocalFile[],
  boundary: string,
  onBytes: (n: number) => void,
  onUnreadable: (u: UnreadableFile) => void,
): AsyncGenerator<Uint8Array> {
  for (const f of files) {
    let handle;
    try {
      handle = await open(f.path, 'r');
    } catch (err) {
      onUnreadable({ file: f, error: err as Error });
      continue;
    }
    try {
      yield Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; ${dispositionFilename(f.name)}\r\nContent-Type: application/dicom\r\n\r\n`);
      yield* chunksOf(f, handle, onBytes);
      yield Buffer.from('\r\n');
    } finally {
      await handle.close();
    }
  }
  yield Buffer.from(`--${boundary}--\r\n`);
}

/** A file's bytes as a request body, read as it goes out; a failure to open or read it is a LocalReadError. */
export async function* fileBody(file: LocalFile, onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
  const handle = await open(file.path, 'r').catch((err: Error) => {
    throw new LocalReadError(file, err);
  });
  try {
    yield* chunksOf(file, handle, onBytes);
  } finally {
    await handle.close();
  }
}

/**
 * The filename parameters of a Content-Disposition: a plain `filename` any reader
 * understands (non-ASCII, quotes and backslashes replaced) and the exact name as
 * RFC 5987 `filename*`, which the server prefers.
 */
export function dispositionFilename(name: string): string {
  const plain = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  if (plain === name) return `filename="${name}"`;
  const extended = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `filename="${plain}"; filename*=UTF-8''${extended}`;
}

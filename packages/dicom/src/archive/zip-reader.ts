import * as zlib from 'node:zlib';
import { getFileNameLowLevel, openPromise, type Entry, type ZipFile } from 'yauzl';
import { TesseraError } from '@tessera/model';

/** What one archive may hold; every limit is checked on the declared sizes before anything is inflated. */
export interface ZipLimits {
  /** Largest uncompressed file, in bytes. */
  maxEntryBytes: number;
  /** Largest sum of the uncompressed files, in bytes. */
  maxTotalBytes: number;
  /** Most files (directories and macOS metadata not counted); unlimited when absent. */
  maxEntries?: number;
  /** Largest uncompressed/compressed ratio of a file of 1 MiB or more, against zip bombs; 200 when absent. */
  maxCompressionRatio?: number;
}

/** One file of an archive. */
export interface ZipEntry {
  /** Its path in the archive, with `/` separators; checked to be relative and without `..`. */
  name: string;
  data: Buffer;
}

const DEFAULT_MAX_RATIO = 200;
/** Under this size a high ratio (a small run of zeros) costs nothing to inflate: it says nothing about a bomb. */
const RATIO_FLOOR_BYTES = 1024 * 1024;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;
const STORED = 0;
const DEFLATED = 8;

/**
 * Reads the files of a .zip archive one at a time. Before yielding anything it walks the central
 * directory once and refuses the whole archive if any entry is unsafe (absolute path, `..`
 * segment, symbolic link, encrypted, unknown compression) or breaks a limit, so that an importer can
 * reject a bad archive with nothing stored. Directories, `__MACOSX/` and `.DS_Store` are skipped.
 * The archive is closed when the generator finishes, fails or is returned early.
 *
 * @throws TesseraError TESSERA_INVALID_REQUEST for an unsafe entry or a file that is not a valid
 *   (or is a truncated, corrupt) .zip archive; TESSERA_PAYLOAD_TOO_LARGE when a limit is broken.
 */
export async function* readZipEntries(file: string, limits: ZipLimits): AsyncGenerator<ZipEntry> {
  const zip = await openZip(file);
  try {
    for (const { name, entry } of await checkedEntries(zip, limits)) {
      yield { name, data: await readEntry(zip, name, entry) };
    }
  } finally {
    // A failure to close the file would be emitted as 'error' with no listener left, crashing the process.
    zip.on('error', () => undefined);
    zip.close();
  }
}

async function openZip(file: string): Promise<ZipFile> {
  try {
    // Undecoded names: yauzl would reject unsafe ones itself, without saying which entry in our terms.
    return await openPromise(file, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true });
  } catch (err) {
    // A system error (missing file, permissions) is about our storage, not about the archive.
    if ((err as NodeJS.ErrnoException).code !== undefined) throw err;
    throw notAZip(err);
  }
}

/** The entries to read, once every entry has been found safe and every limit kept. */
async function checkedEntries(zip: ZipFile, limits: ZipLimits): Promise<Array<{ name: string; entry: Entry }>> {
  const maxRatio = limits.maxCompressionRatio ?? DEFAULT_MAX_RATIO;
  const wanted: Array<{ name: string; entry: Entry }> = [];
  let total = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const name = getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
      const unsafe = unsafeReason(name, entry);
      if (unsafe !== undefined) {
        throw new TesseraError('TESSERA_INVALID_REQUEST', `the .zip archive is refused: its entry ${JSON.stringify(name)} ${unsafe}; re-create the archive without it and upload again`, {
          details: [{ where: name, message: unsafe }],
        });
      }
      if (isSkipped(name)) continue;
      const size = entry.uncompressedSize;
      total += size;
      if (limits.maxEntries !== undefined && wanted.length + 1 > limits.maxEntries) {
        throw tooLarge(name, `the .zip archive holds more than ${limits.maxEntries} files, the most one import takes; split it into smaller archives`);
      }
      if (size > limits.maxEntryBytes) {
        throw tooLarge(name, `the entry ${JSON.stringify(name)} of the .zip archive is ${size} bytes uncompressed, over the limit of ${limits.maxEntryBytes} bytes per file`);
      }
      if (total > limits.maxTotalBytes) {
        throw tooLarge(name, `the .zip archive holds more than ${limits.maxTotalBytes} bytes uncompressed (passed at entry ${JSON.stringify(name)}); split it into smaller archives`);
      }
      if (size >= RATIO_FLOOR_BYTES && size > maxRatio * entry.compressedSize) {
        const ratio = entry.compressedSize === 0 ? 'infinitely' : `${Math.round(size / entry.compressedSize)} times`;
        throw tooLarge(name, `the entry ${JSON.stringify(name)} of the .zip archive would inflate ${ratio} (${entry.compressedSize} to ${size} bytes), over the ratio of ${maxRatio} allowed against zip bombs`);
      }
      wanted.push({ name, entry });
    }
  } catch (err) {
    throw err instanceof TesseraError ? err : notAZip(err);
  }
  return wanted;
}

function unsafeReason(name: string, entry: Entry): string | undefined {
  if (name === '') return 'has an empty name';
  if (name.includes('\0')) return 'has a NUL character in its name';
  // getFileNameLowLevel has already turned `\` into `/`, so `\\server\x` and `C:\x` look like `//server/x` and `C:/x`.
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'is an absolute path';
  if (name.split('/').includes('..')) return 'has a ".." segment, which would write outside the target folder';
  if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) return 'is a symbolic link';
  if (entry.isEncrypted()) return 'is encrypted (password-protected archives are not supported)';
  if (entry.compressionMethod !== STORED && entry.compressionMethod !== DEFLATED) {
    return `uses compression method ${entry.compressionMethod}; only stored (0) and deflate (8) are supported`;
  }
  return undefined;
}

/** Directories and the metadata macOS adds to archives hold no DICOM. */
function isSkipped(name: string): boolean {
  return name.endsWith('/') || name.startsWith('__MACOSX/') || name.split('/').pop() === '.DS_Store';
}

async function readEntry(zip: ZipFile, name: string, entry: Entry): Promise<Buffer> {
  try {
    const chunks: Buffer[] = [];
    let length = 0;
    // validateEntrySizes makes this stream fail as soon as it yields more than the declared (checked) size.
    for await (const chunk of await zip.openReadStreamPromise(entry)) {
      chunks.push(chunk as Buffer);
      length += (chunk as Buffer).length;
    }
    const data = Buffer.concat(chunks, length);
    // yauzl does not check CRCs; without this a damaged stored entry would be imported as is.
    if (zlib.crc32(data) !== entry.crc32) throw new Error('its CRC-32 does not match its data (the archive is damaged)');
    return data;
  } catch (err) {
    throw notAZip(err, name);
  }
}

function notAZip(err: unknown, entry?: string): TesseraError {
  const reason = err instanceof Error ? err.message : String(err);
  const where = entry === undefined ? '' : `entry ${JSON.stringify(entry)}: `;
  return new TesseraError('TESSERA_INVALID_REQUEST', `not a valid .zip archive: ${where}${reason}`, {
    details: [{ where: entry ?? 'archive', message: reason }],
    cause: err,
  });
}

function tooLarge(entry: string, message: string): TesseraError {
  return new TesseraError('TESSERA_PAYLOAD_TOO_LARGE', message, { details: [{ where: entry, message }] });
}

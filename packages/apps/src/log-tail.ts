import { open, stat } from 'node:fs/promises';

/** The last `lines` lines of a log file (read from its last 64 KiB); '' when it is empty or missing. */
export async function tailFile(file: string, lines: number): Promise<string> {
  const size = (await stat(file).catch((err: NodeJS.ErrnoException) => {
    // No log yet: the app has not started, or wrote nothing.
    if (err.code === 'ENOENT') return undefined;
    throw new Error(`could not read the log ${file}`, { cause: err });
  }))?.size ?? 0;
  if (size === 0) return '';
  const fh = await open(file, 'r');
  try {
    const length = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, size - length);
    return buf.toString('utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } finally {
    await fh.close();
  }
}

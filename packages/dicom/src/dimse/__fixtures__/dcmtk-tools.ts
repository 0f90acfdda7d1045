import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DCMTK_ENV } from '../../__fixtures__/dicom-env.ts';

/** Exit code and combined stdout/stderr of a finished dcmtk tool. */
export interface ToolRun {
  code: number;
  output: string;
  /** Wall time of the process in milliseconds. */
  elapsedMs: number;
}

/** Runs a dcmtk tool with TCP_NODELAY=1; never rejects on a non-zero exit, the test asserts on it. */
export function runDcmtk(tool: string, args: readonly string[]): Promise<ToolRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(tool, args, { env: DCMTK_ENV, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      const code = !err ? 0 : typeof err.code === 'number' ? err.code : undefined;
      if (code === undefined) {
        // Not an exit status: the tool could not start, or was killed by the timeout.
        reject(new Error(`${tool} ${args.join(' ')} failed to run: ${err?.message}\n${stderr}`));
        return;
      }
      resolve({ code, output: `${stdout}${stderr}`, elapsedMs: performance.now() - started });
    });
  });
}

/**
 * Copies a Part 10 file into `dir` re-encoded the way storescu sends datasets
 * (explicit-length sequences, no trailing padding, OB encapsulated pixel data),
 * keeping its transfer syntax, so the dataset bytes onStore receives must equal
 * the copy's dataset byte for byte.
 */
export async function storescuNormalizedCopy(options: { file: string; dir: string }): Promise<string> {
  const out = join(options.dir, basename(options.file));
  const run = await runDcmtk('dcmconv', ['-p', options.file, out]);
  if (run.code !== 0) throw new Error(`dcmconv -p ${options.file} failed (${run.code}): ${run.output}`);
  return out;
}

/** The dataset of a Part 10 file: what follows the meta group, whose length is (0002,0000). */
export async function datasetOfFile(file: string): Promise<Buffer> {
  const bytes = await readFile(file);
  if (bytes.toString('latin1', 128, 132) !== 'DICM' || bytes.readUInt32LE(132) !== 0x00000002) {
    throw new Error(`${file} does not start with a preamble, DICM and (0002,0000)`);
  }
  return bytes.subarray(144 + bytes.readUInt32LE(140));
}

/** The UIDs of a Part 10 file, as dcmdump reads them. */
export async function uidsOfFile(file: string): Promise<{ sopClassUid: string; sopInstanceUid: string; transferSyntaxUid: string }> {
  const run = await runDcmtk('dcmdump', ['-M', '-Un', '+P', '0002,0010', '+P', '0008,0016', '+P', '0008,0018', file]);
  const uid = (tag: string): string => {
    const match = new RegExp(`^\\(${tag}\\) UI \\[([0-9.]+)\\]`, 'm').exec(run.output);
    if (!match?.[1]) throw new Error(`no (${tag}) in ${file}: ${run.output}`);
    return match[1];
  };
  return { transferSyntaxUid: uid('0002,0010'), sopClassUid: uid('0008,0016'), sopInstanceUid: uid('0008,0018') };
}

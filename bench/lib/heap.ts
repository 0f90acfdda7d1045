/**
 * A grown JavaScript heap in a Node process the benchmark starts (a Tessera server,
 * a spawn helper): the flags that load heap-ballast.mjs, and what it reports.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The preload module that grows a Node process's JavaScript heap (TESSERA_BENCH_HEAP_MB). */
export const HEAP_BALLAST = join(dirname(fileURLToPath(import.meta.url)), 'heap-ballast.mjs');

/**
 * Node's flags that load the ballast. The old space is raised only when there is a
 * ballast: to at least 4096 MB (Node 20's usual 64-bit limit, never lowered), and to
 * twice the ballast plus 1 GB when that is more, so that the collector is not pressed
 * against its limit.
 */
export function heapBallastArgs(heapMb: number): string[] {
  const limit = heapMb > 0 ? [`--max-old-space-size=${Math.max(4096, Math.ceil(2 * heapMb + 1024))}`] : [];
  return [...limit, '--import', pathToFileURL(HEAP_BALLAST).href];
}

/** The environment that sizes the ballast and names its report file. */
export function heapBallastEnv(heapMb: number, reportFile?: string): NodeJS.ProcessEnv {
  return { TESSERA_BENCH_HEAP_MB: String(heapMb), ...(reportFile ? { TESSERA_BENCH_HEAP_REPORT: reportFile } : {}) };
}

/** What heap-ballast.mjs writes: the ballast, and the process's heap when it was written. */
export interface HeapReport {
  requestedMb: number;
  objects: number;
  /** Growth of V8's used heap while the ballast was allocated, MB. */
  grownMb: number;
  allocateMs: number;
  seq: number;
  pid: number;
  heapUsedMb: number;
  heapTotalMb: number;
  heapLimitMb: number;
  rssMb: number;
}

function readReport(file: string): HeapReport | undefined {
  try {
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as HeapReport) : undefined;
  } catch {
    return undefined; // between the write and the rename: read again
  }
}

/**
 * The process's heap now: asks it with SIGUSR2 to write its report again and waits
 * for the new one (up to 5 s; a process busy in a long garbage collection answers late).
 * Undefined when the process did not load the ballast module or did not answer.
 */
export async function heapNow(pid: number | undefined, file: string): Promise<HeapReport | undefined> {
  const before = readReport(file);
  if (!pid || !before || before.pid !== pid) return undefined;
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const now = readReport(file);
    if (now && now.seq > before.seq) return now;
    await sleep(20);
  }
  return undefined;
}

// Preload module (`node --import <this file>`) that grows the process's JavaScript heap
// to make it look like a long-running server holding much state: many small live
// objects (plain objects with a number, a string and a pointer), held in a global
// until the process exits. Not Buffers: their memory lives outside the V8 heap, so they
// would neither make the garbage collector's marking slower nor count as heap.
//
//   TESSERA_BENCH_HEAP_MB      how far to grow the heap's used size, in MB (0 or unset: not at all)
//   TESSERA_BENCH_HEAP_REPORT  a file to write what was allocated, as JSON; written again,
//                              with the heap as it is then, on every SIGUSR2
//
// Plain JavaScript: it runs before the program's own loader (tsx) is registered. Only the
// main thread allocates: a worker (e.g. a module-loader hooks thread) does nothing here.
import { renameSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import { isMainThread } from 'node:worker_threads';

const MB = 1024 * 1024;
/** Objects per array: arrays of 10,000 keep each allocation small, as a server's state is. */
const PER_ARRAY = 10_000;

if (isMainThread) {
  const targetMb = Number(process.env.TESSERA_BENCH_HEAP_MB ?? '0');
  if (!Number.isFinite(targetMb) || targetMb < 0) throw new Error(`TESSERA_BENCH_HEAP_MB must be a number of MB >= 0, got "${process.env.TESSERA_BENCH_HEAP_MB}"`);
  const reportFile = process.env.TESSERA_BENCH_HEAP_REPORT;
  const t0 = performance.now();
  const usedBefore = v8.getHeapStatistics().used_heap_size;
  const ballast = [];
  let objects = 0;
  while (v8.getHeapStatistics().used_heap_size - usedBefore < targetMb * MB) {
    const list = new Array(PER_ARRAY);
    for (let i = 0; i < PER_ARRAY; i++, objects++) list[i] = { id: objects, name: `ballast-${objects}`, next: null };
    ballast.push(list);
  }
  globalThis.__tesseraBenchHeapBallast = ballast;
  const allocated = {
    requestedMb: targetMb,
    objects,
    /** Growth of V8's used heap while allocating (all of it live: nothing here becomes garbage). */
    grownMb: (v8.getHeapStatistics().used_heap_size - usedBefore) / MB,
    allocateMs: performance.now() - t0,
  };
  let seq = 0;
  const write = () => {
    if (!reportFile) return;
    const h = v8.getHeapStatistics();
    const now = { seq: seq++, pid: process.pid, heapUsedMb: h.used_heap_size / MB, heapTotalMb: h.total_heap_size / MB, heapLimitMb: h.heap_size_limit / MB, rssMb: process.memoryUsage.rss() / MB };
    writeFileSync(`${reportFile}.tmp`, JSON.stringify({ ...allocated, ...now }));
    renameSync(`${reportFile}.tmp`, reportFile);
  };
  write();
  process.on('SIGUSR2', write);
}

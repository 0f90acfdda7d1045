/**
 * A Tessera server with a full DICOM store, for bench/workflow-engine.ts's
 * --store-instances: the same synthetic instances as the DICOM benchmark's
 * 100,000-instance stores (dicom-big-store-case.ts, cached under the same key),
 * sent through the server's real ingest path, DICOM C-STORE with DCMTK's storescu,
 * then checked over QIDO-RS, and waited on until the server's own follow-up work
 * (series completion, thumbnails) is done, so that it does not run during the cases.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { dcmtkVersion } from './dcmtk-peers.ts';
import { bigStoreSet, loadInPieces } from './dicom-big-store-case.ts';
import { countStudyInstances } from './dicomweb-load.ts';
import { portAnswers } from './orthanc.ts';
import { cpuMs } from './proc.ts';
import type { TesseraServer } from './tessera-server.ts';

export interface StoreLoad {
  instances: number;
  studies: number;
  series: number;
  /** Bytes of one instance. */
  bytes: number;
  /** The generated set's folder. */
  dataDir: string;
  /** Seconds it took to write the set; 0 when it came from the cache. */
  generatedSeconds: number;
  associations: number;
  /** C-STORE of every instance, wall time. */
  loadMs: number;
  perSecond: number;
  /** Server CPU (all threads) during the C-STORE. */
  serverCpuMs: number;
  pieces: { instances: number; perSecond: number }[];
  /** Counting the instances back over QIDO-RS. */
  verifyMs: number;
  /** From the last C-STORE until every series was complete and had its thumbnail (or a reason for none). */
  settleMs: number;
}

export interface StoreLoadOptions {
  server: TesseraServer;
  dicomPort: number;
  count: number;
  /** Cache root of generated sets. */
  dataDir: string;
  /** Parallel storescu associations (the DICOM benchmark loads with 2). */
  associations: number;
  log(line: string): void;
}

/** Loads `count` instances into the server's store and waits until the server has finished with them. */
export async function loadStore(o: StoreLoadOptions): Promise<StoreLoad> {
  if (!(await dcmtkVersion())) throw new Error('--store-instances needs DCMTK (storescu): apt-get install dcmtk');
  const set = bigStoreSet(o.dataDir, o.count);
  const series = set.studies.reduce((n, s) => n + s.series.length, 0);
  o.log(`store: ${set.count} instances in ${set.studies.length} studies at ${set.dir}${set.generatedSeconds ? ` (written in ${set.generatedSeconds.toFixed(1)} s)` : ' (cached)'}`);
  const deadline = Date.now() + 30_000;
  while (!(await portAnswers(o.dicomPort))) {
    if (Date.now() > deadline) throw new Error(`nothing listens on the Tessera server's DICOM_PORT=${o.dicomPort} after 30 s:\n${o.server.logTail()}`);
    await sleep(50);
  }
  const cpu0 = cpuMs(o.server.pid);
  const load = await loadInPieces({ port: o.dicomPort, aet: 'TESSERA' }, set, o.associations, (sofar, piece) => {
    o.log(`store: ${sofar.instances} of ${set.count} sent: ${piece.perSecond.toFixed(0)} instances/s, ${(sofar.ms / 1000).toFixed(0)} s so far`);
    return true;
  });
  const serverCpuMs = cpuMs(o.server.pid) - cpu0;
  const loaded = performance.now();
  const n = await countStudyInstances(`${o.server.url}/dicom-web`, set.studies.map((s) => s.uid));
  if (n !== set.count) throw new Error(`after sending ${set.count} instances, the server's studies count ${n}`);
  const verifyMs = performance.now() - loaded;
  await waitSeriesSettled(o.server.url, series, o.log);
  const settleMs = performance.now() - loaded;
  o.log(`store: ${set.count} instances stored in ${(load.ms / 1000).toFixed(1)} s, counted back in ${(verifyMs / 1000).toFixed(1)} s, series complete with thumbnails ${(settleMs / 1000).toFixed(1)} s after the last store`);
  return {
    instances: set.count,
    studies: set.studies.length,
    series,
    bytes: set.bytes,
    dataDir: set.dir,
    generatedSeconds: set.generatedSeconds,
    associations: o.associations,
    loadMs: load.ms,
    perSecond: load.instances / (load.ms / 1000),
    serverCpuMs,
    pieces: load.pieces,
    verifyMs,
    settleMs,
  };
}

interface SeriesPage {
  total: number;
  items: { complete: boolean; thumbnail: string | null; thumbnail_error: string | null }[];
}

/**
 * Waits until the server lists `expected` series, every one complete (no instance for
 * TESSERA_SERIES_QUIET_SECONDS) and with its thumbnail made or a reason for none: the
 * work a store does after ingest, which must not fall into the measured cases.
 */
async function waitSeriesSettled(url: string, expected: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + 30 * 60_000;
  let lastLog = Date.now();
  for (;;) {
    let total = 0;
    let pending = 0;
    for (let offset = 0; ; offset += 10_000) {
      const res = await fetch(`${url}/api/series?limit=10000&offset=${offset}`);
      if (!res.ok) throw new Error(`GET /api/series answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
      const page = (await res.json()) as SeriesPage;
      total = page.total;
      pending += page.items.filter((s) => !s.complete || (!s.thumbnail && !s.thumbnail_error)).length;
      if (offset + 10_000 >= page.total) break;
    }
    if (total === expected && pending === 0) return;
    if (total > expected) throw new Error(`the server lists ${total} series, more than the ${expected} sent (was the store not empty?)`);
    if (Date.now() > deadline) throw new Error(`${pending} of ${total} series still without a thumbnail after 30 min`);
    if (Date.now() - lastLog > 10_000) {
      log(`store: waiting for the server to complete the series and make their thumbnails: ${pending} of ${total} to go`);
      lastLog = Date.now();
    }
    await sleep(1000);
  }
}

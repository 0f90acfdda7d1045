/**
 * DICOM data-layer benchmark: Tessera's DICOM server beside Orthanc (with its
 * DICOMweb plugin) and DCMTK's storescp (the floor for C-STORE), on the same
 * synthetic CT instances. See bench/README.md.
 *
 *   npx tsx bench/dicom-ingest.ts [--only tessera,orthanc,storescp] [--cases cstore,stow,qido,search,scale]
 *       [--count 1000] [--reps 3] [--template ct-small|ct-512] [--associations 1]
 *       [--stow-concurrency 2] [--stow-batch 10] [--qido-count 1000] [--qido-reps 20]
 *       [--search-count 100000] [--search-reps 20] [--load-associations 2] [--orthanc-load-budget 600]
 *       [--workdir DIR] [--data-dir DIR] [--port 18766] [--dicom-port 14244] [--repo DIR] [--keep]
 *
 * The parts live in bench/lib: options (dicom-ingest-options.ts), the systems
 * (dicom-targets.ts), the cases (dicom-cases.ts, dicom-big-store-case.ts), the
 * measurements (dicom-results.ts) and the report (dicom-report.ts).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dcmtkVersion } from './lib/dcmtk-peers.ts';
import { bigCase } from './lib/dicom-big-store-case.ts';
import { DicomCases } from './lib/dicom-cases.ts';
import { generateCtInstances } from './lib/dicom-gen.ts';
import { ALL_SYSTEMS, LABEL, WARMUP, parseDicomIngestOptions, type SystemId } from './lib/dicom-ingest-options.ts';
import { diskProbe, dicomReport } from './lib/dicom-report.ts';
import { DicomResults, log } from './lib/dicom-results.ts';
import { DicomTargets } from './lib/dicom-targets.ts';
import { num } from './lib/stats.ts';

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const options = parseDicomIngestOptions(process.argv.slice(2), HERE);
const { only, cases, count, template, dataDir } = options;
const targets = new DicomTargets({ repo: options.repo, ports: options.ports });
const results = new DicomResults();
const { versions } = targets;

async function main(): Promise<void> {
  const started = new Date();
  const loadBefore = loadavg()[0]!;
  if (loadBefore > 0.5) log(`note: load average is ${loadBefore.toFixed(2)} before the benchmark; other work on the machine will inflate the times`);
  const root = mkdtempSync(join(resolve(options.workdir ?? tmpdir()), 'tessera-dicom-bench-'));
  const run = new DicomCases({ options, targets, results, root });
  const disk = diskProbe(root);
  versions.set('Node', process.version);
  versions.set('DCMTK', (await dcmtkVersion()) ?? 'not installed');

  // Each system is started once up front: one that cannot start is reported as such instead of failing every case.
  const absent = new Map<SystemId, string>();
  for (const id of ALL_SYSTEMS) {
    if (!only.includes(id)) {
      absent.set(id, 'not run (--only)');
      continue;
    }
    if (id === 'storescp' && versions.get('DCMTK') === 'not installed') {
      absent.set(id, 'not installed');
      continue;
    }
    const dir = run.home('preflight', id);
    try {
      await (await targets.start(id, dir)).stop();
    } catch (err) {
      const why = (err as Error).message;
      absent.set(id, `could not start: ${why.split('\n')[0]}`);
      log(`${LABEL[id]}: could not start, skipped:\n${why}`);
    } finally {
      run.dispose(dir);
    }
  }
  const ready = (ids: readonly SystemId[]): SystemId[] => ids.filter((id) => !absent.has(id));
  const web: SystemId[] = ['tessera', 'orthanc'];

  const warm = generateCtInstances({ dir: dataDir, count: WARMUP, studies: 1, label: 'warmup' });
  const set = generateCtInstances({ dir: dataDir, count, studies: Math.max(1, Math.ceil(count / 100)), seriesPerStudy: 2, template, label: 'ingest' });
  log(`data: ${set.count} instances (${template}, ${num(set.bytes)} bytes each) in ${set.studies.length} studies at ${set.dir}${set.generatedSeconds ? ` (written in ${set.generatedSeconds.toFixed(1)} s)` : ' (cached)'}`);

  const onSignal = (): void => {
    void Promise.all([...targets.live].map((t) => t.stop())).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (cases.includes('cstore')) await run.ingestCase('cstore', ready(ALL_SYSTEMS), set, warm);
    if (cases.includes('stow')) await run.ingestCase('stow', ready(web), set, warm);
    if (cases.includes('qido')) await run.qidoCase(ready(web));
    if (cases.includes('search') || cases.includes('scale')) await bigCase(run, ready(web), warm);
  } finally {
    await targets.stopAll();
  }

  const command = `npx tsx bench/dicom-ingest.ts ${process.argv.slice(2).join(' ')}`.trim();
  const report = dicomReport({ options, results, targets, absent, started, loadBefore, command, root, disk, set });
  log(`\n${report}\n`);

  const outDir = join(HERE, 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const jsonFile = join(outDir, `dicom-ingest-${stamp}.json`);
  const { ingests, queries, loads, notes } = results;
  writeFileSync(jsonFile, JSON.stringify({ started, command, versions: Object.fromEntries(versions), absent: Object.fromEntries(absent), disk, ingests, queries, loads, notes }, null, 1));
  writeFileSync(join(outDir, `dicom-ingest-${stamp}.md`), `${report}\n`);
  log(`raw measurements: ${jsonFile}`);
  if (options.keep) log(`work dir kept: ${root}`);
  else rmSync(root, { recursive: true, force: true });
}

main().catch(async (err: unknown) => {
  for (const t of [...targets.live]) await t.stop().catch(() => undefined);
  console.error(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});

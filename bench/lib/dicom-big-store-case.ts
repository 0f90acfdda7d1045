/**
 * The search and scale cases of the DICOM benchmark: stores holding
 * --search-count instances, loaded once per system, then searched (QIDO-RS at
 * study level) and stored into, beside the same store into an empty one.
 */
import { storeScu, type StoreScuResult } from './dcmtk-peers.ts';
import type { DicomCases } from './dicom-cases.ts';
import { generateCtInstances, type GeneratedSet, type StudyInfo } from './dicom-gen.ts';
import { LABEL, WARMUP, type SystemId } from './dicom-ingest-options.ts';
import { log, type Load, type QueryShape } from './dicom-results.ts';
import type { Target } from './dicom-targets.ts';
import { countStudyInstances } from './dicomweb-load.ts';
import { cpuMs } from './proc.ts';
import { num } from './stats.ts';

/** A DICOM wildcard (`*`, `?`) as an anchored regular expression. */
function wildcard(pattern: string): RegExp {
  const body = [...pattern].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${body}$`);
}

function searchShapes(big: GeneratedSet): QueryShape[] {
  // '^' goes unencoded: Orthanc 1.10's DICOMweb plugin does not decode %5E (nor any %XX) in query values and
  // would match nothing; a raw '^' is legal in a query string and every server reads it the same.
  const q = (params: Record<string, string>): string => `/studies?${Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v).replaceAll('%5E', '^')}`).join('&')}`;
  const pid = big.studies[Math.min(137, big.studies.length - 1)]!.patientId;
  const name = (p: string): QueryShape['expect'] => (st) => st.filter((s) => wildcard(p).test(s.patientName)).length;
  const dates = (a: string, b: string, s: StudyInfo): boolean => s.studyDate >= a && s.studyDate <= b;
  return [
    { id: 'patient-id', label: `PatientID=${pid} (exact)`, path: q({ PatientID: pid }), expect: (st) => st.filter((s) => s.patientId === pid).length },
    { id: 'name-prefix', label: 'PatientName=JONES^* (prefix wildcard)', path: q({ PatientName: 'JONES^*' }), expect: name('JONES^*') },
    { id: 'name-contains', label: 'PatientName=*SON^* (inner wildcard)', path: q({ PatientName: '*SON^*' }), expect: name('*SON^*') },
    { id: 'date-range', label: 'StudyDate=20200101-20200331', path: q({ StudyDate: '20200101-20200331' }), expect: (st) => st.filter((s) => dates('20200101', '20200331', s)).length },
    { id: 'modality', label: 'ModalitiesInStudy=MR', path: q({ ModalitiesInStudy: 'MR' }), expect: (st) => st.filter((s) => s.modality === 'MR').length },
    {
      id: 'date-modality',
      label: 'StudyDate=20180101-20181231 & ModalitiesInStudy=CT',
      path: q({ StudyDate: '20180101-20181231', ModalitiesInStudy: 'CT' }),
      expect: (st) => st.filter((s) => s.modality === 'CT' && dates('20180101', '20181231', s)).length,
    },
  ];
}

/** The instances of the big stores: 1 study per 100 instances, 2 series each, 1 study in 5 MR; cached under `dataDir`. */
export function bigStoreSet(dataDir: string, count: number): GeneratedSet {
  return generateCtInstances({ dir: dataDir, count, studies: Math.max(1, Math.round(count / 100)), seriesPerStudy: 2, template: 'ct-small', modalities: ['CT', 'CT', 'CT', 'CT', 'MR'], label: 'search' });
}

export interface PiecesLoad {
  instances: number;
  /** Sum of the pieces' wall times. */
  ms: number;
  pieces: { instances: number; perSecond: number }[];
}

/**
 * Sends a generated set with storescu in pieces of 10,000 instances (20 chunk
 * folders), `associations` at once. After each piece, `onPiece` sees the load so far
 * and the piece; returning false ends the load there.
 */
export async function loadInPieces(to: { port: number; aet: string }, set: GeneratedSet, associations: number, onPiece?: (sofar: PiecesLoad, piece: StoreScuResult) => boolean): Promise<PiecesLoad> {
  const chunks = set.chunks();
  const load: PiecesLoad = { instances: 0, ms: 0, pieces: [] };
  for (let i = 0; i < chunks.length; i += 20) {
    const r = await storeScu({ host: '127.0.0.1', port: to.port, aet: to.aet, files: chunks.slice(i, i + 20), associations, timeoutMs: 60 * 60_000 });
    load.instances += r.instances;
    load.ms += r.ms;
    load.pieces.push({ instances: r.instances, perSecond: r.perSecond });
    if (onPiece && !onPiece(load, r)) break;
  }
  return load;
}

/** Loads the big set, giving up on a peer that would exceed its time budget. */
async function loadBig(t: Target, big: GeneratedSet, budgetMs: number | undefined, loadAssociations: number): Promise<Load> {
  const cpu0 = cpuMs(t.pid);
  let skipped: string | undefined;
  const r = await loadInPieces({ port: t.dicomPort, aet: t.aet }, big, loadAssociations, (sofar, piece) => {
    const left = (big.count - sofar.instances) / piece.perSecond;
    log(`load     ${t.id.padEnd(9)} ${sofar.instances} of ${big.count}: ${piece.perSecond.toFixed(0)} instances/s, ${(sofar.ms / 1000).toFixed(0)} s so far, ~${left.toFixed(0)} s to go`);
    // Judged from the third piece on: the first ones run slow while the server and its index warm up.
    const projected = sofar.ms + left * 1000;
    if (budgetMs !== undefined && (sofar.ms > budgetMs || (sofar.pieces.length >= 3 && projected > budgetMs))) {
      skipped = `loading ${num(big.count)} instances would take ~${(projected / 60_000).toFixed(0)} min (${piece.perSecond.toFixed(0)} instances/s at ${num(sofar.instances)}), over the ${budgetMs / 60_000}-min budget (--orthanc-load-budget)`;
      return false;
    }
    return true;
  });
  const load: Load = { system: t.id, instances: r.instances, ms: r.ms, cpuMs: 0, pieces: r.pieces };
  if (skipped) return { ...load, skipped };
  load.cpuMs = cpuMs(t.pid) - cpu0;
  const v0 = performance.now();
  const n = await countStudyInstances(t.web!, big.studies.map((s) => s.uid));
  if (n !== big.count) throw new Error(`after loading ${big.count} instances, the studies count ${n}`);
  load.verifyMs = performance.now() - v0;
  return load;
}

/** Runs the search and/or scale cases (whichever --cases names) on `systems`. */
export async function bigCase(run: DicomCases, systems: SystemId[], warm: GeneratedSet): Promise<void> {
  const { cases, count, dataDir, loadAssociations, orthancLoadBudgetMs, reps, searchCount, searchReps, template } = run.o;
  const { results } = run;
  const big = bigStoreSet(dataDir, searchCount);
  log(`data: ${big.count} instances in ${big.studies.length} studies at ${big.dir}${big.generatedSeconds ? ` (written in ${big.generatedSeconds.toFixed(0)} s)` : ' (cached)'}`);
  const shapes = searchShapes(big);
  results.shapesOf.set('search', shapes);
  const scaleSets = Array.from({ length: reps }, (_, rep) => generateCtInstances({ dir: dataDir, count, studies: Math.max(1, Math.ceil(count / 100)), seriesPerStudy: 2, template, label: `scale-${rep}` }));
  const loaded: SystemId[] = [];
  const stored = new Map<SystemId, StudyInfo[]>();
  const homes = new Map<SystemId, string>();
  for (const id of systems) {
    const dir = run.home('big', id);
    homes.set(id, dir);
    let t: Target | undefined;
    try {
      t = await run.targets.start(id, dir);
      const load = await loadBig(t, big, id === 'orthanc' ? orthancLoadBudgetMs : undefined, loadAssociations);
      results.loads.push(load);
      if (load.skipped) {
        results.notes.push(`search/scale, ${LABEL[id]}: not measured: ${load.skipped}.`);
        log(`load ${id}: skipped: ${load.skipped}`);
      } else {
        loaded.push(id);
        stored.set(id, [...big.studies]);
      }
    } catch (err) {
      results.loads.push({ system: id, instances: 0, ms: 0, cpuMs: 0, pieces: [], error: (err as Error).message });
      log(`load ${id}: FAILED: ${(err as Error).message}`);
    } finally {
      await t?.stop();
      if (!loaded.includes(id)) run.dispose(dir);
    }
  }
  const perRound = Math.ceil(searchReps / reps);
  for (let rep = 0; rep < reps; rep++) {
    for (const id of loaded) {
      // Restarted in every repetition: only one server runs at a time, so the other's background work cannot skew it.
      let t: Target | undefined;
      try {
        t = await run.targets.start(id, homes.get(id)!);
        if (cases.includes('search')) await run.queryRound('search', t, shapes, perRound, true, stored.get(id)!);
        if (cases.includes('scale') && !results.failedBefore('scale-full', id)) {
          try {
            const w = generateCtInstances({ dir: dataDir, count: WARMUP, studies: 1, label: `scale-warmup-${rep}` });
            await run.send('cstore', t, w);
            stored.get(id)!.push(...w.studies);
          } catch (err) {
            throw new Error(`the ${WARMUP} warm-up instances were not stored: ${(err as Error).message}`);
          }
          results.record(await run.timedIngest('scale-full', 'cstore', t, scaleSets[rep]!, rep, 0));
          stored.get(id)!.push(...scaleSets[rep]!.studies);
        }
      } catch (err) {
        results.record({ case: 'scale-full', system: id, rep, ok: false, error: (err as Error).message });
      } finally {
        await t?.stop();
      }
    }
  }
  if (cases.includes('search')) results.logQueries('search');
  for (const id of loaded) run.dispose(homes.get(id)!);
  if (!cases.includes('scale')) return;
  for (let rep = 0; rep < reps; rep++) {
    for (const id of loaded) {
      if (results.failedBefore('scale-empty', id)) continue;
      const dir = run.home('scale-empty', `${id}-${rep + 1}`);
      let t: Target | undefined;
      try {
        t = await run.targets.start(id, dir);
        await run.send('cstore', t, warm);
        results.record(await run.timedIngest('scale-empty', 'cstore', t, scaleSets[rep]!, rep, warm.count));
      } catch (err) {
        results.record({ case: 'scale-empty', system: id, rep, ok: false, error: (err as Error).message });
      } finally {
        await t?.stop();
        run.dispose(dir);
      }
    }
  }
}

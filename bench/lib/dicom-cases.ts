/**
 * The cases of the DICOM benchmark that run on small stores (cstore, stow,
 * qido), and what every case does: start a system on a store folder, send a
 * data set, check that all of it arrived, time queries.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { storeScu } from './dcmtk-peers.ts';
import { generateCtInstances, type GeneratedSet, type StudyInfo } from './dicom-gen.ts';
import { LABEL, QUERY_BUDGET_MS, type DicomIngestOptions, type SystemId } from './dicom-ingest-options.ts';
import { log, type DicomResults, type Ingest, type QueryShape } from './dicom-results.ts';
import type { DicomTargets, Target } from './dicom-targets.ts';
import { qido, stow, waitQueryable } from './dicomweb-load.ts';
import { cpuMs } from './proc.ts';
import { num } from './stats.ts';

export interface DicomCasesOptions {
  options: DicomIngestOptions;
  targets: DicomTargets;
  results: DicomResults;
  /** The run's work dir: every store folder goes below it. */
  root: string;
}

export class DicomCases {
  readonly o: DicomIngestOptions;
  readonly targets: DicomTargets;
  readonly results: DicomResults;
  readonly root: string;

  constructor(c: DicomCasesOptions) {
    this.o = c.options;
    this.targets = c.targets;
    this.results = c.results;
    this.root = c.root;
  }

  /** An empty folder below the work dir (its parent created, the folder itself left to the system). */
  home(...parts: string[]): string {
    const dir = join(this.root, ...parts);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dirname(dir), { recursive: true });
    return dir;
  }

  dispose(dir: string): void {
    if (!this.o.keep) rmSync(dir, { recursive: true, force: true });
  }

  /** Sends a data set the way the case says: C-STORE through storescu, or STOW-RS through the Node client. */
  async send(kind: 'cstore' | 'stow', t: Target, set: GeneratedSet, assoc = this.o.associations): Promise<{ ms: number; perSecond: number }> {
    if (kind === 'stow') return stow({ url: t.web!, files: set.files(), ...this.o.stowShape });
    return storeScu({ host: '127.0.0.1', port: t.dicomPort, aet: t.aet, dir: set.dir, associations: assoc });
  }

  async verify(t: Target, set: GeneratedSet, before: number): Promise<number> {
    const t0 = performance.now();
    if (t.received) {
      const n = t.received();
      if (n !== before + set.count) throw new Error(`storescp wrote ${n} files, expected ${before + set.count}`);
      return performance.now() - t0;
    }
    return waitQueryable(
      t.web!,
      set.studies.map((s) => s.uid),
      set.count,
    );
  }

  /** Times storing `set` into `t` (which already holds `before` instances) and checks that all of it arrived. */
  async timedIngest(caseId: string, kind: 'cstore' | 'stow', t: Target, set: GeneratedSet, rep: number, before: number): Promise<Ingest> {
    const base = { case: caseId, system: t.id, rep };
    try {
      const cpu0 = cpuMs(t.pid);
      const r = await this.send(kind, t, set);
      const cpu = cpuMs(t.pid) - cpu0;
      const verifyMs = await this.verify(t, set, before);
      return { ...base, ok: true, instances: set.count, ms: r.ms, perSecond: r.perSecond, cpuMsPerInstance: cpu / set.count, verifyMs, rssMb: t.peakRssMb() };
    } catch (err) {
      return { ...base, ok: false, error: (err as Error).message };
    }
  }

  /** Fresh store per system and repetition, systems taking turns: same instances, never a duplicate. */
  async ingestCase(caseId: 'cstore' | 'stow', systems: SystemId[], set: GeneratedSet, warm: GeneratedSet): Promise<void> {
    for (let rep = 0; rep < this.o.reps; rep++) {
      for (const id of systems) {
        if (this.results.failedBefore(caseId, id)) continue;
        const dir = this.home(caseId, `${id}-${rep + 1}`);
        let t: Target | undefined;
        try {
          t = await this.targets.start(id, dir);
          await this.send(caseId, t, warm);
          this.results.record(await this.timedIngest(caseId, caseId, t, set, rep, warm.count));
        } catch (err) {
          this.results.record({ case: caseId, system: id, rep, ok: false, error: (err as Error).message });
        } finally {
          await t?.stop();
          this.dispose(dir);
        }
      }
    }
  }

  /** Times each query shape once more on a target (`perRound` samples each) and adds the samples to the case's. */
  async queryRound(caseId: string, t: Target, shapes: QueryShape[], perRound: number, warmup: boolean, stored: readonly StudyInfo[]): Promise<void> {
    const queries = this.results.queries;
    for (const q of shapes) {
      let s = queries.find((x) => x.case === caseId && x.system === t.id && x.query === q.id);
      if (!s) {
        s = { case: caseId, system: t.id, query: q.id, ms: [], results: 0, bytes: 0 };
        queries.push(s);
      }
      if (s.error) continue;
      try {
        const r = await qido({ url: t.web!, path: q.path, reps: perRound, expect: q.expect(stored), warmup, budgetMs: QUERY_BUDGET_MS });
        s.ms.push(...r.ms);
        s.results = r.results;
        s.bytes = r.bytes;
      } catch (err) {
        s.error = (err as Error).message;
        log(`${caseId} ${t.id} ${q.id}: FAILED: ${s.error}`);
      }
    }
  }

  async qidoCase(systems: SystemId[]): Promise<void> {
    const { dataDir, qidoCount, qidoReps, reps, template } = this.o;
    const set = generateCtInstances({ dir: dataDir, count: qidoCount, studies: 1, seriesPerStudy: 2, template, label: 'qido' });
    const st = set.studies[0]!;
    const se = st.series[0]!;
    const shapes: QueryShape[] = [
      { id: 'study-instances', label: `instances of the ${num(set.count)}-instance study`, path: `/studies/${st.uid}/instances`, expect: () => set.count },
      { id: 'series-instances', label: `instances of one ${num(se.instances)}-instance series`, path: `/studies/${st.uid}/series/${se.uid}/instances`, expect: () => se.instances },
      { id: 'study-series', label: 'series of the study', path: `/studies/${st.uid}/series`, expect: () => st.series.length },
      { id: 'study-by-uid', label: 'the study, by StudyInstanceUID', path: `/studies?StudyInstanceUID=${st.uid}`, expect: () => 1 },
    ];
    this.results.shapesOf.set('qido', shapes);
    const targets: Target[] = [];
    const stored = new Map<SystemId, StudyInfo[]>();
    try {
      // Both servers stay up, idle but for the queries, so that they can take turns.
      for (const id of systems) {
        try {
          const t = await this.targets.start(id, this.home('qido', id));
          await this.send('cstore', t, set);
          await this.verify(t, set, 0);
          targets.push(t);
          stored.set(id, set.studies);
        } catch (err) {
          this.results.notes.push(`QIDO, ${LABEL[id]}: could not be loaded: ${(err as Error).message}`);
          log(`qido ${id}: FAILED to load: ${(err as Error).message}`);
        }
      }
      const perRound = Math.ceil(qidoReps / reps);
      for (let rep = 0; rep < reps; rep++) {
        for (const t of targets) await this.queryRound('qido', t, shapes, perRound, rep === 0, stored.get(t.id)!);
      }
      this.results.logQueries('qido');
    } finally {
      for (const t of targets) await t.stop();
      for (const id of systems) this.dispose(join(this.root, 'qido', id));
    }
  }
}

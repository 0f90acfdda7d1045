/** What the DICOM benchmark measures, kept for the report and the raw JSON. */
import type { StudyInfo } from './dicom-gen.ts';
import type { SystemId } from './dicom-ingest-options.ts';
import { millis, percentile } from './stats.ts';

export interface Ingest {
  case: string;
  system: SystemId;
  rep: number;
  ok: boolean;
  error?: string;
  instances?: number;
  ms?: number;
  perSecond?: number;
  /** Server CPU time per instance (ms), from /proc: steadier than wall time on a shared machine. */
  cpuMsPerInstance?: number;
  /** From the end of the store to all instances listed by QIDO (or all files written): includes the listing itself. */
  verifyMs?: number;
  /** Peak resident memory of the server after the run (MB). */
  rssMb?: number;
}

export interface QuerySample {
  case: string;
  system: SystemId;
  query: string;
  ms: number[];
  results: number;
  bytes: number;
  error?: string;
}

export interface QueryShape {
  id: string;
  label: string;
  path: string;
  /** Results expected from what the store holds. */
  expect: (stored: readonly StudyInfo[]) => number;
}

export interface Load {
  system: SystemId;
  instances: number;
  ms: number;
  cpuMs: number;
  /** Rate of each 10,000-instance piece, in order: shows how ingest slows as the store grows. */
  pieces: { instances: number; perSecond: number }[];
  verifyMs?: number;
  skipped?: string;
  error?: string;
}

export function log(line: string): void {
  console.log(line);
}

/** Every measurement of one benchmark run, in the order taken. */
export class DicomResults {
  readonly ingests: Ingest[] = [];
  readonly queries: QuerySample[] = [];
  readonly loads: Load[] = [];
  readonly notes: string[] = [];
  /** The query shapes of each query case, in the order the report lists them. */
  readonly shapesOf = new Map<string, QueryShape[]>();

  record(m: Ingest): void {
    this.ingests.push(m);
    const cpu = Number.isFinite(m.cpuMsPerInstance) ? `, server CPU ${millis(m.cpuMsPerInstance!, 2)} ms/instance` : '';
    log(`${m.case.padEnd(12)} ${m.system.padEnd(9)} run ${m.rep + 1}: ${m.ok ? `${m.perSecond!.toFixed(0)} instances/s (${(m.ms! / 1000).toFixed(2)} s${cpu}; verified in ${(m.verifyMs! / 1000).toFixed(2)} s)` : `FAILED: ${m.error}`}`);
  }

  /** A system that failed a case fails the same way again, and slowly: its later repetitions are skipped. */
  failedBefore(caseId: string, id: SystemId): boolean {
    return this.ingests.some((m) => m.case === caseId && m.system === id && !m.ok);
  }

  logQueries(caseId: string): void {
    for (const s of this.queries.filter((x) => x.case === caseId && !x.error)) {
      log(`${caseId.padEnd(8)} ${s.system.padEnd(9)} ${s.query.padEnd(18)} p50 ${millis(percentile(s.ms, 50), 1)} ms, p95 ${millis(percentile(s.ms, 95), 1)} ms (${s.ms.length} samples, ${s.results} results)`);
    }
  }
}

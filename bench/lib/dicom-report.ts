/**
 * The report of the DICOM benchmark: Markdown tables of each case side by side,
 * and the header that says on what machine, code and settings they were taken.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import type { GeneratedSet } from './dicom-gen.ts';
import { ALL_SYSTEMS, LABEL, QUERY_BUDGET_MS, WARMUP, type DicomIngestOptions, type SystemId } from './dicom-ingest-options.ts';
import type { DicomResults, Ingest, QuerySample } from './dicom-results.ts';
import type { DicomTargets } from './dicom-targets.ts';
import { median, millis, num, percentile, ratio as times } from './stats.ts';
import { gitState } from './git-state.ts';

function rates(results: DicomResults, caseId: string, id: SystemId): { ok: Ingest[]; failed?: Ingest; rate: number } {
  const all = results.ingests.filter((m) => m.case === caseId && m.system === id);
  const ok = all.filter((m) => m.ok);
  return { ok, failed: all.find((m) => !m.ok), rate: median(ok.map((m) => m.perSecond!)) };
}

function ingestTable(results: DicomResults, caseId: string, systems: readonly SystemId[], absent: ReadonlyMap<SystemId, string>): string {
  const tessera = rates(results, caseId, 'tessera').rate;
  const rows = ['| system | instances/s, median (runs) | min - max | server CPU per instance | server peak RSS | Tessera / this (rate) |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const id of systems) {
    const why = absent.get(id);
    if (why) {
      rows.push(`| ${LABEL[id]} | ${why} | | | | |`);
      continue;
    }
    const r = rates(results, caseId, id);
    if (r.ok.length === 0) {
      rows.push(`| ${LABEL[id]} | failed: ${(r.failed?.error ?? 'not run').split('\n')[0]!.slice(0, 200)} | | | | |`);
      continue;
    }
    const perSecond = r.ok.map((m) => m.perSecond!);
    const cpu = median(r.ok.map((m) => m.cpuMsPerInstance!));
    const rss = Math.max(...r.ok.map((m) => m.rssMb ?? Number.NaN));
    rows.push(`| ${LABEL[id]} | ${num(r.rate)} (${r.ok.length}) | ${num(Math.min(...perSecond))} - ${num(Math.max(...perSecond))} | ${millis(cpu, 2)} ms | ${Number.isFinite(rss) ? `${num(rss)} MB` : 'n/a'} | ${id === 'tessera' ? '—' : times(tessera, r.rate)} |`);
  }
  return rows.join('\n');
}

function queryTable(results: DicomResults, caseId: string, systems: readonly SystemId[]): string {
  const head = systems.map((id) => `${LABEL[id]} p50 / p95 (n)`);
  const both = systems.includes('tessera') && systems.includes('orthanc');
  const rows = [`| query | results | ${head.join(' | ')} |${both ? ' Tessera / Orthanc (p50 time) |' : ''}`, `| --- | ---: | ${systems.map(() => '---:').join(' | ')} |${both ? ' ---: |' : ''}`];
  for (const q of results.shapesOf.get(caseId) ?? []) {
    const of = (id: SystemId): QuerySample | undefined => results.queries.find((x) => x.case === caseId && x.system === id && x.query === q.id);
    const cells = systems.map((id) => {
      const s = of(id);
      if (!s) return 'not run';
      if (s.error) return `failed: ${s.error.slice(0, 100)}`;
      return `${millis(percentile(s.ms, 50), 1)} / ${millis(percentile(s.ms, 95), 1)} ms (${s.ms.length})`;
    });
    const found = systems.map((id) => of(id)).find((s) => s && !s.error)?.results;
    const p50 = (id: SystemId): number => {
      const s = of(id);
      return s && !s.error ? percentile(s.ms, 50) : Number.NaN;
    };
    rows.push(`| ${q.label} | ${found ?? 'n/a'} | ${cells.join(' | ')} |${both ? ` ${times(p50('tessera'), p50('orthanc'))} |` : ''}`);
  }
  return rows.join('\n');
}

function loadTable(results: DicomResults): string {
  const rows = ['| system | load time | instances/s overall | first 10,000 | last 10,000 | server CPU per instance |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const l of results.loads) {
    if (l.error) {
      rows.push(`| ${LABEL[l.system]} | failed: ${l.error.split('\n')[0]!.slice(0, 200)} | | | | |`);
      continue;
    }
    const first = l.pieces[0]?.perSecond ?? Number.NaN;
    const last = l.pieces.at(-1)?.perSecond ?? Number.NaN;
    if (l.skipped) {
      rows.push(`| ${LABEL[l.system]} | skipped after ${num(l.instances)}: ${l.skipped} | | ${num(first)} | | |`);
      continue;
    }
    rows.push(`| ${LABEL[l.system]} | ${(l.ms / 1000).toFixed(0)} s | ${num(l.instances / (l.ms / 1000))} | ${num(first)} | ${num(last)} | ${millis(l.cpuMs / l.instances, 2)} ms |`);
  }
  return rows.join('\n');
}

function scaleTable(results: DicomResults, systems: readonly SystemId[], searchCount: number): string {
  const rows = [`| system | empty store, instances/s (runs) | holding ${num(searchCount)}, instances/s (runs) | full / empty | server CPU per instance, empty / full |`, '| --- | ---: | ---: | ---: | ---: |'];
  for (const id of systems) {
    const e = rates(results, 'scale-empty', id);
    const f = rates(results, 'scale-full', id);
    if (e.ok.length === 0 && f.ok.length === 0 && !e.failed && !f.failed) {
      rows.push(`| ${LABEL[id]} | not measured (see the load above) | | | |`);
      continue;
    }
    const cell = (r: ReturnType<typeof rates>): string => (r.ok.length > 0 ? `${num(r.rate)} (${r.ok.length})` : `failed: ${(r.failed?.error ?? 'not run').split('\n')[0]!.slice(0, 200)}`);
    const cpu = (r: { ok: Ingest[] }): string => millis(median(r.ok.map((m) => m.cpuMsPerInstance!)), 2);
    rows.push(`| ${LABEL[id]} | ${cell(e)} | ${cell(f)} | ${times(f.rate, e.rate)} | ${cpu(e)} / ${cpu(f)} ms |`);
  }
  return rows.join('\n');
}

/** TESSERA_* and DICOM_* variables the server inherits from the benchmark's environment: they change what is measured (fsync, durability, ...). */
function inherited(): string {
  const set = Object.entries(process.env).filter(([k]) => /^(TESSERA_|DICOM_)/.test(k));
  return set.length > 0 ? `inherited from the environment: ${set.map(([k, v]) => `${k}=${v}`).join(', ')}` : 'every other setting at its default (e.g. TESSERA_DICOM_FSYNC=false, TESSERA_DB_DURABILITY=normal)';
}

export interface DiskCosts {
  fsyncMs: number;
  createMs: number;
}

/** What fsync and creating a 39 KB file cost in the work dir: every store pays them, some per instance. */
export function diskProbe(dir: string): DiskCosts {
  const probe = join(dir, 'probe');
  mkdirSync(probe);
  const fsyncs: number[] = [];
  const creates: number[] = [];
  const data = Buffer.alloc(39_000, 1);
  const fd = openSync(join(probe, 'sync'), 'w');
  for (let i = 0; i < 30; i++) {
    writeSync(fd, data, 0, 4096);
    const t0 = performance.now();
    fsyncSync(fd);
    fsyncs.push(performance.now() - t0);
  }
  closeSync(fd);
  for (let i = 0; i < 200; i++) {
    const t0 = performance.now();
    writeFileSync(join(probe, `f${i}`), data);
    creates.push(performance.now() - t0);
  }
  rmSync(probe, { recursive: true, force: true });
  return { fsyncMs: median(fsyncs), createMs: median(creates) };
}

export interface DicomReportInput {
  options: DicomIngestOptions;
  results: DicomResults;
  targets: DicomTargets;
  /** Systems that did not run, with why: "not run (--only)", "not installed", "could not start: ...". */
  absent: ReadonlyMap<SystemId, string>;
  started: Date;
  /** 1-minute load average before the benchmark. */
  loadBefore: number;
  command: string;
  /** The run's work dir. */
  root: string;
  disk: DiskCosts;
  /** The data set of the ingest cases. */
  set: GeneratedSet;
}

/** The whole report, as Markdown: the header, then one section per case run. */
export function dicomReport(input: DicomReportInput): string {
  const { options: o, results, targets, absent, started, loadBefore, command, root, disk, set } = input;
  const { cases, count, associations, stowShape, qidoCount, qidoReps, reps, searchCount, loadAssociations, template, dataDir, repo, ports } = o;
  const { versions, how } = targets;
  const { notes } = results;
  const ready = (ids: readonly SystemId[]): SystemId[] => ids.filter((id) => !absent.has(id));
  const web: SystemId[] = ['tessera', 'orthanc'];
  const ratio = (caseId: string, other: SystemId): string => times(rates(results, caseId, 'tessera').rate, rates(results, caseId, other).rate);
  const qidoP50 = (id: SystemId): number => percentile(results.queries.find((q) => q.case === 'qido' && q.system === id && q.query === 'study-instances')?.ms ?? [], 50);
  const sections: string[] = [];
  if (cases.includes('cstore')) {
    sections.push(
      `### C-STORE: ${num(count)} instances, ${associations} association(s), storescu`,
      '',
      `Fresh store per run, ${WARMUP} untimed instances first; every instance checked afterwards (QIDO lists all of them, or storescp wrote all files).`,
      '',
      ingestTable(results, 'cstore', ALL_SYSTEMS, absent),
      '',
      `Tessera / Orthanc: ${ratio('cstore', 'orthanc')}; Tessera / storescp: ${ratio('cstore', 'storescp')} (rates).`,
      '',
    );
  }
  if (cases.includes('stow')) {
    sections.push(
      `### STOW-RS: ${num(count)} instances, ${stowShape.instancesPerRequest} per request, ${stowShape.concurrency} request(s) in flight`,
      '',
      ingestTable(results, 'stow', web, absent),
      '',
      `Tessera / Orthanc: ${ratio('stow', 'orthanc')} (rates).`,
      '',
    );
  }
  if (cases.includes('qido')) {
    sections.push(
      `### QIDO-RS on one ${num(qidoCount)}-instance study (2 series), one request at a time`,
      '',
      `${Math.ceil(qidoReps / reps) * reps} samples per query and system (${Math.ceil(qidoReps / reps)} per repetition, fewer once a query took ${QUERY_BUDGET_MS / 1000} s in a repetition), after one untimed request.`,
      '',
      queryTable(results, 'qido', ready(web)),
      '',
      `Instances of the ${num(qidoCount)}-instance study, p50: Tessera / Orthanc = ${times(qidoP50('tessera'), qidoP50('orthanc'))} (time; below 1 means Tessera answers faster).`,
      '',
    );
  }
  if (cases.includes('search') || cases.includes('scale')) {
    sections.push(`### Stores holding ${num(searchCount)} instances (${num(Math.round(searchCount / 100))} studies of 2 series, 1 in 5 studies MR)`, '', `Loaded with storescu, ${loadAssociations} association(s), in pieces of 10,000:`, '', loadTable(results), '');
  }
  if (cases.includes('search')) sections.push('Study search (QIDO-RS, study level), server restarted before each repetition:', '', queryTable(results, 'search', ready(web)), '');
  if (cases.includes('scale')) sections.push(`C-STORE of ${num(count)} new instances into an empty store and into the loaded one:`, '', scaleTable(results, ready(web), searchCount), '');
  return [
    `Date: ${started.toISOString()}`,
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}`,
    `Versions: ${[...versions].map(([k, v]) => `${k} ${v}`).join('; ')}`,
    `Tessera code: ${gitState(repo)}`,
    `Command: ${command}`,
    `Load average (1 min): ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`,
    `Work dir: ${dirname(root)}: fsync ${disk.fsyncMs.toFixed(3)} ms, writing a new 39 KB file ${disk.createMs.toFixed(3)} ms (medians)`,
    `Data: ${template} (${num(set.bytes)} bytes per instance), generated once into ${dataDir}`,
    '',
    'How each system runs:',
    `- Tessera: ${absent.get('tessera') ?? `node bin/tessera-server.mjs, HOST=127.0.0.1, PORT=${ports.tesseraHttp}, DICOM_PORT=${ports.tesseraDicom} (AE TESSERA), TESSERA_RUNNERS=process, TESSERA_LOG_LEVEL=warn, a fresh TESSERA_HOME per store; ${inherited()}`}`,
    `- Orthanc: ${absent.get('orthanc') ?? `SQLite index, StorageCompression false, SyncStorageArea false, DICOMweb plugin at /dicom-web/, TCP_NODELAY=1, ports ${ports.orthancHttp} and ${ports.orthancDicom}`}`,
    `- storescp: ${absent.get('storescp') ?? `${how.get('storescp') ?? 'storescp'}, TCP_NODELAY=1: receives and writes files, nothing else`}`,
    `- Sender: storescu (DCMTK ${versions.get('DCMTK')}), TCP_NODELAY=1, default PDU size; STOW-RS through a Node keep-alive client. Server CPU is read from /proc before and after each timed run.`,
    '',
    ...sections,
    ...(notes.length > 0 ? ['Notes:', ...notes.map((n) => `- ${n}`)] : []),
  ].join('\n');
}

/**
 * The command line of bench/dicom-ingest.ts, read and checked once: the systems,
 * the cases, their sizes and the ports.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_CACHE_DIR, type CtTemplate } from './dicom-gen.ts';

export const ALL_SYSTEMS = ['tessera', 'orthanc', 'storescp'] as const;
export const ALL_CASES = ['cstore', 'stow', 'qido', 'search', 'scale'] as const;
export type SystemId = (typeof ALL_SYSTEMS)[number];
export type CaseId = (typeof ALL_CASES)[number];
export const LABEL: Record<SystemId, string> = { tessera: 'Tessera', orthanc: 'Orthanc', storescp: 'storescp (floor)' };
/** Instances sent untimed into every fresh store before the timed ones: Node's JIT and SQLite's caches warm up on them. */
export const WARMUP = 50;
/** Time one query shape may take per system and repetition, once it has 3 samples (Orthanc lists instances at ~5 ms each). */
export const QUERY_BUDGET_MS = 10_000;

export interface Ports {
  tesseraHttp: number;
  tesseraDicom: number;
  orthancHttp: number;
  orthancDicom: number;
  storescp: number;
}

export interface DicomIngestOptions {
  /** The Tessera checkout whose server is measured. */
  repo: string;
  only: SystemId[];
  cases: CaseId[];
  count: number;
  reps: number;
  template: CtTemplate;
  associations: number;
  stowShape: { concurrency: number; instancesPerRequest: number };
  qidoCount: number;
  qidoReps: number;
  searchCount: number;
  searchReps: number;
  loadAssociations: number;
  orthancLoadBudgetMs: number;
  /** Where generated data sets are cached. */
  dataDir: string;
  ports: Ports;
  /** Parent of the work dir; the system's temp dir when undefined. */
  workdir: string | undefined;
  keep: boolean;
}

/** Reads the options from `argv` (process.argv.slice(2)); throws on an unknown option or a bad value. `home` is the default --repo. */
export function parseDicomIngestOptions(argv: string[], home: string): DicomIngestOptions {
  const { values: args } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      cases: { type: 'string', default: 'cstore,stow,qido' },
      count: { type: 'string', default: '1000' },
      reps: { type: 'string', default: '3' },
      template: { type: 'string', default: 'ct-small' },
      associations: { type: 'string', default: '1' },
      'stow-concurrency': { type: 'string', default: '2' },
      'stow-batch': { type: 'string', default: '10' },
      'qido-count': { type: 'string', default: '1000' },
      'qido-reps': { type: 'string', default: '20' },
      'search-count': { type: 'string', default: '100000' },
      'search-reps': { type: 'string', default: '20' },
      'load-associations': { type: 'string', default: '2' },
      'orthanc-load-budget': { type: 'string', default: '600' },
      workdir: { type: 'string' },
      'data-dir': { type: 'string', default: DEFAULT_CACHE_DIR },
      port: { type: 'string', default: '18766' },
      'dicom-port': { type: 'string', default: '14244' },
      repo: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });

  function int(name: keyof typeof args): number {
    const raw = args[name] as string;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got "${raw}"`);
    return n;
  }

  const repo = resolve(args.repo ?? home);
  const only = list('only', args.only, ALL_SYSTEMS);
  const cases = list('cases', args.cases, ALL_CASES);
  const count = int('count');
  const reps = int('reps');
  const template = args.template as CtTemplate;
  if (template !== 'ct-small' && template !== 'ct-512') throw new Error(`--template: ct-small or ct-512, got "${template}"`);
  return {
    repo,
    only,
    cases,
    count,
    reps,
    template,
    associations: int('associations'),
    stowShape: { concurrency: int('stow-concurrency'), instancesPerRequest: int('stow-batch') },
    qidoCount: int('qido-count'),
    qidoReps: int('qido-reps'),
    searchCount: int('search-count'),
    searchReps: int('search-reps'),
    loadAssociations: int('load-associations'),
    orthancLoadBudgetMs: int('orthanc-load-budget') * 1000,
    dataDir: args['data-dir']!,
    ports: { tesseraHttp: int('port'), tesseraDicom: int('dicom-port'), orthancHttp: 18142, orthancDicom: 14242, storescp: 14243 },
    workdir: args.workdir,
    keep: args.keep,
  };
}

function list<T extends string>(name: string, raw: string | undefined, all: readonly T[]): T[] {
  const picked = (raw ?? all.join(',')).split(',').map((s) => s.trim()) as T[];
  for (const p of picked) if (!all.includes(p)) throw new Error(`--${name}: unknown "${p}"; pick from ${all.join(', ')}`);
  return picked;
}

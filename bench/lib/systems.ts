import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstLine, timed, which } from './proc.ts';
import { stampGaps } from './stats.ts';
import { TesseraServer } from './tessera-server.ts';
import {
  TESSERA_EXTENSION,
  cwlTool,
  cwlWorkflow,
  lastTask,
  shellLoop,
  snakefile,
  taskCount,
  tesseraManifest,
  tesseraSpec,
  type Case,
  type CasePaths,
} from './workloads.ts';

export interface Measurement {
  ok: boolean;
  /** Wall time as this system's user sees it (for Tessera: trigger to done, seen by the client). */
  ms: number;
  /** Tessera only: the run's ended_at - started_at. */
  serverMs?: number;
  error?: string;
  /** Gaps between consecutive task starts, for `stamp` cases. */
  gaps?: number[];
}

export interface System {
  readonly id: 'shell' | 'tessera' | 'snakemake' | 'cwltool';
  readonly label: string;
  /** How it is run, for the report (flags, parallelism). */
  readonly how: string;
  /** Version text, or undefined when it is not installed. */
  detect(): Promise<string | undefined>;
  prepare(cases: readonly Case[]): Promise<void>;
  run(c: Case): Promise<Measurement>;
  close(): Promise<void>;
}

const RUN_TIMEOUT_MS = 10 * 60_000;

/** Folder of one system's files and outputs for one case. */
function caseDir(root: string, system: string, c: Case): string {
  return join(root, system, c.id);
}

export function casePaths(root: string, system: string, c: Case): CasePaths {
  const dir = caseDir(root, system, c);
  return { out: join(dir, 'out'), stamps: join(dir, 'stamps') };
}

/** Every run starts from no outputs and no stamps, so that no system can skip work a previous run did. */
function resetOutputs(paths: CasePaths): void {
  rmSync(paths.out, { recursive: true, force: true });
  rmSync(paths.stamps, { force: true });
  mkdirSync(paths.out, { recursive: true });
}

/** Checks what the run left behind, so that a fast but broken run never counts. */
function verify(c: Case, paths: CasePaths, expectedFiles: number | undefined): string | undefined {
  if (expectedFiles !== undefined) {
    const n = readdirSync(paths.out).length;
    if (n !== expectedFiles) return `expected ${expectedFiles} output files, found ${n}`;
  }
  if (c.task === 'stamp') {
    const n = existsSync(paths.stamps) ? readFileSync(paths.stamps, 'utf8').split('\n').filter(Boolean).length : 0;
    if (n !== taskCount(c)) return `expected ${taskCount(c)} start stamps, found ${n}`;
  }
  return undefined;
}

function gapsOf(c: Case, paths: CasePaths): { gaps?: number[] } {
  return c.task === 'stamp' ? { gaps: stampGaps(readFileSync(paths.stamps, 'utf8')) } : {};
}

async function runCommand(c: Case, paths: CasePaths, expectedFiles: number | undefined, command: string, args: string[], cwd: string): Promise<Measurement> {
  resetOutputs(paths);
  const r = await timed(command, args, { cwd, timeoutMs: RUN_TIMEOUT_MS });
  if (r.code !== 0) return { ok: false, ms: r.ms, error: `exit ${r.code}: ${r.stderrTail}` };
  const problem = verify(c, paths, expectedFiles);
  if (problem) return { ok: false, ms: r.ms, error: problem };
  return { ok: true, ms: r.ms, ...gapsOf(c, paths) };
}

// ------------------------------------------------------------------ shell loop

export class ShellLoop implements System {
  readonly id = 'shell';
  readonly label = 'shell loop (floor)';
  readonly how = '/bin/sh script starting the same commands one after another';
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  async detect(): Promise<string | undefined> {
    return existsSync('/bin/sh') ? '/bin/sh' : undefined;
  }

  async prepare(cases: readonly Case[]): Promise<void> {
    for (const c of cases) {
      mkdirSync(caseDir(this.#root, this.id, c), { recursive: true });
      writeFileSync(join(caseDir(this.#root, this.id, c), 'run.sh'), shellLoop(c, casePaths(this.#root, this.id, c)));
    }
  }

  run(c: Case): Promise<Measurement> {
    const dir = caseDir(this.#root, this.id, c);
    return runCommand(c, casePaths(this.#root, this.id, c), taskCount(c), '/bin/sh', [join(dir, 'run.sh')], dir);
  }

  async close(): Promise<void> {}
}

// ------------------------------------------------------------------ Snakemake

export class Snakemake implements System {
  readonly id = 'snakemake';
  readonly label = 'Snakemake';
  readonly how: string;
  readonly #root: string;
  readonly #cores: number;
  #python = '/usr/bin/python3';

  constructor(root: string, cores: number) {
    this.#root = root;
    this.#cores = cores;
    this.how = `--cores ${cores} --scheduler greedy --nolock --quiet, Python recursion limit raised to 100000`;
  }

  async detect(): Promise<string | undefined> {
    const exe = which('snakemake');
    if (!exe) return undefined;
    // Run with the interpreter snakemake was installed for, so that `import snakemake` finds it.
    const shebang = readFileSync(exe, 'utf8').split('\n', 1)[0] ?? '';
    if (shebang.startsWith('#!/') && !shebang.includes(' ')) this.#python = shebang.slice(2);
    return firstLine('snakemake', ['--version']);
  }

  async prepare(cases: readonly Case[]): Promise<void> {
    for (const c of cases) {
      mkdirSync(caseDir(this.#root, this.id, c), { recursive: true });
      writeFileSync(join(caseDir(this.#root, this.id, c), 'Snakefile'), snakefile(c, casePaths(this.#root, this.id, c)));
    }
  }

  run(c: Case): Promise<Measurement> {
    const dir = caseDir(this.#root, this.id, c);
    // Stock snakemake 7 dies with RecursionError on a 1,000-task chain: its DAG walk recurses once per level.
    const launcher = "import sys; sys.setrecursionlimit(100000); sys.argv[0] = 'snakemake'; from snakemake import main; main()";
    rmSync(join(dir, '.snakemake'), { recursive: true, force: true });
    const args = ['-c', launcher, '--snakefile', join(dir, 'Snakefile'), '--directory', dir, '--cores', String(this.#cores), '--scheduler', 'greedy', '--nolock', '--quiet', 'all'];
    return runCommand(c, casePaths(this.#root, this.id, c), taskCount(c), this.#python, args, dir);
  }

  async close(): Promise<void> {}
}

// ------------------------------------------------------------------ cwltool

export class Cwltool implements System {
  readonly id = 'cwltool';
  readonly label = 'cwltool';
  readonly how = '--quiet; chains sequential, fan with --parallel (scatter over the middle layer)';
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
  }

  async detect(): Promise<string | undefined> {
    if (!which('cwltool')) return undefined;
    return (await firstLine('cwltool', ['--version']))?.split(/\s+/).pop();
  }

  async prepare(cases: readonly Case[]): Promise<void> {
    for (const c of cases) {
      const dir = caseDir(this.#root, this.id, c);
      mkdirSync(dir, { recursive: true });
      // JSON is YAML, so cwltool reads these as they are.
      writeFileSync(join(dir, 'tool.cwl'), JSON.stringify(cwlTool(c, casePaths(this.#root, this.id, c)), null, 1));
      writeFileSync(join(dir, 'workflow.cwl'), JSON.stringify(cwlWorkflow(c, 'tool.cwl'), null, 1));
    }
  }

  run(c: Case): Promise<Measurement> {
    const dir = caseDir(this.#root, this.id, c);
    const tmp = join(dir, 'tmp');
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const args = [
      '--quiet',
      ...(c.shape === 'fan' ? ['--parallel'] : []),
      '--outdir', casePaths(this.#root, this.id, c).out,
      '--tmpdir-prefix', `${tmp}/t`,
      '--tmp-outdir-prefix', `${tmp}/o`,
      join(dir, 'workflow.cwl'),
    ];
    // Intermediate files stay in cwltool's own step folders; only the final output lands in --outdir.
    return runCommand(c, casePaths(this.#root, this.id, c), 1, 'cwltool', args, dir);
  }

  async close(): Promise<void> {}
}

// ------------------------------------------------------------------ Tessera

export interface TesseraOptions {
  repo: string;
  port: number;
  parallelism: number;
  nodeArgs?: string[];
  /** Extra environment of the server (e.g. DICOM_PORT, the heap ballast's). */
  env?: NodeJS.ProcessEnv;
}

export class Tessera implements System {
  readonly id = 'tessera';
  readonly label = 'Tessera';
  readonly how: string;
  readonly #root: string;
  readonly #o: TesseraOptions;
  #server: TesseraServer | undefined;

  constructor(root: string, options: TesseraOptions) {
    this.#root = root;
    this.#o = options;
    // Settings the server inherits from the benchmark's environment change what is measured (e.g. TESSERA_SANDBOX).
    const controlled = new Set(['DICOM_PORT', 'TESSERA_AUTH', 'TESSERA_HOME', 'TESSERA_EXTENSIONS_DIRS', 'TESSERA_PARALLELISM', 'TESSERA_RUNNERS', 'TESSERA_LOG_LEVEL']);
    const inherited = Object.entries(process.env).filter(([k]) => /^(TESSERA_|DICOM_)/.test(k) && !k.startsWith('TESSERA_BENCH_') && !controlled.has(k));
    const env = inherited.length > 0 ? `; inherited from the environment: ${inherited.map(([k, v]) => `${k}=${v}`).join(', ')}` : '';
    this.how = `process runner, TESSERA_PARALLELISM=${options.parallelism}, one server for all runs (node bin/tessera-server.mjs)${env}`;
  }

  async detect(): Promise<string | undefined> {
    return existsSync(join(this.#o.repo, 'bin/tessera-server.mjs')) ? `${JSON.parse(readFileSync(join(this.#o.repo, 'package.json'), 'utf8')).version as string}` : undefined;
  }

  async prepare(cases: readonly Case[]): Promise<void> {
    const ext = join(this.#root, this.id, 'extensions', TESSERA_EXTENSION);
    mkdirSync(join(ext, 'workflows'), { recursive: true });
    writeFileSync(join(ext, 'tessera-extension.json'), JSON.stringify(tesseraManifest(cases), null, 2));
    for (const c of cases) {
      mkdirSync(caseDir(this.#root, this.id, c), { recursive: true });
      writeFileSync(join(ext, 'workflows', `${c.id}.json`), JSON.stringify(tesseraSpec(c, casePaths(this.#root, this.id, c))));
    }
    this.#server = await TesseraServer.start({
      repo: this.#o.repo,
      home: join(this.#root, this.id, 'home'),
      extensionsDir: join(this.#root, this.id, 'extensions'),
      port: this.#o.port,
      parallelism: this.#o.parallelism,
      nodeArgs: this.#o.nodeArgs,
      env: this.#o.env,
      logFile: join(this.#root, this.id, 'server.log'),
    });
    const problems = await this.#server.workflowProblems();
    if (problems.length > 0) throw new Error(`Tessera did not load the benchmark workflows: ${problems.join('; ')}`);
  }

  async run(c: Case): Promise<Measurement> {
    if (!this.#server) throw new Error('Tessera.prepare() was not called');
    const paths = casePaths(this.#root, this.id, c);
    resetOutputs(paths);
    try {
      const r = await this.#server.run(c.id, join(paths.out, lastTask(c)), RUN_TIMEOUT_MS);
      if (r.state !== 'success') return { ok: false, ms: r.clientMs, serverMs: r.serverMs, error: `run ${r.state}: ${r.reason ?? ''}` };
      const problem = verify(c, paths, taskCount(c));
      if (problem) return { ok: false, ms: r.clientMs, serverMs: r.serverMs, error: problem };
      return { ok: true, ms: r.clientMs, serverMs: r.serverMs, ...gapsOf(c, paths) };
    } catch (err) {
      return { ok: false, ms: Number.NaN, error: (err as Error).message };
    }
  }

  /** The running server, between prepare() and close(). */
  get server(): TesseraServer | undefined {
    return this.#server;
  }

  /** Read before close(): the server's peak RSS over the whole benchmark. */
  peakRssMb(): number {
    return this.#server?.peakRssMb() ?? Number.NaN;
  }

  async close(): Promise<void> {
    await this.#server?.stop();
    this.#server = undefined;
  }
}

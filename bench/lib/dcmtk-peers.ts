/**
 * DCMTK's storescp and storescu: the C-STORE receiver that only writes files
 * (the practical limit of a C-STORE server on this machine) and the sender used
 * for every system alike.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { portAnswers, stopChild } from './orthanc.ts';
import { firstLine, timed, which } from './proc.ts';

/** Without TCP_NODELAY=1, DCMTK leaves Nagle's algorithm on and loopback C-STORE runs at ~10 instances/s. */
export const DCMTK_ENV = { ...process.env, TCP_NODELAY: '1' };

/** DCMTK's version (from `storescu --version`), or undefined when it is not installed. */
export async function dcmtkVersion(): Promise<string | undefined> {
  if (!which('storescu') || !which('storescp')) return undefined;
  const line = await firstLine('storescu', ['--version']);
  return /v(\d+\.\d+\.\d+)/.exec(line ?? '')?.[1] ?? line;
}

export interface StorescpOptions {
  /** Received files go here (created if missing). */
  dir: string;
  port: number;
  aet?: string;
  /**
   * One process per association (`--fork`) instead of one process for all.
   * Default false: for one association it only adds a fork (see bench/README.md).
   */
  fork?: boolean;
  /** `+B`: write the data set as received, without decoding and re-encoding it. Default true. */
  bitPreserving?: boolean;
}

export interface StorescpHandle {
  port: number;
  aet: string;
  /** The command line, for the report. */
  command: string;
  pid: number | undefined;
  /** Files received so far. */
  countFiles(): number;
  stop(): Promise<void>;
}

/** Starts storescp and waits until its port accepts connections. */
export async function startStorescp(o: StorescpOptions): Promise<StorescpHandle> {
  if (await portAnswers(o.port)) throw new Error(`port ${o.port} is already in use`);
  mkdirSync(o.dir, { recursive: true });
  const aet = o.aet ?? 'STORESCP';
  const args = [...(o.fork ? ['--fork'] : []), ...(o.bitPreserving === false ? [] : ['+B']), '-aet', aet, '-od', o.dir, String(o.port)];
  const logFile = `${o.dir.replace(/\/$/, '')}.storescp.log`;
  const log = openSync(logFile, 'a');
  // Its own process group: with --fork, stopping it must also end the children it forked.
  const child = spawn('storescp', args, { env: DCMTK_ENV, stdio: ['ignore', log, log], detached: true });
  closeSync(log);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + 10_000;
  while (!(await portAnswers(o.port))) {
    if (exited || Date.now() > deadline) throw new Error(`storescp did not start:\n${tail(logFile)}`);
    await sleep(20);
  }
  return {
    port: o.port,
    aet,
    command: `storescp ${args.join(' ')}`,
    pid: child.pid,
    countFiles: () => readdirSync(o.dir).length,
    stop: () => stopGroup(child, () => exited),
  };
}

async function stopGroup(child: ChildProcess, hasExited: () => boolean): Promise<void> {
  if (hasExited()) return;
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {
    // already gone
  }
  await stopChild(child, hasExited);
}

export interface StoreScuOptions {
  host: string;
  port: number;
  /** Called AE title. */
  aet: string;
  /** Instances to send: a list of files (or folders of files), or one folder, sent recursively. */
  files?: readonly string[];
  dir?: string;
  /** Parallel storescu processes, one association each; the files are split between them. Default 1. */
  associations?: number;
  /** Default 30 min. */
  timeoutMs?: number;
}

export interface StoreScuResult {
  instances: number;
  ms: number;
  perSecond: number;
  /** The command line of one storescu, for the report. */
  command: string;
}

/** Longest command line we hand to one storescu; beyond it, folders are passed instead of files. */
const MAX_ARGS_CHARS = 100_000;

/**
 * Sends instances with storescu (TCP_NODELAY=1) and measures the wall time,
 * from the first process start to the last exit. Throws when any store fails:
 * storescu halts on the first unsuccessful store and exits non-zero, and any
 * error line in its output fails the run as well.
 */
export async function storeScu(o: StoreScuOptions): Promise<StoreScuResult> {
  const associations = o.associations ?? 1;
  const groups = split(o, associations);
  const instances = groups.reduce((n, g) => n + g.count, 0);
  const argsOf = (paths: string[]): string[] => ['-aec', o.aet, '-aet', 'BENCHSCU', '+sd', '+r', '+sp', '*.dcm', o.host, String(o.port), ...paths];
  const t0 = performance.now();
  const runs = await Promise.all(groups.map((g) => timed('storescu', argsOf(g.paths), { env: DCMTK_ENV, timeoutMs: o.timeoutMs ?? 30 * 60_000 })));
  const ms = performance.now() - t0;
  for (const r of runs) {
    const errors = `${r.stdout}\n${r.stderrTail}`.split('\n').filter((l) => /^E:|Store Failed|failed/i.test(l));
    if (r.code !== 0 || errors.length > 0) {
      // The error lines first: a report that shows only the first line of a failure must still say what failed.
      throw new Error(`storescu to ${o.aet}@${o.host}:${o.port} failed (exit ${r.code}${statusOf(r.code)}): ${errors.join(' ') || 'no error line'}\n${r.stderrTail || r.stdout.slice(-2000)}`);
    }
  }
  const shown = argsOf(groups[0]!.paths.length > 3 ? [...groups[0]!.paths.slice(0, 2), '…'] : groups[0]!.paths);
  return { instances, ms, perSecond: instances / (ms / 1000), command: `TCP_NODELAY=1 storescu ${shown.join(' ')}` };
}

/**
 * storescu logs a refused store only with -v, but exits with the high byte of
 * the refusal's DIMSE status (a store refused with 0xA700, Out of Resources,
 * exits 167): say so, since the output has nothing else to tell.
 */
function statusOf(code: number | null): string {
  return code !== null && code >= 0xa0 ? `: a store was refused, DIMSE status 0x${code.toString(16).toUpperCase()}xx; the server's log says why` : '';
}

/** Splits the input into one group per association, as files when the list is short and as folders otherwise. */
function split(o: StoreScuOptions, associations: number): { paths: string[]; count: number }[] {
  if (o.files) {
    const groups = chunk(o.files, associations).map((f) => ({ paths: [...f], count: f.reduce((n, p) => n + countFiles(p), 0) }));
    if (groups.every((g) => g.paths.reduce((n, p) => n + p.length + 1, 0) <= MAX_ARGS_CHARS)) return groups;
    throw new Error(`storeScu: ${o.files.length} paths make too long a command line; pass their folder as \`dir\``);
  }
  if (!o.dir) throw new Error('storeScu: pass files or dir');
  if (associations === 1) return [{ paths: [o.dir], count: countFiles(o.dir) }];
  const folders = readdirSync(o.dir)
    .sort()
    .map((e) => join(o.dir!, e))
    .filter((e) => statSync(e).isDirectory());
  // Folders of files (as dicom-gen writes them) are shared out whole; too few of them, and the files are.
  const units =
    folders.length >= associations
      ? folders
      : readdirSync(o.dir, { recursive: true, withFileTypes: true })
          .filter((e) => e.isFile() && e.name.endsWith('.dcm'))
          .map((e) => join(e.parentPath, e.name))
          .sort();
  if (units.length < associations) throw new Error(`storeScu: ${o.dir} holds fewer than ${associations} instances to share out`);
  return split({ ...o, dir: undefined, files: units }, associations);
}

function chunk<T>(list: readonly T[], parts: number): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (let k = 0; k < parts; k++) {
    const n = Math.floor(list.length / parts) + (k < list.length % parts ? 1 : 0);
    out.push(list.slice(at, at + n));
    at += n;
  }
  return out.filter((g) => g.length > 0);
}

/** Regular files under a path (the path itself if it is a file), skipping dicom-gen's manifest. */
function countFiles(path: string): number {
  if (statSync(path).isFile()) return 1;
  return readdirSync(path, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.dcm')).length;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-10).join('\n');
  } catch {
    return '(no log)';
  }
}

import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';

/** Absolute path of an executable on PATH, or undefined. */
export function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

export interface TimedResult {
  ms: number;
  code: number | null;
  stdout: string;
  /** The end of stderr: enough to tell why a peer failed without flooding the report. */
  stderrTail: string;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/**
 * Runs a command to its end and measures its wall time from just before spawn to
 * its exit, which is what a user waiting on the command sees.
 */
export function timed(command: string, args: readonly string[], options: RunOptions = {}): Promise<TimedResult> {
  return new Promise((resolve) => {
    const start = performance.now();
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 100_000) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-4000);
    });
    const timer = options.timeoutMs
      ? setTimeout(() => {
          stderr += `\nbench: killed after ${options.timeoutMs} ms`;
          child.kill('SIGKILL');
        }, options.timeoutMs)
      : undefined;
    const finish = (code: number | null): void => {
      if (timer) clearTimeout(timer);
      resolve({ ms: performance.now() - start, code, stdout, stderrTail: stderr.trim().split('\n').slice(-8).join('\n') });
    };
    child.once('error', (err) => {
      stderr += `\n${err.message}`;
      finish(null);
    });
    child.once('close', (code) => finish(code));
  });
}

/** First line of a command's output (for versions), or undefined if it cannot run. */
export async function firstLine(command: string, args: readonly string[]): Promise<string | undefined> {
  const r = await timed(command, args, { timeoutMs: 30_000 });
  if (r.code !== 0) return undefined;
  return (r.stdout.trim() || r.stderrTail.trim()).split('\n')[0]?.trim();
}

/** Peak resident memory of a process so far (VmHWM), in MB; NaN when unknown. */
export function peakRssMb(pid: number | undefined): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** Resident memory of a process now (VmRSS), in MB; NaN when unknown. */
export function rssMb(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time (user + system, all threads, and children it reaped) of a process so far, in ms; NaN when unknown. */
export function cpuMs(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    return ((f[11]! + f[12]! + f[13]! + f[14]!) * 1000) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

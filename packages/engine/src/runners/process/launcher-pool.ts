import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLauncher, LAUNCHER_NAME } from '../../../native/build.mjs';
import { killGroup } from './proc-table.ts';

/**
 * Which program starts local processes (ADR 17): `native` is tessera-launcher (C,
 * posix_spawn: a start costs what a shell pays, whatever the server's memory), `node` the
 * plain-JavaScript launcher (a fork of a small Node process), `auto` native when it can
 * be built, else node with a warning.
 */
export type LauncherChoice = 'auto' | 'native' | 'node';

const NODE_LAUNCHER = join(dirname(fileURLToPath(import.meta.url)), 'process-launcher.mjs');

/** What a launcher is to start. */
export interface LaunchRequest {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
  /** Appended to by the process's stdout and stderr (created if missing). */
  log: string;
  /** Where the launcher records the exit status when the process ends (read after a restart). */
  status?: string;
}

export interface LaunchExit {
  code: number | null;
  signal: string | null;
  /** Set when the launcher died before the process ended: the process group was killed, and this says why. */
  lost?: string;
}

export interface Launched {
  pid: number;
  exited: Promise<LaunchExit>;
}

/** A start armed to follow another process (ADR 18). */
export interface ArmedLaunch {
  /**
   * Settles once the launcher has decided: the started process when the one it follows
   * exited with code 0, undefined when it will not start (that process ended otherwise or
   * had ended already, it was disarmed, the start failed, or the launcher is gone).
   */
  started: Promise<Launched | undefined>;
  /** Asks the launcher not to start it; `started` settles undefined unless it has started already. */
  disarm(): void;
}

/** A start that did not happen; `stage` says what was wrong: the log file, the working directory, the program, or the launcher. */
export class LaunchError extends Error {
  constructor(
    message: string,
    readonly stage: 'log' | 'cwd' | 'exec' | 'launcher',
    readonly code?: string,
  ) {
    super(message);
    this.name = 'LaunchError';
  }
}

interface Slot {
  child: ChildProcess;
  /** Requests sent and processes running that have not ended. */
  pending: Set<number>;
}

interface PendingLaunch {
  slot: Slot;
  started: (pid: number) => void;
  failed: (err: LaunchError) => void;
  /** Set for an armed start: the launcher will not start it. */
  dropped?: () => void;
  exited?: (e: LaunchExit) => void;
  pid?: number;
}

interface Resolved {
  kind: 'native' | 'node';
  /** The launcher's program: tessera-launcher, or node running process-launcher.mjs. */
  command: string[];
  /** Why `auto` fell back to the Node launcher. */
  fallback?: string;
}

let nativeMemo: ReturnType<typeof ensureLauncher> | undefined;

/** Resolves a choice to a launcher program; throws when `native` is asked for and cannot be had. */
export function resolveLauncher(choice: LauncherChoice): Resolved {
  const node: Resolved = { kind: 'node', command: [process.execPath, NODE_LAUNCHER] };
  if (choice === 'node') return node;
  nativeMemo ??= ensureLauncher();
  const native = nativeMemo;
  if ('path' in native) return { kind: 'native', command: [native.path] };
  if (choice === 'native') throw new Error(`TESSERA_LAUNCHER=native, but the native task launcher is not available: ${native.reason}`);
  return { ...node, fallback: `the native task launcher is not available (${native.reason}); local tasks start through the Node launcher, whose start cost grows with the machine's fork cost` };
}

/** Whether a process's command line (arguments joined by spaces) is one of the launchers'. */
export function isLauncherCommand(commandLine: string): boolean {
  const argv0 = commandLine.split(' ')[0] ?? '';
  return argv0.endsWith(`/${LAUNCHER_NAME}`) || commandLine.includes(NODE_LAUNCHER);
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(osConstants.signals).map(([name, n]) => [n, name]));

function encode(id: number, r: LaunchRequest, after?: number): string {
  const head = after === undefined ? ['spawn', String(id)] : ['arm', String(id), String(after)];
  const fields = [...head, r.cwd, r.log, r.status ?? '', String(r.argv.length), ...r.argv, String(Object.keys(r.env).length)];
  for (const [k, v] of Object.entries(r.env)) fields.push(`${k}=${v}`);
  for (const f of fields) {
    // The protocol's separator; no command line or environment of Linux can hold it either.
    if (f.includes('\0')) throw new LaunchError(`cannot start ${JSON.stringify(r.argv[0])}: a NUL byte in ${JSON.stringify(f.slice(0, 60))}`, 'exec', 'EINVAL');
  }
  return `${fields.join('\0')}\0`;
}

/**
 * Launcher processes that start local processes on request (tasks of the process runner,
 * application processes). Each process is the leader of a new session, with its output
 * appended to its log file; its exit status is reported and, if asked, written to a file
 * by the launcher, which outlives a dead server until its processes have ended.
 * A start goes to the launcher with the fewest processes in flight; launchers start on
 * first use and keep Node's event loop alive only while they have work.
 */
export class LauncherPool {
  readonly kind: 'native' | 'node';
  /** Set when `auto` fell back to the Node launcher: why (for the server's start notes). */
  readonly fallback: string | undefined;
  readonly #command: string[];
  readonly #slots: (Slot | undefined)[];
  readonly #pending = new Map<number, PendingLaunch>();
  #nextId = 0;
  #closed = false;

  constructor(options: { size: number; launcher?: LauncherChoice }) {
    const resolved = resolveLauncher(options.launcher ?? 'auto');
    this.kind = resolved.kind;
    this.fallback = resolved.fallback;
    this.#command = resolved.command;
    this.#slots = new Array<Slot | undefined>(Math.max(1, options.size)).fill(undefined);
  }

  /** Starts a process; resolves once it runs (its pid), rejects with a LaunchError when it could not start. */
  launch(request: LaunchRequest): Promise<Launched> {
    let line: string;
    try {
      line = encode(++this.#nextId, request);
    } catch (err) {
      return Promise.reject(err);
    }
    const id = this.#nextId;
    return new Promise<Launched>((resolve, reject) => {
      const slot = this.#pick();
      let resolveExit!: (e: LaunchExit) => void;
      const exited = new Promise<LaunchExit>((r) => (resolveExit = r));
      const p: PendingLaunch = {
        slot,
        started: (pid) => {
          p.exited = resolveExit;
          resolve({ pid, exited });
        },
        failed: (err) => {
          this.#forget(id);
          reject(err);
        },
      };
      this.#send(id, p, line);
    });
  }

  /**
   * Arms a start to happen the moment the process `afterPid` (started by this pool, and
   * running) exits with code 0: its launcher starts it before it even reports that exit,
   * so a chain's next task does not wait for a round trip through the server (ADR 18).
   * Undefined when `afterPid` is not a running process of this pool.
   */
  arm(request: LaunchRequest, afterPid: number): ArmedLaunch | undefined {
    let afterId: number | undefined;
    for (const [id, p] of this.#pending) {
      if (p.pid === afterPid && p.exited !== undefined) afterId = id;
    }
    if (afterId === undefined) return undefined;
    const slot = this.#pending.get(afterId)!.slot;
    if (slot.child.exitCode !== null || slot.child.signalCode !== null || this.#closed) return undefined;
    let line: string;
    try {
      line = encode(++this.#nextId, request, afterId);
    } catch {
      return undefined; // the start proper reports it
    }
    const id = this.#nextId;
    let settle!: (l: Launched | undefined) => void;
    const started = new Promise<Launched | undefined>((r) => (settle = r));
    let resolveExit!: (e: LaunchExit) => void;
    const exited = new Promise<LaunchExit>((r) => (resolveExit = r));
    const p: PendingLaunch = {
      slot,
      started: (pid) => {
        p.exited = resolveExit;
        settle({ pid, exited });
      },
      // A start that failed is made again the usual way, which reports why.
      failed: () => {
        this.#forget(id);
        settle(undefined);
      },
      dropped: () => {
        this.#forget(id);
        settle(undefined);
      },
    };
    this.#send(id, p, line);
    return {
      started,
      disarm: () => {
        if (this.#pending.get(id) === p && p.pid === undefined && slot.child.exitCode === null) slot.child.stdin!.write(`disarm\0${id}\0`);
      },
    };
  }

  /**
   * Ends the launchers' input. Running processes keep running: a launcher with processes
   * stays until they end, to record their exit status; an idle one is waited for.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all(
      this.#slots.map(async (s, i) => {
        this.#slots[i] = undefined;
        if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return;
        s.child.stdin!.end();
        if (s.pending.size > 0) return;
        s.child.ref();
        await new Promise((r) => s.child.once('exit', r));
      }),
    );
  }

  #pick(): Slot {
    if (this.#closed) throw new LaunchError('the process launcher pool is closed', 'launcher');
    let best = 0;
    for (let i = 0; i < this.#slots.length; i++) {
      const s = this.#slots[i];
      if (!s) {
        best = i;
        break;
      }
      if (s.pending.size < this.#slots[best]!.pending.size) best = i;
    }
    return (this.#slots[best] ??= this.#startSlot(best));
  }

  #startSlot(index: number): Slot {
    const [program, ...args] = this.#command;
    const child = spawn(program!, args, { stdio: ['pipe', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '' } });
    const slot: Slot = { child, pending: new Set() };
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        this.#onEvent(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    });
    child.once('exit', (code, signal) => this.#onSlotExit(index, slot, code, signal));
    child.stdin!.on('error', () => undefined); // a dead launcher is handled by its exit event
    return slot;
  }

  /** Registers a request as in flight on its launcher (which keeps Node's event loop alive), then sends it. */
  #send(id: number, p: PendingLaunch, line: string): void {
    this.#pending.set(id, p);
    p.slot.pending.add(id);
    hold(p.slot);
    p.slot.child.stdin!.write(line);
  }

  #forget(id: number): void {
    const p = this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id);
    p.slot.pending.delete(id);
    hold(p.slot);
  }

  #onEvent(line: string): void {
    const [ev, idText, a, b, ...rest] = line.split(' ');
    const id = Number(idText);
    const p = this.#pending.get(id);
    if (!p) return;
    if (ev === 'started') {
      p.pid = Number(a);
      p.started(p.pid);
    } else if (ev === 'error') {
      const stage = a === 'log' || a === 'cwd' ? a : 'exec';
      p.failed(new LaunchError(rest.join(' '), stage, b));
    } else if (ev === 'dropped') {
      p.dropped?.();
    } else if (ev === 'exit') {
      this.#forget(id);
      p.exited?.({ code: a === '-' ? null : Number(a), signal: b === '-' || b === undefined ? null : (SIGNAL_NAMES.get(Number(b)) ?? `signal ${b}`) });
    }
  }

  /** A launcher died while the server runs: its processes can no longer be watched, so their groups are killed. */
  #onSlotExit(index: number, slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#slots[index] === slot) this.#slots[index] = undefined;
    // Closed: the server is going down; what still runs is found again at its next start.
    if (this.#closed) return;
    const reason = `the process launcher exited unexpectedly (${signal ?? `code ${code}`}); the process was stopped`;
    for (const id of [...slot.pending]) {
      const p = this.#pending.get(id)!;
      this.#forget(id);
      if (p.pid === undefined) {
        if (p.dropped) p.dropped();
        else p.failed(new LaunchError(reason, 'launcher'));
      } else {
        killGroup(p.pid, 'SIGKILL');
        p.exited?.({ code: null, signal: null, lost: reason });
      }
    }
  }
}

/** A launcher keeps Node's event loop alive only while it has work: a script using the engine exits when done. */
function hold(s: Slot): void {
  const on = s.pending.size > 0;
  for (const h of [s.child, s.child.stdin, s.child.stdout] as ({ ref?: () => void; unref?: () => void } | null)[]) {
    if (on) h?.ref?.();
    else h?.unref?.();
  }
}

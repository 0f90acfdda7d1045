import { readdirSync, readFileSync } from 'node:fs';

/** Start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or undefined if it is gone. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Processes whose environment has `name=value…` for the given variable, with that value. */
export function findProcessesByEnv(name: string): { pid: number; value: string }[] {
  const found: { pid: number; value: string }[] = [];
  const prefix = `${name}=`;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let environ: string;
    try {
      environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue; // gone, or not ours to read
    }
    for (const kv of environ.split('\0')) {
      if (kv.startsWith(prefix)) {
        found.push({ pid: Number(entry), value: kv.slice(prefix.length) });
        break;
      }
    }
  }
  return found;
}

/**
 * Sends a signal to the process group led by `pid` (a task, an application and what
 * they started), ignoring "no such process": the group may be gone already.
 */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Fields of /proc/<pid>/stat after the command name: [0] state, [2] process group. */
function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** Whether a process exists and is not a zombie (a zombie has exited; only its parent's wait is missing). */
export function isAlive(pid: number): boolean {
  const f = statFields(pid);
  return f !== undefined && f[0] !== 'Z' && f[0] !== 'X';
}

/** Whether a process has exited and waits for its parent to collect its status. */
export function isZombie(pid: number): boolean {
  return statFields(pid)?.[0] === 'Z';
}

/** The parent of a live process, or undefined if it is gone. */
export function parentOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f === undefined || f[0] === 'Z' || f[0] === 'X' ? undefined : Number(f[1]);
}

/** The process group of a live process, or undefined if it is gone. */
export function groupOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f === undefined || f[0] === 'Z' || f[0] === 'X' ? undefined : Number(f[2]);
}

/** The command line of a process (arguments joined by spaces), or '' if it is gone or not ours to read. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').join(' ').trim();
  } catch {
    return '';
  }
}

/** Live processes of a process group. */
export function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(entry);
    if (f && f[2] === String(pgid) && f[0] !== 'Z' && f[0] !== 'X') members.push(Number(entry));
  }
  return members;
}

/** Resolves true once `check` returns true, polling every 10 ms; false after `timeoutMs`. */
export async function pollUntil(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

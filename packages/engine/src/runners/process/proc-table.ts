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

/** Sends a signal to a process group, ignoring "no such process". */
export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

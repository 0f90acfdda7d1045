import { readFileSync } from 'node:fs';
import { outcomeFromExit } from '../exit-status.ts';
import type { TaskOutcome } from '../runner.ts';
import { isLauncherCommand } from './launcher-pool.ts';
import { commandLine, findProcessesByEnv, groupOf, isAlive, parentOf } from './proc-table.ts';

/**
 * Where the launcher records how a try's main process ended: next to the try's log,
 * `<task>.<attempt>.<try>.exit` (JSON `{"code":0,"signal":null}`), written atomically.
 */
export function statusFileOf(logFile: string): string {
  return `${logFile.replace(/\.log$/, '')}.exit`;
}

/** The exit status a launcher recorded for a try, or undefined if there is none (or it is unreadable). */
export function readExitStatus(file: string): { code: number | null; signal: string | null } | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const v = JSON.parse(text) as { code?: unknown; signal?: unknown };
    const code = typeof v.code === 'number' ? v.code : null;
    const signal = typeof v.signal === 'string' ? v.signal : null;
    return code === null && signal === null ? undefined : { code, signal };
  } catch {
    return undefined;
  }
}

/** What is left of a try after a restart, found by the key in its processes' environment. */
export interface TryRemains {
  /** Live processes that carry the try's key. */
  pids: number[];
  /**
   * The try's main process (leader of its own process group) when a launcher still
   * watches it, so that its end will be recorded: the try can be re-attached.
   */
  watched: number | undefined;
}

export function findTryRemains(keyVar: string, key: string): TryRemains {
  const pids = findProcessesByEnv(keyVar).filter((p) => p.value === key && isAlive(p.pid)).map((p) => p.pid);
  const main = pids.find((pid) => groupOf(pid) === pid);
  const parent = main === undefined ? undefined : parentOf(main);
  const watched = parent !== undefined && isLauncherCommand(commandLine(parent)) ? main : undefined;
  return { pids, watched };
}

/**
 * Follows a re-attached try to its end: its launcher (from before the restart) records
 * the exit status when the main process ends. Polls the status file and the process.
 */
export function watchReattached(pid: number, statusFile: string, intervalMs = 200): Promise<TaskOutcome> {
  return new Promise((resolve) => {
    let goneSince: number | undefined;
    const tick = (): void => {
      const status = readExitStatus(statusFile);
      if (status) return resolve(outcomeFromExit(status.code, status.signal));
      if (!isAlive(pid)) {
        goneSince ??= Date.now();
        // The launcher writes the status right after reaping the process; give it a moment.
        if (Date.now() - goneSince > 2000) {
          return resolve({
            state: 'failed',
            reason: 'the task ended while the server watched it again after a restart, but its exit status was not recorded (its launcher was stopped too)',
          });
        }
      }
      setTimeout(tick, goneSince === undefined ? intervalMs : 20);
    };
    tick();
  });
}

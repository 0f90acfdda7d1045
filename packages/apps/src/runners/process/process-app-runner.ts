import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname } from 'node:path';

/** A started app process. */
export interface AppProcess {
  pid: number;
  /** Settles when the process has exited, however. */
  exited: Promise<{ code: number | null; signal: string | null }>;
}

/** A free TCP port on 127.0.0.1 (taken by nobody at the moment of asking). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * Runs application processes: each in its own process group (so that stop reaches
 * what it started), with stdout and stderr appended to its log file.
 */
export class ProcessAppRunner {
  readonly name = 'process';

  start(o: { command: string[]; cwd: string; env: Record<string, string>; logFile: string }): Promise<AppProcess> {
    mkdirSync(dirname(o.logFile), { recursive: true });
    const log = openSync(o.logFile, 'a');
    return new Promise((resolve, reject) => {
      const child = spawn(o.command[0]!, o.command.slice(1), {
        cwd: o.cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', LANG: process.env.LANG ?? 'C.UTF-8', ...o.env },
        detached: true,
        stdio: ['ignore', log, log],
      });
      closeSync(log);
      const exited = new Promise<{ code: number | null; signal: string | null }>((done) => child.once('exit', (code, signal) => done({ code, signal })));
      child.once('error', (err) => reject(new Error(`could not start ${o.command[0]}: ${err.message}`)));
      child.once('spawn', () => resolve({ pid: child.pid!, exited }));
    });
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(p: AppProcess, graceMs = 5000): Promise<void> {
    const signal = (s: NodeJS.Signals): void => {
      try {
        process.kill(-p.pid, s);
      } catch {
        // gone already
      }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => signal('SIGKILL'), graceMs);
    await p.exited;
    clearTimeout(timer);
    signal('SIGKILL'); // whatever the leader left behind in its group
  }
}

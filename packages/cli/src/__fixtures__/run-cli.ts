import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../server/src/__fixtures__/server-process.ts';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `tessera` bin as a user would, against `url`, in `cwd`; `input` is written to its stdin (a pipe, not a terminal), which then ends. */
export function runCli(o: { url: string; cwd?: string; args: string[]; env?: Record<string, string>; input?: string }): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/tessera.mjs'), ...o.args], {
      cwd: o.cwd ?? REPO_ROOT,
      env: { ...process.env, TESSERA_URL: o.url, ...o.env },
    });
    if (o.input !== undefined) child.stdin.end(o.input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

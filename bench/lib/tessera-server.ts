import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { peakRssMb } from './proc.ts';

export interface TesseraServerOptions {
  repo: string;
  home: string;
  extensionsDir: string;
  port: number;
  parallelism: number;
  /** Extra flags for node, e.g. --cpu-prof. */
  nodeArgs?: string[];
  logFile: string;
  /** Extra environment (e.g. DICOM_PORT); it cannot replace the variables above, which the caller controls through the options. */
  env?: NodeJS.ProcessEnv;
}

export interface TesseraRunResult {
  state: string;
  reason: string | null;
  /** The run's ended_at - started_at, as the server recorded it (ms resolution). */
  serverMs: number;
  /** From sending POST /api/jobs to the first answer that shows the run ended. */
  clientMs: number;
  /** started_at - created_at: time from the trigger's DB insert to the run's start. */
  startDelayMs: number;
}

interface RunJson {
  id: string;
  state: string;
  reason: string | null;
  created_at: string | null;
  started_at: string | null;
  ended_at: string | null;
}

const TERMINAL = new Set(['success', 'failed', 'canceled']);

/** A real Tessera server (`node bin/tessera-server.mjs`) in its own process, driven over HTTP. */
export class TesseraServer {
  readonly url: string;
  readonly #child: ChildProcess;
  readonly #logFile: string;
  #exited = false;

  private constructor(url: string, child: ChildProcess, logFile: string) {
    this.url = url;
    this.#child = child;
    this.#logFile = logFile;
    child.once('exit', () => {
      this.#exited = true;
    });
  }

  static async start(o: TesseraServerOptions): Promise<TesseraServer> {
    const url = `http://127.0.0.1:${o.port}`;
    // Another server on the port would answer our requests and make every figure wrong.
    if (await fetch(`${url}/api/health`).then(() => true, () => false)) {
      throw new Error(`port ${o.port} is already in use; pass --port to pick another`);
    }
    const log = openSync(o.logFile, 'a');
    const child = spawn(process.execPath, [...(o.nodeArgs ?? []), join(o.repo, 'bin/tessera-server.mjs')], {
      cwd: o.repo,
      env: {
        ...process.env,
        // The workflow benchmarks receive no DICOM; the DICOM benchmark passes its port in `env`.
        DICOM_PORT: 'off',
        // These benchmarks measure the engine and the store; access control's own cost is bench/access-control.ts.
        TESSERA_AUTH: 'off',
        // The peers (a shell, Snakemake, cwltool) run their tasks unsandboxed, and the bench's tasks
        // write outside their run's folder; the sandbox's own cost is bench/sandbox-spawn.ts.
        TESSERA_SANDBOX: 'off',
        ...o.env,
        PORT: String(o.port),
        HOST: '127.0.0.1',
        TESSERA_HOME: o.home,
        TESSERA_EXTENSIONS_DIRS: o.extensionsDir,
        TESSERA_PARALLELISM: String(o.parallelism),
        TESSERA_RUNNERS: 'process',
        TESSERA_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    const server = new TesseraServer(url, child, o.logFile);
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (server.#exited) throw new Error(`the Tessera server exited while starting:\n${server.logTail()}`);
      const health = await fetch(`${url}/api/health`)
        .then((r) => (r.ok ? (r.json() as Promise<{ home?: string }>) : undefined))
        .catch(() => undefined);
      if (health?.home === o.home) return server;
      if (Date.now() > deadline) {
        await server.stop();
        throw new Error(`the Tessera server did not answer /api/health within 60 s:\n${server.logTail()}`);
      }
      await sleep(100);
    }
  }

  /** Process id of the server, to read its CPU time from /proc. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  /** Peak resident memory of the server process so far (VmHWM), in MB: fork() costs grow with it. */
  peakRssMb(): number {
    return peakRssMb(this.#child.pid);
  }

  logTail(): string {
    try {
      return readFileSync(this.#logFile, 'utf8').trim().split('\n').slice(-15).join('\n');
    } catch {
      return '(no server log)';
    }
  }

  async workflowProblems(): Promise<string[]> {
    const body = (await (await fetch(`${this.url}/api/workflows`)).json()) as { problems: { dir: string; message: string }[] };
    return body.problems.map((p) => `${p.dir}: ${p.message}`);
  }

  /**
   * Triggers a workflow and waits for its run to end. The client polls the API
   * only once `lastOutput` (the final task's file) exists, or every 500 ms as a
   * safety net: polling throughout would take CPU from the very server being
   * measured, on a 2-core machine.
   */
  async run(workflow: string, lastOutput: string, timeoutMs: number): Promise<TesseraRunResult> {
    const start = performance.now();
    const res = await fetch(`${this.url}/api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ workflow }),
    });
    const job = (await res.json()) as { id?: string; runs?: RunJson[]; error?: { message: string } };
    if (res.status !== 201 || !job.id) throw new Error(`POST /api/jobs answered ${res.status}: ${job.error?.message ?? JSON.stringify(job)}`);
    let lastPoll = performance.now();
    for (;;) {
      const now = performance.now();
      if (now - start > timeoutMs) throw new Error(`run of ${workflow} did not end within ${timeoutMs} ms`);
      if (this.#exited) throw new Error(`the Tessera server exited during the run:\n${this.logTail()}`);
      const near = existsSync(lastOutput);
      if (near || now - lastPoll > 500) {
        lastPoll = now;
        const body = (await (await fetch(`${this.url}/api/jobs/${job.id}`)).json()) as { runs: RunJson[] };
        const run = body.runs[0];
        if (run && TERMINAL.has(run.state)) {
          const clientMs = performance.now() - start;
          const t = (iso: string | null): number => (iso ? Date.parse(iso) : Number.NaN);
          return {
            state: run.state,
            reason: run.reason,
            clientMs,
            serverMs: t(run.ended_at) - t(run.started_at),
            startDelayMs: t(run.started_at) - t(run.created_at),
          };
        }
      }
      await sleep(near ? 1 : 2);
    }
  }

  /** SIGTERM (the server's graceful stop, which also lets --cpu-prof write its profile), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    const exited = new Promise<void>((resolve) => this.#child.once('exit', () => resolve()));
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

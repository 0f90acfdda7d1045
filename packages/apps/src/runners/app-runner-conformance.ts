import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AppSpecT } from '@tessera/extension-packages';
import type { AppLaunch, AppRunner } from './app-runner.ts';
import { freePort } from './free-port.ts';

/** What a runner's test file gives the conformance suite. */
export interface AppRunnerConformanceOptions {
  /** Creates a fresh runner whose stop grace is `graceMs` (called again to play a restarted server). */
  create: () => Promise<AppRunner>;
  /** How this runner runs a POSIX shell script as an app: the `container` or `process` part of an app spec. */
  appSpec: (script: string) => Pick<AppSpecT, 'container' | 'process'>;
  /** Counts what the runner still runs for an instance (processes, containers), to prove nothing is left behind. */
  leftovers: (appId: string) => Promise<number>;
  /** The stop grace time the runners of `create` have, in ms. */
  graceMs: number;
  /** Whether the app runs in its extension folder (a process does; a container has its image's working directory). */
  runsInExtensionDir: boolean;
  /** Generous per-test timeout in ms (containers start slower than processes). */
  timeoutMs?: number;
}

/** Serves the result bucket on $PORT, after leaving what it was given there; SIGTERM is ignored by it and all it starts. */
const SERVER_SCRIPT = [
  'set -e',
  "trap '' TERM",
  'echo "greeting=$GREETING"',
  'if [ -f marker.txt ]; then cp marker.txt "$RESULTS_DIR/"; fi',
  'echo "$GREETING" > "$RESULTS_DIR/hello.txt"',
  'echo "$GREETING" > "$WORKFLOW_DIR/from-app.txt"',
  'sleep 300 &',
  'cd "$RESULTS_DIR"',
  'exec python3 -m http.server "$PORT"',
].join('\n');

async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The body of a GET on 127.0.0.1:port, or undefined while nothing answers there. */
function get(port: number, path: string): Promise<string | undefined> {
  return fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) }).then(
    (r) => (r.ok ? r.text() : undefined),
    () => undefined,
  );
}

/**
 * The behaviour every application runner must have. A new runner adds one test file
 * that calls this with its own factory; see process-app-runner.test.ts and
 * docker-app-runner.test.ts.
 */
export function appRunnerConformance(name: string, options: AppRunnerConformanceOptions): void {
  const timeout = options.timeoutMs ?? 20_000;

  describe(`app runner conformance: ${name}`, () => {
    let dir: string;
    let runner: AppRunner;
    const started: { runner: AppRunner; appId: string; handleId: string }[] = [];

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), `tessera-app-${name}-`));
      runner = await options.create();
    });
    afterEach(async () => {
      for (const s of started.splice(0)) await s.runner.removeStale({ appId: s.appId, handleId: s.handleId });
      await runner.close();
      await rm(dir, { recursive: true, force: true });
    });

    async function launch(script: string): Promise<AppLaunch> {
      const appId = `a-conformance-${randomBytes(4).toString('hex')}`;
      const extDir = join(dir, 'ext');
      const results = join(dir, 'results');
      const workflow = join(dir, 'workflow');
      for (const d of [extDir, results, workflow, join(dir, 'instance')]) await mkdir(d, { recursive: true });
      await writeFile(join(extDir, 'marker.txt'), 'from the extension folder\n');
      const hostPort = await freePort();
      return {
        appId,
        spec: { ...options.appSpec(script), mounts: { results: true } },
        extDir,
        hostPort,
        env: { PORT: String(hostPort), GREETING: 'hello-from-the-launch', TESSERA_APP_ID: appId, RESULTS_DIR: results, WORKFLOW_DIR: workflow, EXTENSION_DIR: extDir },
        runId: 'r-conformance',
        logFile: join(dir, 'instance', 'app.log'),
        instanceDir: join(dir, 'instance'),
      };
    }

    async function start(l: AppLaunch, on = runner): Promise<Awaited<ReturnType<AppRunner['start']>>> {
      const handle = await on.start(l);
      started.push({ runner: on, appId: l.appId, handleId: handle.id });
      return handle;
    }

    it('runs an app that answers on the given port, with its env, mounts and working dir, and its output in the log', { timeout }, async () => {
      const l = await launch(SERVER_SCRIPT);
      expect(runner.canRun(l.spec)).toBe(true);
      const handle = await start(l);
      const body = await until('the app to answer', timeout - 2000, () => get(l.hostPort, '/hello.txt'));
      expect(body).toBe('hello-from-the-launch\n');
      expect(await readFile(join(l.env.WORKFLOW_DIR!, 'from-app.txt'), 'utf8')).toBe('hello-from-the-launch\n');
      const marker = await get(l.hostPort, '/marker.txt');
      expect(marker, 'the extension folder as working directory').toBe(options.runsInExtensionDir ? 'from the extension folder\n' : undefined);
      const log = await until('the log', 10_000, async () => {
        const text = await readFile(l.logFile, 'utf8').catch(() => '');
        return text.includes('greeting=hello-from-the-launch') && text.includes('GET /hello.txt') ? text : undefined;
      });
      expect(log).toContain('greeting=hello-from-the-launch');
      await runner.stop(handle);
    });

    it('stops the app and all it started within the grace time, even when they ignore SIGTERM', { timeout }, async () => {
      const l = await launch(SERVER_SCRIPT);
      const handle = await start(l);
      await until('the app to answer', timeout - 2000, () => get(l.hostPort, '/hello.txt'));
      expect(await options.leftovers(l.appId)).toBeGreaterThan(0);
      const t = Date.now();
      await runner.stop(handle);
      const took = Date.now() - t;
      expect(took, 'SIGTERM is ignored: the grace time is waited for').toBeGreaterThanOrEqual(options.graceMs * 0.8);
      expect(took).toBeLessThan(options.graceMs + 5000);
      await handle.exited;
      expect(await until('nothing left', 5000, async () => ((await options.leftovers(l.appId)) === 0 ? true : undefined))).toBe(true);
      expect(await get(l.hostPort, '/hello.txt')).toBeUndefined();
    });

    it('reports an app that ends on its own through exited, with its exit code', { timeout }, async () => {
      const l = await launch('echo bye; exit 3');
      const handle = await start(l);
      expect(await handle.exited).toMatchObject({ code: 3 });
      const log = await until('the log', 5000, async () => {
        const text = await readFile(l.logFile, 'utf8').catch(() => '');
        return text.includes('bye') ? text : undefined;
      });
      expect(log).toContain('bye');
    });

    it('lets a second runner (a restarted server) find and remove what the first left', { timeout }, async () => {
      const l = await launch(SERVER_SCRIPT);
      const handle = await start(l);
      await until('the app to answer', timeout - 2000, () => get(l.hostPort, '/hello.txt'));
      const second = await options.create();
      try {
        await second.removeStale({ appId: l.appId, handleId: handle.id });
        await handle.exited;
        expect(await until('nothing left', 5000, async () => ((await options.leftovers(l.appId)) === 0 ? true : undefined))).toBe(true);
        expect(await get(l.hostPort, '/hello.txt')).toBeUndefined();
      } finally {
        await second.close();
      }
    });
  });
}

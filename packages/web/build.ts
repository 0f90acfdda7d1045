// Builds the web UI when packages/web/dist is missing or older than its sources (npm start
// runs this before the server starts; e2e tests and the bench call it too). See ADR 10.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_ROOT = dirname(fileURLToPath(import.meta.url));
export const WEB_DIST = join(WEB_ROOT, 'dist');

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

/** Why the UI must be built (a sentence), or undefined when dist is up to date. */
export function staleReason(): string | undefined {
  const index = join(WEB_DIST, 'index.html');
  if (!existsSync(index)) return 'packages/web/dist is missing';
  const built = statSync(index).mtimeMs;
  const sources = ['index.html', 'vite.config.ts', 'package.json', 'src'].map((p) => join(WEB_ROOT, p)).filter((p) => existsSync(p));
  const newest = Math.max(...sources.map(newestMtime));
  return newest > built ? 'its sources changed since the last build' : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Builds the UI with Vite's build API when it is stale. One build at a time per checkout:
 * a lock dir (`dist.lock`) makes a second process wait for the first and then find dist fresh.
 */
export async function ensureWebBuilt(log: (line: string) => void = (l) => console.log(l)): Promise<'fresh' | 'built'> {
  if (!staleReason()) return 'fresh';
  const lock = join(WEB_ROOT, 'dist.lock');
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // A lock left by a process that died mid-build is taken over after two minutes.
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    const reason = staleReason();
    if (!reason) return 'fresh';
    log(`building the web UI (${reason}) ...`);
    const started = Date.now();
    const { build } = await import('vite');
    // Always the production build: a build started under vitest (NODE_ENV=test) or a dev
    // shell would otherwise get React's development bundle, twice the size and slower.
    const nodeEnv = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      await build({ root: WEB_ROOT, configFile: join(WEB_ROOT, 'vite.config.ts'), logLevel: 'warn', mode: 'production' });
    } finally {
      if (nodeEnv === undefined) delete process.env.NODE_ENV;
      else process.env.NODE_ENV = nodeEnv;
    }
    log(`built the web UI into packages/web/dist in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 'built';
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

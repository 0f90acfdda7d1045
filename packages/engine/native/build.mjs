// Builds tessera-launcher (tessera-launcher.c, ADR 17) with the system's C compiler.
//
// Run at `npm install` (this package's install script) and again at the first start of a
// process runner when the program is missing or older than its source: the program's
// folder holds the SHA-256 of the source it was built from. When the package folder is
// not writable (an installation owned by another user), the program goes to
// ${XDG_CACHE_HOME:-~/.cache}/tessera/. Plain JavaScript: it runs before anything else
// of the project is installed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const LAUNCHER_SOURCE = join(HERE, 'tessera-launcher.c');
export const LAUNCHER_NAME = 'tessera-launcher';

function sourceHash() {
  return createHash('sha256').update(readFileSync(LAUNCHER_SOURCE)).digest('hex');
}

function builtFrom(dir) {
  try {
    return readFileSync(join(dir, `${LAUNCHER_NAME}.sha256`), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Where the program may be: the package's own build folder first, then the user's cache. */
function candidateDirs() {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return [join(HERE, 'build'), join(cache, 'tessera', 'launcher')];
}

function compile(dir, hash) {
  const cc = process.env.CC || 'cc';
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  accessSync(dir, constants.W_OK);
  const tmp = join(dir, `${LAUNCHER_NAME}.${process.pid}.tmp`);
  try {
    execFileSync(cc, ['-O2', '-std=gnu11', '-Wall', '-o', tmp, LAUNCHER_SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
    chmodSync(tmp, 0o755);
    // The program first, then the hash that vouches for it: a reader that sees the hash sees the program.
    renameSync(tmp, join(dir, LAUNCHER_NAME));
    writeFileSync(`${tmp}.sha256`, `${hash}\n`);
    renameSync(`${tmp}.sha256`, join(dir, `${LAUNCHER_NAME}.sha256`));
  } finally {
    rmSync(tmp, { force: true });
    rmSync(`${tmp}.sha256`, { force: true });
  }
}

function compileError(err) {
  if (err.code === 'ENOENT') return `no C compiler: "${process.env.CC || 'cc'}" is not installed (on Debian or Ubuntu: apt-get install gcc)`;
  const stderr = err.stderr ? String(err.stderr).trim().split('\n').slice(0, 6).join('\n') : '';
  return stderr || err.message;
}

/**
 * The path of an up-to-date tessera-launcher, built if needed.
 * @returns {{ path: string } | { reason: string }}
 */
export function ensureLauncher() {
  if (process.platform !== 'linux') return { reason: `tessera-launcher runs on Linux only (this is ${process.platform})` };
  let hash;
  try {
    hash = sourceHash();
  } catch (err) {
    return { reason: `its source ${LAUNCHER_SOURCE} cannot be read: ${err.message}` };
  }
  const dirs = candidateDirs();
  for (const dir of dirs) {
    if (builtFrom(dir) === hash && existsSync(join(dir, LAUNCHER_NAME))) return { path: join(dir, LAUNCHER_NAME) };
  }
  const failures = [];
  for (const dir of dirs) {
    try {
      compile(dir, hash);
      return { path: join(dir, LAUNCHER_NAME) };
    } catch (err) {
      if (err.code === 'EACCES' || err.code === 'EROFS' || err.code === 'EPERM') {
        failures.push(`${dir} is not writable`);
        continue;
      }
      return { reason: `it could not be built: ${compileError(err)}` };
    }
  }
  return { reason: `it could not be built: ${failures.join('; ')}` };
}

// `node native/build.mjs`: the package's install script. It never fails the install:
// without a compiler the process runner starts tasks through its Node launcher, and says so.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = ensureLauncher();
  if ('path' in r) console.log(`tessera: task launcher ready: ${r.path}`);
  else console.warn(`tessera: the native task launcher is not available (${r.reason}); local tasks will start through the slower Node launcher`);
}

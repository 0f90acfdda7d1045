/**
 * What starting one task process costs, by way of starting it. Node's
 * child_process.spawn forks on Linux (libuv uses fork(), not posix_spawn), and
 * fork copies the parent's page tables while the event loop waits: the bigger
 * the server, the slower every task start. This compares, for `/bin/true`
 * started and reaped one after another:
 *
 *   - spawn from this process (tsx and the bench loaded, like the server), and
 *     again after growing the heap by --grow MB;
 *   - a small Node helper process that spawns on request over a pipe;
 *   - a Python helper using os.posix_spawn (vfork-like: no page-table copy);
 *   - Tessera's native launcher (packages/engine/native), when it is built;
 *   - a /bin/sh loop (the floor), free-running and as a helper answering requests.
 *
 * The helpers and the launcher's protocol are in lib/spawn-probe.ts, which
 * bench/workflow-engine.ts also runs (a shorter probe) before its systems.
 *
 *   npx tsx bench/spawn-cost.ts [--n 300] [--grow 200]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { which } from './lib/proc.ts';
import { NODE_HELPER, SHELL_HELPER, nativeLauncherPath, shellLoopMeanMs, timeLineHelper, timeNativeLauncher } from './lib/spawn-probe.ts';
import { median, percentile } from './lib/stats.ts';

const { values: args } = parseArgs({ options: { n: { type: 'string', default: '300' }, grow: { type: 'string', default: '200' } } });
const n = Number(args.n);

function report(label: string, ms: number[]): void {
  const rss = process.memoryUsage().rss / 1024 / 1024;
  console.log(`${label.padEnd(58)} p50 ${median(ms).toFixed(3)} ms  p95 ${percentile(ms, 95).toFixed(3)} ms  (this process: RSS ${rss.toFixed(0)} MB)`);
}

/** Start-to-exit of `/bin/true` from this process; `block` is how long spawn() held the event loop. */
async function inProcess(label: string): Promise<void> {
  const cycle: number[] = [];
  const block: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const child = spawn('/bin/true', [], { stdio: 'ignore', detached: true });
    block.push(performance.now() - t0);
    await new Promise((r) => child.once('exit', r));
    cycle.push(performance.now() - t0);
  }
  report(`${label}: spawn() blocking the event loop`, block);
  report(`${label}: start to exit seen`, cycle);
}

/** A helper that reads one id per line, starts /bin/true, and answers "<id> <exit code>" when it exits. */
async function viaHelper(label: string, command: string, argv: string[]): Promise<void> {
  const { ms } = await timeLineHelper(label, command, argv, n);
  report(`${label}: request to exit seen`, ms);
}

// pidfds let one select() loop wait on requests and on any number of running children at once.
const PYTHON_HELPER = `
import os, select, sys
fd = sys.stdin.fileno()
children = {}
buf = b''
while True:
    r, _, _ = select.select([fd, *children], [], [])
    for f in r:
        if f == fd:
            data = os.read(fd, 65536)
            if not data:
                sys.exit(0)
            buf += data
            while b'\\n' in buf:
                line, buf = buf.split(b'\\n', 1)
                pid = os.posix_spawn('/bin/true', ['true'], os.environ, setsid=True)
                children[os.pidfd_open(pid)] = (line.decode(), pid)
        else:
            ident, pid = children.pop(f)
            os.close(f)
            _, status = os.waitpid(pid, 0)
            os.write(1, ('%s %d\\n' % (ident, os.waitstatus_to_exitcode(status))).encode())
`;

console.log(`${n} starts of /bin/true each, one after another, on ${process.platform} with Node ${process.version}\n`);
console.log(`${'/bin/sh loop (the floor): per start, mean'.padEnd(58)} ${(await shellLoopMeanMs(n)).toFixed(3)} ms`);
await viaHelper('/bin/sh helper (while read)', '/bin/sh', ['-c', SHELL_HELPER]);
await inProcess('in this process');
await viaHelper('Node helper process', process.execPath, ['-e', NODE_HELPER]);
if (which('python3')) await viaHelper('Python helper, os.posix_spawn', 'python3', ['-c', PYTHON_HELPER]);
else console.log('python3 not installed: Python helper skipped');
const native = nativeLauncherPath(resolve(dirname(fileURLToPath(import.meta.url)), '..'));
if (existsSync(native)) report('Tessera native launcher: request to exit seen', (await timeNativeLauncher(native, n)).ms);
else console.log(`Tessera native launcher not built (${native}): skipped`);
const ballast: Buffer[] = [];
for (let i = 0; i < Number(args.grow); i++) ballast.push(Buffer.alloc(1024 * 1024, 1));
await inProcess(`in this process, heap grown by ${args.grow} MB`);
if (ballast.length < 0) console.log('unreachable: keeps the ballast alive until here');

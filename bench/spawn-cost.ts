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
 *   - a /bin/sh loop (the floor).
 *
 *   npx tsx bench/spawn-cost.ts [--n 300] [--grow 200]
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { which, timed } from './lib/proc.ts';
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
  const helper = spawn(command, argv, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: helper.stdout })[Symbol.asyncIterator]();
  const cycle: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    helper.stdin.write(`${i}\n`);
    const answer = await lines.next();
    if (answer.done || !String(answer.value).startsWith(`${i} `)) throw new Error(`${label}: unexpected answer ${JSON.stringify(answer.value)}`);
    cycle.push(performance.now() - t0);
  }
  helper.stdin.end();
  report(`${label}: request to exit seen`, cycle);
}

const NODE_HELPER = `
const { spawn } = require('node:child_process');
require('node:readline').createInterface({ input: process.stdin }).on('line', (id) => {
  spawn('/bin/true', [], { stdio: 'ignore', detached: true }).once('exit', (code) => process.stdout.write(id + ' ' + code + '\\n'));
});`;

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
const floor = await timed('/bin/sh', ['-c', `i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i+1)); done`]);
console.log(`${'/bin/sh loop (the floor): per start, mean'.padEnd(58)} ${(floor.ms / n).toFixed(3)} ms`);
await inProcess('in this process');
await viaHelper('Node helper process', process.execPath, ['-e', NODE_HELPER]);
if (which('python3')) await viaHelper('Python helper, os.posix_spawn', 'python3', ['-c', PYTHON_HELPER]);
else console.log('python3 not installed: Python helper skipped');
const ballast: Buffer[] = [];
for (let i = 0; i < Number(args.grow); i++) ballast.push(Buffer.alloc(1024 * 1024, 1));
await inProcess(`in this process, heap grown by ${args.grow} MB`);
if (ballast.length < 0) console.log('unreachable: keeps the ballast alive until here');

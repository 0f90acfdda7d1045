import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LaunchError, LauncherPool } from './launcher-pool.ts';
import { isAlive, parentOf, pollUntil } from './proc-table.ts';
import { readExitStatus } from './process-recovery.ts';

const NATIVE_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../../native');

// The native launcher must build here (CI has a C compiler); `launcher: 'native'` throws otherwise.
for (const launcher of ['native', 'node'] as const) {
  describe(`the ${launcher} process launcher`, () => {
    let dir: string;
    let pool: LauncherPool;
    const env = { PATH: '/usr/bin:/bin' };
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), `tessera-launcher-${launcher}-`));
      pool = new LauncherPool({ size: 2, launcher });
    });
    afterAll(async () => {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    });

    async function run(script: string, more: Partial<Parameters<LauncherPool['launch']>[0]> = {}): Promise<{ pid: number; code: number | null; signal: string | null; log: string }> {
      const log = join(dir, `${Math.random().toString(36).slice(2)}.log`);
      const l = await pool.launch({ argv: ['sh', '-c', script], cwd: dir, env, log, ...more });
      const e = await l.exited;
      return { pid: l.pid, code: e.code, signal: e.signal, log: existsSync(log) ? readFileSync(log, 'utf8') : '' };
    }

    it('runs the process as the leader of a new session, stdin from /dev/null, output in its log, no fd of the launcher, no signal ignored or blocked', async () => {
      const r = await run([
        'echo "stat $(cut -d" " -f1,5,6 /proc/$$/stat)"',
        'echo "stdin $(readlink /proc/$$/fd/0)"',
        'echo "fds $(ls /proc/$$/fd | sort -n | tr "\\n" " ")"',
        'grep -E "^Sig(Ign|Blk)" /proc/$$/status',
        'echo to-stderr >&2',
      ].join('\n'));
      expect(r.code).toBe(0);
      const lines = r.log.trim().split('\n');
      // pid, process group, session: all the same.
      expect(lines[0]).toBe(`stat ${r.pid} ${r.pid} ${r.pid}`);
      expect(lines[1]).toBe('stdin /dev/null');
      // The shell's own three, and the one `ls` has open on the folder while it reads it at most.
      // (The Node launcher passes on descriptors its parent left open without close-on-exec,
      // which Node cannot close; the native one closes every inherited descriptor at its start.)
      if (launcher === 'native') expect(lines[2]!.trim().split(' ').filter((fd) => Number(fd) > 2).length).toBeLessThanOrEqual(1);
      expect(lines[3]).toBe('SigBlk:\t0000000000000000');
      // No standard signal ignored (the launchers ignore SIGINT, SIGHUP and SIGPIPE themselves); glibc's
      // posix_spawn leaves its two internal real-time signals (32, 33) ignored, which glibc programs reset.
      expect(BigInt(`0x${lines[4]!.split('\t')[1]}`) & 0x7fffffffn).toBe(0n);
      expect(lines[5]).toBe('to-stderr');
    });

    it('reports exit codes and signals by name, and records them in the status file', async () => {
      const status = join(dir, 'term.exit');
      expect(await run('exit 7')).toMatchObject({ code: 7, signal: null });
      expect(await run('kill -TERM $$', { status })).toMatchObject({ code: null, signal: 'SIGTERM' });
      expect(readExitStatus(status)).toEqual({ code: null, signal: 'SIGTERM' });
    });

    it('kills what the process left in its group when it ends', async () => {
      const pidFile = join(dir, 'orphan.pid');
      await run(`sleep 30 & echo $! > ${pidFile}`);
      const orphan = Number(readFileSync(pidFile, 'utf8'));
      expect(await pollUntil(() => !isAlive(orphan), 2000)).toBe(true);
    });

    it('finds the program on the PATH of the request, not its own, and passes the environment as given', async () => {
      const bin = join(dir, 'bin');
      mkdirSync(bin, { recursive: true });
      writeFileSync(join(bin, 'tessera-probe-tool'), '#!/bin/sh\necho "tool $GREETING $#"\n');
      chmodSync(join(bin, 'tessera-probe-tool'), 0o755);
      const log = join(dir, 'tool.log');
      const l = await pool.launch({ argv: ['tessera-probe-tool', 'a b', ''], cwd: dir, env: { PATH: `${bin}:/usr/bin:/bin`, GREETING: 'h=i' }, log });
      expect((await l.exited).code).toBe(0);
      expect(readFileSync(log, 'utf8')).toBe('tool h=i 2\n');
    });

    it('says what could not start, and why: the program, the working directory, the log file', async () => {
      const log = join(dir, 'errors.log');
      await expect(pool.launch({ argv: ['tessera-no-such-program'], cwd: dir, env, log })).rejects.toMatchObject({ stage: 'exec', code: 'ENOENT' });
      writeFileSync(join(dir, 'not-executable'), 'echo no\n');
      await expect(pool.launch({ argv: [join(dir, 'not-executable')], cwd: dir, env, log })).rejects.toMatchObject({ stage: 'exec', code: 'EACCES' });
      const noCwd = await pool.launch({ argv: ['true'], cwd: join(dir, 'gone'), env, log }).catch((e: LaunchError) => e);
      expect(noCwd).toBeInstanceOf(LaunchError);
      expect(noCwd).toMatchObject({ stage: 'cwd', code: 'ENOENT' });
      expect((noCwd as LaunchError).message).toContain(join(dir, 'gone'));
      await expect(pool.launch({ argv: ['true'], cwd: dir, env, log: join(dir, 'gone', 'x.log') })).rejects.toMatchObject({ stage: 'log', code: 'ENOENT' });
      await expect(pool.launch({ argv: ['echo', 'a\0b'], cwd: dir, env, log })).rejects.toThrow(/NUL byte/);
      // The launchers are still in step after all of that.
      expect(await run('exit 0')).toMatchObject({ code: 0 });
    });

    it('keeps 300 concurrent starts apart, and takes an argument of half a megabyte', async () => {
      const runs = await Promise.all(Array.from({ length: 300 }, (_, i) => run(`exit ${i % 100}`).then((r) => r.code, (e: Error) => e.message)));
      expect(runs).toEqual(Array.from({ length: 300 }, (_, i) => i % 100));
      // Linux takes at most 128 KB per argument: five of 100 KB.
      const big = Array.from({ length: 5 }, (_, i) => String(i).repeat(100 * 1024 + i));
      const l = await pool.launch({ argv: ['sh', '-c', 'exit $(( (${#1} + ${#2} + ${#3} + ${#4} + ${#5}) % 251 ))', 'sh', ...big], cwd: dir, env, log: join(dir, 'big.log') });
      expect((await l.exited).code).toBe(big.reduce((n, a) => n + a.length, 0) % 251);
    });

    // ADR 18: a start armed to follow another process.
    describe('arming', () => {
      /** A process that waits for `go` to exist, then exits with `code`. */
      async function lead(name: string, code: number): Promise<{ pid: number; go: () => void; exited: Promise<{ code: number | null }> }> {
        const go = join(dir, `${name}.go`);
        const l = await pool.launch({ argv: ['sh', '-c', `while [ ! -f ${go} ]; do sleep 0.02; done; date +%s%N > ${join(dir, `${name}.end`)}; exit ${code}`], cwd: dir, env, log: join(dir, `${name}.log`), status: join(dir, `${name}.exit`) });
        return { pid: l.pid, go: () => writeFileSync(go, ''), exited: l.exited };
      }
      const follower = (name: string) => ({ argv: ['sh', '-c', `date +%s%N > ${join(dir, `${name}.start`)}`], cwd: dir, env, log: join(dir, `${name}.log`), status: join(dir, `${name}.exit`) });
      const nanos = (file: string): bigint => BigInt(readFileSync(file, 'utf8').trim());

      it('starts the armed process when the one it follows exits with code 0, and still reports that exit and its status', async () => {
        const a = await lead('ok-lead', 0);
        const armed = pool.arm(follower('ok-next'), a.pid)!;
        expect(armed).toBeDefined();
        a.go();
        const next = await armed.started;
        expect(next).toBeDefined();
        expect((await a.exited).code).toBe(0);
        expect(readExitStatus(join(dir, 'ok-lead.exit'))).toEqual({ code: 0, signal: null });
        expect((await next!.exited).code).toBe(0);
        expect(nanos(join(dir, 'ok-next.start'))).toBeGreaterThan(nanos(join(dir, 'ok-lead.end')));
        expect(readExitStatus(join(dir, 'ok-next.exit'))).toEqual({ code: 0, signal: null });
      });

      it('drops it, never starting it, when the process it follows fails, when it is disarmed, or when that process is not running', async () => {
        const failing = await lead('bad-lead', 2);
        const armed = pool.arm(follower('bad-next'), failing.pid)!;
        failing.go();
        expect(await armed.started).toBeUndefined();
        expect((await failing.exited).code).toBe(2);

        const running = await lead('dis-lead', 0);
        const disarmed = pool.arm(follower('dis-next'), running.pid)!;
        disarmed.disarm();
        expect(await disarmed.started).toBeUndefined();
        running.go();
        expect((await running.exited).code).toBe(0);

        expect(pool.arm(follower('none-next'), 999_999_999)).toBeUndefined();
        await new Promise((r) => setTimeout(r, 200));
        for (const name of ['bad-next', 'dis-next', 'none-next']) expect(existsSync(join(dir, `${name}.start`))).toBe(false);
      });

      it('drops what is armed when its input ends (the server is gone): the follower of a process that ends later never starts', async () => {
        const own = new LauncherPool({ size: 1, launcher });
        const go = join(dir, 'eof.go');
        const l = await own.launch({ argv: ['sh', '-c', `while [ ! -f ${go} ]; do sleep 0.02; done`], cwd: dir, env, log: join(dir, 'eof.log'), status: join(dir, 'eof.exit') });
        const armed = own.arm(follower('eof-next'), l.pid)!;
        await own.close();
        // The launcher says it dropped it once it has seen its input end; only then does the lead end.
        expect(await armed.started).toBeUndefined();
        writeFileSync(go, '');
        expect(await pollUntil(() => readExitStatus(join(dir, 'eof.exit')) !== undefined, 5000)).toBe(true);
        await new Promise((r) => setTimeout(r, 200));
        expect(existsSync(join(dir, 'eof-next.start'))).toBe(false);
      });

      it('removes a status file left by an earlier start of the same try when it starts', async () => {
        const status = join(dir, 'stale.exit');
        writeFileSync(status, '{"code":9,"signal":null}\n');
        const l = await pool.launch({ argv: ['sh', '-c', `test -e ${status} && exit 1; exit 0`], cwd: dir, env, log: join(dir, 'stale.log'), status });
        expect((await l.exited).code).toBe(0);
        expect(readExitStatus(status)).toEqual({ code: 0, signal: null });
      });
    });

    it('a launcher that dies takes its processes with it and says so', async () => {
      const own = new LauncherPool({ size: 1, launcher });
      try {
        const l = await own.launch({ argv: ['sleep', '30'], cwd: dir, env, log: join(dir, 'lost.log') });
        process.kill(parentOf(l.pid)!, 'SIGKILL');
        const e = await l.exited;
        expect(e.lost).toMatch(/the process launcher exited unexpectedly \(SIGKILL\)/);
        expect(await pollUntil(() => !isAlive(l.pid), 2000)).toBe(true);
        // The next start gets a new launcher.
        const again = await own.launch({ argv: ['true'], cwd: dir, env, log: join(dir, 'lost.log') });
        expect((await again.exited).code).toBe(0);
      } finally {
        await own.close();
      }
    });
  });
}

describe('building the native launcher', () => {
  let dir: string;
  beforeAll(() => {
    // A copy of the build script and the source, so that the package's own program is not touched.
    dir = mkdtempSync(join(tmpdir(), 'tessera-launcher-build-'));
    mkdirSync(join(dir, 'native'));
    for (const f of ['build.mjs', 'tessera-launcher.c']) copyFileSync(join(NATIVE_DIR, f), join(dir, 'native', f));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs the install script as npm would, with this compiler; its stdout and stderr apart. */
  const runBuild = (cc: string): { stdout: string; stderr: string } =>
    spawnSync(process.execPath, [join(dir, 'native', 'build.mjs')], { env: { PATH: process.env.PATH, CC: cc, XDG_CACHE_HOME: join(dir, 'cache') }, encoding: 'utf8' });
  const build = (cc: string): string => runBuild(cc).stdout;

  it('without a compiler, the install goes on and says why the Node launcher will be used', () => {
    const r = runBuild('/nonexistent/cc');
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('the native task launcher is not available (it could not be built: no C compiler: "/nonexistent/cc" is not installed (on Debian or Ubuntu: apt-get install gcc))');
    expect(existsSync(join(dir, 'native', 'build', 'tessera-launcher'))).toBe(false);
  });

  it('builds once, and again only when the source changed', () => {
    expect(build('cc')).toContain(`task launcher ready: ${join(dir, 'native', 'build', 'tessera-launcher')}`);
    const hash = readFileSync(join(dir, 'native', 'build', 'tessera-launcher.sha256'), 'utf8');
    // Up to date: no compiler needed.
    expect(build('/nonexistent/cc')).toContain('task launcher ready');
    writeFileSync(join(dir, 'native', 'tessera-launcher.c'), `${readFileSync(join(dir, 'native', 'tessera-launcher.c'), 'utf8')}\n/* changed */\n`);
    expect(build('cc')).toContain('task launcher ready');
    expect(readFileSync(join(dir, 'native', 'build', 'tessera-launcher.sha256'), 'utf8')).not.toBe(hash);
  });

  it('a compiler error is shown, not hidden', () => {
    writeFileSync(join(dir, 'native', 'tessera-launcher.c'), 'this is not C\n');
    expect(runBuild('cc').stderr).toMatch(/could not be built: .*error/s);
  });
});

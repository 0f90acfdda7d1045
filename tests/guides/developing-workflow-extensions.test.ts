import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerProblem, dockerSocket, skipDocker } from '../../packages/engine/src/__fixtures__/docker-env.ts';
import { REPO_ROOT } from '../../packages/server/src/__fixtures__/server-process.ts';
import { startTestServer, type TestServer } from '../../packages/server/src/__fixtures__/test-server.ts';

const GUIDE = join(REPO_ROOT, 'docs/guides/developing-workflow-extensions.md');

interface Block {
  lang: string;
  body: string;
  /** The prose between the previous block and this one. */
  before: string;
}

function blocks(markdown: string): Block[] {
  const out: Block[] = [];
  const re = /```(\w*)\n([\s\S]*?)```/g;
  let last = 0;
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) {
    out.push({ lang: m[1]!, body: m[2]!, before: markdown.slice(last, m.index) });
    last = m.index + m[0].length;
  }
  return out;
}

/** A line of shown output as a pattern: "..." is anything, numbers are any numbers. */
function shownLine(line: string): RegExp {
  const escaped = line.trim().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(escaped.replace(/\\\.\\\.\\\./g, '.*').replace(/\d+(\\\.\d+)*/g, '[\\d.]+'));
}

function run(cmd: string, cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', cmd], { cwd, env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

describe.skipIf(skipDocker)('the guide "Developing workflow extensions", followed literally', () => {
  let s: TestServer;
  let work: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    expect(dockerProblem, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeUndefined();
    s = await startTestServer({ runners: ['docker', 'process'], dockerSocket });
    work = await mkdtemp(join(tmpdir(), 'tessera-guide-'));
    // `tessera` on the PATH, as `npm link` puts it there.
    const bin = join(work, '.bin');
    await mkdir(bin);
    await writeFile(join(bin, 'tessera'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO_ROOT, 'bin/tessera.mjs')}" "$@"\n`);
    await chmod(join(bin, 'tessera'), 0o755);
    env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, TESSERA_URL: s.url, DOCKER_HOST: `unix://${dockerSocket}` };
  });
  afterAll(async () => {
    await s?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('runs every command of the guide in order, each succeeding with the output the guide shows', { timeout: 300_000 }, async () => {
    const all = blocks(await readFile(GUIDE, 'utf8'));
    const commands = all.filter((b) => b.lang === 'sh');
    expect(commands.length).toBeGreaterThanOrEqual(10);
    let dev: { child: ChildProcess; out: () => string } | undefined;
    /** Waits until `ext dev` has been quiet for a moment after a change, and says what it last did. */
    const devSettled = async (lines: number): Promise<string> => {
      const deadline = Date.now() + 60_000;
      let seen = '';
      let quietSince = Date.now();
      for (;;) {
        const out = dev!.out();
        if (out !== seen) {
          seen = out;
          quietSince = Date.now();
        }
        const done = out.split('\n').filter((l) => /^\[\d\d:\d\d:\d\d\]/.test(l));
        if (done.length >= lines && Date.now() - quietSince > 1500) return done.at(-1)!;
        if (Date.now() > deadline) throw new Error(`ext dev did not settle:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    let lastOutput = '';
    try {
      for (const block of all) {
        if (block.lang === 'text') {
          // What the guide shows a command printing: each line must be in what it printed.
          for (const line of block.body.split('\n').filter((l) => l.trim() && !/\/(home|tmp)\//.test(l))) {
            expect(lastOutput, `the guide shows "${line.trim()}"`).toMatch(shownLine(line));
          }
          continue;
        }
        if (block.lang !== 'sh') continue;
        if (/Stop `ext dev`/.test(block.before) && dev) {
          dev.child.kill('SIGINT');
          await new Promise((r) => dev!.child.once('exit', r));
          expect(dev.child.exitCode).toBe(0);
          dev = undefined;
        }
        if (block.body.startsWith('# in a second terminal')) {
          const child = spawn('bash', ['-c', block.body], { cwd: work, env });
          let out = '';
          child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
          dev = { child, out: () => out };
          expect(await devSettled(1)).toMatch(/installed lung-stats@0\.1\.0/);
          lastOutput = out;
          continue;
        }
        const devLines = dev ? dev.out().split('\n').filter((l) => /^\[\d\d:\d\d:\d\d\]/.test(l)).length : 0;
        const result = await run(block.body, work, env);
        expect(result.code, `${block.body}\n${result.out}`).toBe(0);
        lastOutput = result.out;
        if (dev && /lung-stats\/(processing|workflows)/.test(block.body)) {
          // An edit: ext dev must have reinstalled it, without an error.
          const last = await devSettled(devLines + 1);
          expect(last, dev.out()).toMatch(/changed: .*reinstalled lung-stats@0\.1\.0/);
        }
        if (block.body.includes('cat results/')) {
          expect(result.out).toContain('"slices": 16');
          expect(result.out).toContain('"enough": true');
        }
        if (block.body.includes('ext run-operator')) expect(result.out).toMatch(/summarize: success/);
      }
    } finally {
      dev?.child.kill('SIGINT');
    }
    // What the guide built is what the platform ran: the new parameter, then the uninstall.
    expect((await s.call('GET', '/api/extensions/lung-stats')).body.state).toBe('not_installed');
    const runs = (await s.call('GET', '/api/runs?workflow=lung-stats')).body as { items: { id: string; state: string }[] };
    expect(runs.items.map((r) => r.state)).toEqual(['success']);
    const detail = (await s.call('GET', `/api/runs/${runs.items[0]!.id}`)).body as { conf: { workflow_form: Record<string, unknown> }; workflow_dir: string };
    expect(detail.conf.workflow_form).toEqual({ min_slices: 8 });
  });
});

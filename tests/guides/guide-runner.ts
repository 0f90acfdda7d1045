import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { REPO_ROOT } from '../../packages/server/src/__fixtures__/server-process.ts';

/**
 * Follows a guide in docs/ literally: every ```sh block runs, in order, in one folder,
 * with `tessera` on the PATH (as `npm link` puts it) pointed at the given server; a
 * block starting `# in a second terminal` (ext dev) runs in the background until the
 * guide says to stop it; each ```text block is output the guide shows, and every line of
 * it must be in what the command before printed ("..." stands for anything, numbers for
 * any number). The guide's `http://localhost:8080` is the test server's address.
 */
export interface GuideHooks {
  /** Checks the output of a block (its command text given). */
  after?: (block: string, output: string) => void;
  /** Whether a block edits a file that a running `ext dev` must then reinstall. */
  isEdit?: (block: string) => boolean;
  /** What `ext dev`'s line after such an edit must say. */
  reinstalled?: RegExp;
  /** What `ext dev`'s first line must say. */
  installed?: RegExp;
}

interface Block {
  lang: string;
  body: string;
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
export function shownLine(line: string): RegExp {
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

const STAMPED = /^\[\d\d:\d\d:\d\d\]/;

export async function followGuide(guide: string, serverUrl: string, extraEnv: NodeJS.ProcessEnv, hooks: GuideHooks = {}): Promise<{ work: string; commands: number }> {
  const work = await mkdtemp(join(tmpdir(), 'tessera-guide-'));
  const bin = join(work, '.bin');
  await mkdir(bin);
  await writeFile(join(bin, 'tessera'), `#!/bin/sh\nexec "${process.execPath}" "${join(REPO_ROOT, 'bin/tessera.mjs')}" "$@"\n`);
  await chmod(join(bin, 'tessera'), 0o755);
  const env = { ...process.env, ...extraEnv, PATH: `${bin}:${process.env.PATH}`, TESSERA_URL: serverUrl };
  const all = blocks(await readFile(join(REPO_ROOT, guide), 'utf8'));
  let dev: { child: ChildProcess; out: () => string } | undefined;
  const devLines = (): string[] => (dev ? dev.out().split('\n').filter((l) => STAMPED.test(l)) : []);
  /** Waits until `ext dev` has printed `n` lines and been quiet for a moment; its last line. */
  const devSettled = async (n: number): Promise<string> => {
    const deadline = Date.now() + 60_000;
    let seen = '';
    let quietSince = Date.now();
    for (;;) {
      const out = dev!.out();
      if (out !== seen) {
        seen = out;
        quietSince = Date.now();
      }
      if (devLines().length >= n && Date.now() - quietSince > 1500) return devLines().at(-1)!;
      if (Date.now() > deadline) throw new Error(`ext dev did not settle:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  let lastOutput = '';
  let commands = 0;
  try {
    for (const block of all) {
      if (block.lang === 'text') {
        for (const line of block.body.split('\n').filter((l) => l.trim() && !/\/(home|tmp)\//.test(l))) {
          expect(lastOutput, `the guide shows "${line.trim()}"`).toMatch(shownLine(line.replaceAll('http://localhost:8080', serverUrl)));
        }
        continue;
      }
      if (block.lang !== 'sh') continue;
      commands++;
      const body = block.body.replaceAll('http://localhost:8080', serverUrl);
      if (/Stop `ext dev`/.test(block.before) && dev) {
        dev.child.kill('SIGINT');
        await new Promise((r) => dev!.child.once('exit', r));
        expect(dev.child.exitCode).toBe(0);
        dev = undefined;
      }
      if (body.startsWith('# in a second terminal')) {
        const child = spawn('bash', ['-c', body], { cwd: work, env });
        let out = '';
        child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
        dev = { child, out: () => out };
        const first = await devSettled(1);
        if (hooks.installed) expect(first, out).toMatch(hooks.installed);
        lastOutput = out;
        continue;
      }
      const before = devLines().length;
      const result = await run(body, work, env);
      expect(result.code, `${body}\n${result.out}`).toBe(0);
      lastOutput = result.out;
      if (dev && hooks.isEdit?.(body)) {
        const last = await devSettled(before + 1);
        if (hooks.reinstalled) expect(last, dev.out()).toMatch(hooks.reinstalled);
      }
      hooks.after?.(body, result.out);
    }
  } finally {
    dev?.child.kill('SIGINT');
  }
  return { work, commands };
}

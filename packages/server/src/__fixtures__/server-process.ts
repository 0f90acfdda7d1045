import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** Whether a port of 127.0.0.1 can be listened on now. */
function isFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** A free port whose next one is free too: with access control on, the server takes PORT+1 for its applications. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort();
    if (port < 65535 && (await isFree(port + 1))) return port;
  }
  return freePort();
}

/** Starts `npm start`'s entry point as a real separate process and waits until /api/health answers. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const port = env.PORT ?? String(await freePortPair());
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/tessera-server.mjs')], {
    cwd: REPO_ROOT,
    // Access control is off unless the test says otherwise: these tests are about what the server does, not who may ask.
    env: { ...process.env, TESSERA_LOG_LEVEL: 'warn', DICOM_PORT: '0', TESSERA_AUTH: 'off', ...env, PORT: port },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${out}`);
    const ok = await fetch(`${url}/api/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not become ready in 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, output: () => out };
}

export async function killHard(p: ServerProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = new Promise((r) => p.child.once('exit', r));
  p.child.kill('SIGKILL');
  await exited;
}

/**
 * Tokens of a server process started with access control on (TESSERA_AUTH=on and
 * XDG_STATE_HOME=`stateHome`): the admin token of its runtime file, and a token of a new
 * user who is a scientist in `projects`, made as a person would (an admin creates the
 * user, the user signs in, chooses a password and creates a token).
 */
export async function signedInTokens(server: ServerProcess, stateHome: string, projects: string[] = ['admin']): Promise<{ admin: string; scientist: string }> {
  const port = new URL(server.url).port;
  const runtime = JSON.parse(readFileSync(join(stateHome, 'tessera', 'servers', `${port}.json`), 'utf8')) as { token: string };
  const admin = runtime.token;
  const json = async (path: string, body: unknown, headers: Record<string, string>): Promise<Response> => {
    const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    if (res.status >= 300) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return res;
  };
  const first = 'first-password-1';
  const own = 'own-password-22';
  await json('/api/users', { name: 'scientist', password: first }, { authorization: `Bearer ${admin}` });
  for (const p of projects) {
    const res = await fetch(`${server.url}/api/projects/${p}/members/scientist`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` }, body: JSON.stringify({ role: 'scientist' }) });
    if (res.status !== 200) throw new Error(`adding the scientist to ${p}: ${res.status} ${await res.text()}`);
  }
  const cookieOf = (res: Response): string => (res.headers.get('set-cookie') ?? '').split(';')[0]!;
  let cookie = cookieOf(await json('/api/auth/sign-in', { username: 'scientist', password: first }, {}));
  await json('/api/auth/password', { current_password: first, new_password: own }, { cookie });
  cookie = cookieOf(await json('/api/auth/sign-in', { username: 'scientist', password: own }, {}));
  const created = (await (await json('/api/tokens', { name: 'hostile suite' }, { cookie })).json()) as { token: string };
  return { admin, scientist: created.token };
}

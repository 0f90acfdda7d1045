import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { CliError } from './api-client.ts';

/**
 * Where the CLI's token for a server comes from, in this order:
 * 1. `TESSERA_TOKEN`;
 * 2. what `tessera login` saved for the server's URL, in
 *    `${XDG_CONFIG_HOME:-~/.config}/tessera/credentials.json` (mode 0600);
 * 3. for a loopback URL, the runtime file the server on that port wrote,
 *    `${XDG_STATE_HOME:-~/.local/state}/tessera/servers/<port>.json` (mode 0600; an admin
 *    token, as Jupyter's runtime files: packages/server/src/auth/identity.ts).
 * A token is never printed, nor put in a URL or an error message.
 */

export type TokenSource = 'env' | 'login' | 'runtime-file';

/** A token the CLI sends as `Authorization: Bearer`, and where it came from (for `whoami` and error messages). */
export interface TokenCredential {
  token: string;
  from: TokenSource;
  /** The file it was read from (login, runtime file). */
  file?: string;
}

/** What `tessera login` keeps for one server. */
export interface SavedLogin {
  token: string;
  /** The token's id on the server: `tessera logout` revokes it. */
  token_id: string;
  token_name: string;
  user: string;
  saved_at: string;
}

interface CredentialsFile {
  servers: Record<string, SavedLogin>;
}

type Env = Record<string, string | undefined>;

export function credentialsFile(env: Env = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config'), 'tessera', 'credentials.json');
}

/** The runtime file a loopback server on this port writes (the server's `stateDir` is `${XDG_STATE_HOME:-~/.local/state}/tessera`). */
export function runtimeFile(port: number, env: Env = process.env): string {
  return join(env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state'), 'tessera', 'servers', `${port}.json`);
}

/** The key of a server in the credentials file: its URL without a trailing slash, scheme and host lower-cased, a default port left out. */
export function serverKey(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CliError(`"${url}" is not a URL: give the server's URL, e.g. http://localhost:8080`, { exitCode: 2 });
  }
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** The port a URL connects to: its own, or its scheme's default. */
export function portOf(url: URL): number {
  return u16(url.port) ?? (url.protocol === 'https:' ? 443 : 80);
}

function u16(s: string): number | undefined {
  const n = Number(s);
  return s !== '' && Number.isInteger(n) && n > 0 && n < 65536 ? n : undefined;
}

/** True for a URL of this machine: localhost, 127.0.0.0/8, [::1]. */
export function isLoopbackUrl(url: URL): boolean {
  const h = url.hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`${file} is not valid JSON: fix or delete it (then sign in again with \`tessera login\`)`);
  }
}

function readCredentials(file: string): CredentialsFile {
  const data = readJson(file) as Partial<CredentialsFile> | undefined;
  return { servers: data && typeof data.servers === 'object' && data.servers !== null ? data.servers : {} };
}

/** Writes the credentials file atomically, readable by its owner only (its folder too). */
function writeCredentials(file: string, data: CredentialsFile): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(data, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new CliError(`cannot write ${file}: ${(err as Error).message}`);
  }
}

/** The login saved for a server, if any. */
export function savedLogin(url: string, env: Env = process.env): SavedLogin | undefined {
  const entry = readCredentials(credentialsFile(env)).servers[serverKey(url)];
  return entry && typeof entry.token === 'string' && entry.token ? entry : undefined;
}

/** Saves (or replaces) the login of a server; answers the file. */
export function saveLogin(url: string, login: SavedLogin, env: Env = process.env): string {
  const file = credentialsFile(env);
  const data = readCredentials(file);
  data.servers[serverKey(url)] = login;
  writeCredentials(file, data);
  return file;
}

/** Forgets the login of a server; answers whether there was one. */
export function forgetLogin(url: string, env: Env = process.env): boolean {
  const file = credentialsFile(env);
  const data = readCredentials(file);
  const key = serverKey(url);
  if (!(key in data.servers)) return false;
  delete data.servers[key];
  writeCredentials(file, data);
  return true;
}

/**
 * The token of the runtime file of a loopback server at this URL: the file of its port,
 * when its `url` has the same port and the process that wrote it still runs.
 */
export function runtimeToken(url: string, env: Env = process.env): TokenCredential | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  if (!isLoopbackUrl(u)) return undefined;
  const port = portOf(u);
  const file = runtimeFile(port, env);
  let data: { url?: unknown; token?: unknown; pid?: unknown } | undefined;
  try {
    data = readJson(file) as typeof data;
  } catch {
    return undefined; // unreadable or half a file: as if there were none
  }
  if (!data || typeof data.token !== 'string' || !data.token || typeof data.url !== 'string') return undefined;
  try {
    if (portOf(new URL(data.url)) !== port) return undefined;
  } catch {
    return undefined;
  }
  // A server that was killed leaves its file behind: its token is revoked at the next start anyway.
  if (typeof data.pid === 'number' && !processRuns(data.pid)) return undefined;
  return { token: data.token, from: 'runtime-file', file };
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The token to send to the server at `url`: TESSERA_TOKEN, else the saved login, else a loopback server's runtime file. */
export function findToken(url: string, env: Env = process.env): TokenCredential | undefined {
  const fromEnv = env.TESSERA_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, from: 'env' };
  const login = savedLogin(url, env);
  if (login) return { token: login.token, from: 'login', file: credentialsFile(env) };
  return runtimeToken(url, env);
}

/** Where a token came from, for people: `TESSERA_TOKEN`, `tessera login (<file>)`, `the server's runtime file (<file>)`. */
export function describeSource(c: TokenCredential): string {
  switch (c.from) {
    case 'env':
      return 'TESSERA_TOKEN';
    case 'login':
      return `\`tessera login\` (${c.file})`;
    case 'runtime-file':
      return `the server's runtime file (${c.file})`;
  }
}

import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findToken, forgetLogin, saveLogin, serverKey } from './credentials.ts';

let root: string;
let env: Record<string, string>;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tessera-credentials-'));
  env = { XDG_STATE_HOME: join(root, 'state'), XDG_CONFIG_HOME: join(root, 'config'), HOME: join(root, 'home') };
  await mkdir(join(root, 'state', 'tessera', 'servers'), { recursive: true });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function writeRuntime(port: number, content: Record<string, unknown>): Promise<void> {
  await writeFile(join(root, 'state', 'tessera', 'servers', `${port}.json`), JSON.stringify(content), { mode: 0o600 });
}

const login = (token: string) => ({ token, token_id: `id-${token}`, token_name: 'cli on here', user: 'alice', saved_at: new Date().toISOString() });

describe('where the CLI finds its token', () => {
  it("takes a loopback server's runtime file only for its port, while its process runs, and never for another host", async () => {
    await writeRuntime(8181, { url: 'http://127.0.0.1:8181', token: 'tsr_runtime', pid: process.pid, home: '/x' });
    expect(findToken('http://localhost:8181', env)).toMatchObject({ token: 'tsr_runtime', from: 'runtime-file' });
    expect(findToken('http://127.0.0.2:8181/', env)?.token).toBe('tsr_runtime');
    expect(findToken('http://[::1]:8181', env)?.token).toBe('tsr_runtime');
    expect(findToken('http://tessera.example:8181', env)).toBeUndefined();
    expect(findToken('http://localhost:8182', env)).toBeUndefined();
    // A file whose url names another port is not this server's.
    await writeRuntime(8183, { url: 'http://127.0.0.1:9999', token: 'tsr_other', pid: process.pid });
    expect(findToken('http://localhost:8183', env)).toBeUndefined();
    // The file of a server that is gone (no such process) is left alone.
    await writeRuntime(8184, { url: 'http://127.0.0.1:8184', token: 'tsr_stale', pid: 2 ** 22 + 1 });
    expect(findToken('http://localhost:8184', env)).toBeUndefined();
    // The default port of the scheme.
    await writeRuntime(80, { url: 'http://127.0.0.1', token: 'tsr_80', pid: process.pid });
    expect(findToken('http://localhost/', env)?.token).toBe('tsr_80');
  });

  it('takes TESSERA_TOKEN first, then the login saved for the URL, then the runtime file', async () => {
    const file = saveLogin('http://LOCALHOST:8181/', login('tsr_login'), env);
    expect(file).toBe(join(root, 'config', 'tessera', 'credentials.json'));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, 'config', 'tessera'))).mode & 0o777).toBe(0o700);
    expect(Object.keys((JSON.parse(await readFile(file, 'utf8')) as { servers: object }).servers)).toEqual(['http://localhost:8181']);
    expect(findToken('http://localhost:8181', env)).toEqual({ token: 'tsr_login', from: 'login', file });
    expect(findToken('http://localhost:8181', { ...env, TESSERA_TOKEN: 'tsr_env' })).toEqual({ token: 'tsr_env', from: 'env' });
    // Saved for localhost is not saved for 127.0.0.1: that one still has the runtime file.
    expect(findToken('http://127.0.0.1:8181', env)?.from).toBe('runtime-file');
    expect(forgetLogin('http://localhost:8181', env)).toBe(true);
    expect(forgetLogin('http://localhost:8181', env)).toBe(false);
    expect(findToken('http://localhost:8181', env)?.from).toBe('runtime-file');
  });

  it('keys servers by URL: scheme and host lower-cased, default port and trailing slashes left out', () => {
    expect(serverKey('HTTPS://Tessera.Example:443/base/')).toBe('https://tessera.example/base');
    expect(serverKey('http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080');
    expect(() => serverKey('not a url')).toThrow('"not a url" is not a URL');
  });
});

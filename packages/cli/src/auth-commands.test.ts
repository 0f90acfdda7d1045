import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './__fixtures__/run-cli.ts';
import { startTestServer, type TestServer } from '../../server/src/__fixtures__/test-server.ts';

let server: TestServer;
let root: string;
/** XDG_STATE_HOME of the CLI: the server's runtime file is in its tessera/servers/. */
let stateHome: string;
/** XDG_CONFIG_HOME of the CLI: `tessera login` saves to its tessera/credentials.json. */
let configHome: string;
let runtimeToken: string;
/** Every output of every run of the CLI, to check that no secret shows where it should not. */
const outputs: { args: string[]; out: string }[] = [];

const ALICE_PASSWORD = 'first-password-of-alice';
const ALICE_NEW_PASSWORD = 'alice-chose-this-one';
const ALICE_LAST_PASSWORD = 'alice-changed-it-again';

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tessera-cli-auth-'));
  stateHome = join(root, 'state');
  configHome = join(root, 'config');
  server = await startTestServer({ auth: 'on', stateDir: join(stateHome, 'tessera') });
  const port = new URL(server.url).port;
  runtimeToken = (JSON.parse(await readFile(join(stateHome, 'tessera', 'servers', `${port}.json`), 'utf8')) as { token: string }).token;
});
afterAll(async () => {
  await server?.close();
  await rm(root, { recursive: true, force: true });
});

/** The real CLI with its own state and config folders and no TESSERA_TOKEN but the one given. */
async function tessera(args: string[], o: { env?: Record<string, string>; input?: string } = {}): Promise<CliResult> {
  const r = await runCli({ url: server.url, args, input: o.input, env: { XDG_STATE_HOME: stateHome, XDG_CONFIG_HOME: configHome, TESSERA_TOKEN: '', ...o.env } });
  outputs.push({ args, out: r.stdout + r.stderr });
  return r;
}

/** A request to the server, signed in with a bearer token or not; answers its status. */
async function call(method: string, path: string, body?: unknown, token?: string): Promise<number> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  await res.body?.cancel();
  return res.status;
}

const notSignedIn = (url: string): string => `not signed in to ${url}: run \`tessera login ${url}\` or set TESSERA_TOKEN (create one with \`tessera token create\`)`;

// Each test runs the CLI a few times, a second or more each (several on a busy machine).
describe('tessera CLI against a server with access control', { timeout: 120_000 }, () => {
  let aliceToken: string;

  it('signs in with the runtime file of a loopback server when it has no other token, and says how to sign in without one', async () => {
    const [me, none] = await Promise.all([tessera(['whoami']), tessera(['whoami'], { env: { XDG_STATE_HOME: join(root, 'no-state') } })]);
    expect(me.code, me.stderr).toBe(0);
    expect(me.stdout).toMatch(/^user\s+admin \(Administrator\)$/m);
    expect(me.stdout).toMatch(/^admin\s+yes$/m);
    expect(me.stdout).toContain(`token     from the server's runtime file (${join(stateHome, 'tessera', 'servers', `${new URL(server.url).port}.json`)})`);
    expect(me.stdout).toMatch(/^admin\s+principal-investigator$/m);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(notSignedIn(server.url));
  });

  it('lets an admin create users and add members; a generated password is printed once, alone on stdout', async () => {
    expect(await call('POST', '/api/projects', { name: 'lung' }, runtimeToken)).toBe(201);
    const [alice, bob] = await Promise.all([
      tessera(['users', 'create', 'alice', '--display-name', 'Alice A.', '--password-stdin'], { input: `${ALICE_PASSWORD}\n` }),
      tessera(['users', 'create', 'bob']),
    ]);
    expect(alice.code, alice.stderr).toBe(0);
    expect(alice.stdout).toBe('created the user alice; they must change the password at their first sign-in\n');
    expect(bob.code, bob.stderr).toBe(0);
    expect(bob.stdout).toMatch(/^[A-Za-z0-9_-]{24}\n$/);
    expect(bob.stderr).toContain('the password of bob is shown this once');
    expect(await call('POST', '/api/auth/sign-in', { username: 'bob', password: bob.stdout.trim() })).toBe(200);
    const added = await tessera(['projects', 'add-member', 'lung', 'alice', '--role', 'scientist']);
    expect(added.stdout).toBe('alice is a scientist of project lung\n');
    const members = await tessera(['projects', 'members', 'lung']);
    expect(members.stdout).toMatch(/^alice\s+scientist\s+\S+\s+Alice A\.$/m);
  });

  it('logs in from stdin, choosing a new password first, saves a token mode 0600, and whoami shows that user', async () => {
    const login = await tessera(['login'], { input: `alice\n${ALICE_PASSWORD}\n${ALICE_NEW_PASSWORD}\n` });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stderr).toContain('The password of alice was set by someone else: choose your own.');
    const file = join(configHome, 'tessera', 'credentials.json');
    expect(login.stdout).toBe(`signed in to ${server.url} as alice; saved the API token "cli on ${hostname()}" in ${file}\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(file, 'utf8')) as { servers: Record<string, { token: string; user: string }> };
    expect(saved.servers[server.url]!.user).toBe('alice');
    aliceToken = saved.servers[server.url]!.token;
    expect(aliceToken).toMatch(/^tsr_/);

    // The saved login wins over the runtime file.
    const me = await tessera(['whoami']);
    expect(me.code, me.stderr).toBe(0);
    expect(me.stdout).toMatch(/^user\s+alice \(Alice A\.\)$/m);
    expect(me.stdout).toMatch(/^admin\s+no$/m);
    expect(me.stdout).toContain(`token     from \`tessera login\` (${file})`);
    expect(me.stdout).toMatch(/^lung\s+scientist$/m);
    // The session of the login is signed out; the new password works, the first one does not.
    expect(await call('POST', '/api/auth/sign-in', { username: 'alice', password: ALICE_PASSWORD })).toBe(401);
    expect(await call('POST', '/api/auth/sign-in', { username: 'alice', password: ALICE_NEW_PASSWORD })).toBe(200);
  });

  it('takes TESSERA_TOKEN before the runtime file', async () => {
    const me = await tessera(['whoami', '--json'], { env: { TESSERA_TOKEN: aliceToken, XDG_CONFIG_HOME: join(root, 'no-config') } });
    expect(me.code, me.stderr).toBe(0);
    const j = JSON.parse(me.stdout) as { user: { name: string; admin: boolean }; projects: { project: string; role: string }[]; token_from: string; via: string };
    expect(j.user).toMatchObject({ name: 'alice', admin: false });
    expect(j.projects).toEqual([{ project: 'lung', role: 'scientist' }]);
    expect(j.token_from).toBe('env');
    expect(j.via).toBe('token');
  });

  it("answers a scientist's add-member with the server's 403: the role it takes", async () => {
    const r = await tessera(['projects', 'add-member', 'lung', 'alice', '--role', 'principal-investigator']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error: your role in project "lung" is scientist');
    expect(r.stderr).toContain('takes a principal investigator of the project');
  });

  it('changes her own password from stdin', async () => {
    const r = await tessera(['password'], { input: `${ALICE_NEW_PASSWORD}\n${ALICE_LAST_PASSWORD}\n` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('changed the password of alice; their other browser sessions are signed out\n');
    expect(await call('POST', '/api/auth/sign-in', { username: 'alice', password: ALICE_LAST_PASSWORD })).toBe(200);
  });

  it('logs out: revokes the saved token, which then gets 401, and forgets it', async () => {
    const r = await tessera(['logout']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`signed out of ${server.url}: revoked the token "cli on ${hostname()}" of alice and forgot it\n`);
    const saved = JSON.parse(await readFile(join(configHome, 'tessera', 'credentials.json'), 'utf8')) as { servers: Record<string, unknown> };
    expect(saved.servers).toEqual({});
    const old = await tessera(['whoami'], { env: { TESSERA_TOKEN: aliceToken } });
    expect(old.code).toBe(1);
    expect(old.stderr).toContain(notSignedIn(server.url));
    expect(old.stderr).toContain('The server refused the token from TESSERA_TOKEN: it is revoked, expired, or of another server.');
  });

  it('creates a token printed alone on stdout, lists and revokes it', async () => {
    const created = await tessera(['token', 'create', 'nightly export', '--expires-in-days', '7']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^tsr_[A-Za-z0-9_-]{43}\n$/);
    expect(created.stderr).toContain('created the API token "nightly export"');
    expect(created.stderr).toContain('It is shown this once');
    const token = created.stdout.trim();
    const list = await tessera(['token', 'list'], { env: { TESSERA_TOKEN: token } });
    const line = list.stdout.split('\n').find((l) => l.includes('nightly export'))!;
    expect(line).toContain(`${token.slice(0, 8)}…`);
    const id = line.split(/\s+/)[0]!;
    expect((await tessera(['token', 'revoke', id])).stdout).toBe(`revoked the token ${id}\n`);
    expect(await call('GET', '/api/auth/me', undefined, token)).toBe(401);
  });

  it('resets a password, deletes a user only with --yes, and shows the audit log', async () => {
    const reset = await tessera(['users', 'reset-password', 'bob']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/^[A-Za-z0-9_-]{24}\n$/);
    expect(await call('POST', '/api/auth/sign-in', { username: 'bob', password: reset.stdout.trim() })).toBe(200);
    const [deleted, audit] = await Promise.all([tessera(['users', 'delete', 'bob', '--yes']), tessera(['audit', '--actor', 'alice', '--action', 'sign-in'])]);
    expect(deleted.stdout).toBe('deleted the user bob\n');
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout.split('\n')[0]).toMatch(/^AT\s+ACTOR\s+ACTION\s+OUTCOME\s+PROJECT\s+TARGET\s+ADDRESS$/);
    expect(audit.stdout).toMatch(/\salice\s+sign-in\s+ok\s+-\s+password\s/);
  });

  it('never prints a password or a token it did not make for printing', () => {
    const secrets = [ALICE_PASSWORD, ALICE_NEW_PASSWORD, ALICE_LAST_PASSWORD, runtimeToken, aliceToken];
    expect(outputs.length).toBeGreaterThan(12);
    for (const { args, out } of outputs) for (const s of secrets) expect(out.includes(s), `${args.join(' ')} printed a secret`).toBe(false);
  });
});

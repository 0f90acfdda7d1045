import { readFile } from 'node:fs/promises';
import type { ProjectRole } from '@tessera/api';
import type { TestServer } from './test-server.ts';

/** A caller of a test server with access control on: a user's API token, and JSON calls with it. */
export interface Caller {
  name: string;
  token: string;
  /** JSON over fetch with `Authorization: Bearer <token>`: returns status and parsed body. */
  call: <T = any>(method: string, path: string, body?: unknown) => Promise<{ status: number; body: T }>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** JSON calls with a bearer token (a user's, a run's, an instance's). */
export function withToken(url: string, token: string): Caller['call'] {
  return async (method, path, body) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
  };
}

/** The admin of a loopback test server with `auth: 'on'`: the token of its runtime file, as this machine's CLI finds it. */
export async function adminOf(s: TestServer): Promise<Caller> {
  const file = s.tessera.runtimeFile;
  if (!file) throw new Error('the test server wrote no runtime file: start it with auth: "on" on a loopback host');
  const { token } = JSON.parse(await readFile(file, 'utf8')) as { token: string };
  return { name: 'admin', token, call: withToken(s.url, token) };
}

/**
 * A user with these project roles and an API token of their own, made as a person would:
 * an admin creates the user and sets the memberships; the user signs in, chooses a
 * password, and creates a token.
 */
export async function addUser(s: TestServer, admin: Caller, name: string, roles: Record<string, ProjectRole>): Promise<Caller> {
  const first = `${name}-first-password`;
  const created = await admin.call('POST', '/api/users', { name, password: first });
  if (created.status !== 201) throw new Error(`creating user ${name}: ${created.status} ${JSON.stringify(created.body)}`);
  for (const [project, role] of Object.entries(roles)) {
    const set = await admin.call('PUT', `/api/projects/${project}/members/${name}`, { role });
    if (set.status !== 200) throw new Error(`making ${name} a ${role} of ${project}: ${set.status} ${JSON.stringify(set.body)}`);
  }
  const signIn = await fetch(`${s.url}/api/auth/sign-in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: name, password: first }) });
  if (signIn.status !== 200) throw new Error(`signing in as ${name}: ${signIn.status} ${await signIn.text()}`);
  const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
  const asSession = async (path: string, body: unknown): Promise<Response> =>
    fetch(`${s.url}${path}`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const changed = await asSession('/api/auth/password', { current_password: first, new_password: `${name}-own-password` });
  if (changed.status !== 204) throw new Error(`changing ${name}'s password: ${changed.status} ${await changed.text()}`);
  const token = await asSession('/api/tokens', { name: 'tests' });
  if (token.status !== 201) throw new Error(`creating ${name}'s token: ${token.status} ${await token.text()}`);
  const secret = ((await token.json()) as { token: string }).token;
  return { name, token: secret, call: withToken(s.url, secret) };
}

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTessera, type Tessera } from '../create-tessera.ts';
import type { ProjectRole } from '@tessera/api';
import { newSecret } from '../auth/access-store.ts';
import { loadConfig, type ServerConfig } from '../config.ts';

export interface TestServer {
  tessera: Tessera;
  url: string;
  home: string;
  extRoot: string;
  /** An admin's API token when access control is on (`auth: 'on'`), else undefined. */
  token: string | undefined;
  /** JSON helper over fetch: returns status and parsed body; sends the admin token when access control is on, or `as`'s. */
  call: <T = any>(method: string, path: string, body?: unknown, as?: string) => Promise<{ status: number; body: T }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** A user with these project roles (and admin or not), straight in the store; answers an API token of theirs. */
  userToken: (name: string, roles: Record<string, ProjectRole>, admin?: boolean) => Promise<string>;
  close: () => Promise<void>;
}

/**
 * A real server on a free port over a temp TESSERA_HOME, with the default built-in
 * extensions installed and a temp linked extension root. Access control is off here
 * (TESSERA_AUTH=off, a loopback bind) unless `auth: 'on'` is passed: these servers test
 * what the domains do; the access-control suites (src/auth/) pass `auth: 'on'`. So is the
 * sandbox of local processes (TESSERA_SANDBOX=off, TESSERA_ALLOW_UNSANDBOXED=1), so that a
 * test's tasks may leave marks in its own folders; the sandbox suites (src/sandbox/) pass
 * `sandbox: 'bwrap'`.
 */
export async function startTestServer(overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const home = await mkdtemp(join(tmpdir(), 'tessera-server-'));
  const extRoot = join(home, 'test-extensions');
  await mkdir(extRoot, { recursive: true });
  const config: ServerConfig = {
    ...loadConfig({}),
    port: 0,
    home,
    extensionRoots: [extRoot],
    // A runtime file of a test server goes into its own home, not the user's state folder.
    stateDir: join(home, 'state'),
    runners: ['process'],
    logLevel: 'silent',
    dicomPort: 0,
    seriesQuietSeconds: 0.3,
    checkAnswers: true,
    auth: 'off',
    // Applications on their own origin (a free port) with access control on, as a server would; on the platform's port with it off.
    appsPort: overrides.auth === 'on' ? 0 : 'same',
    sandbox: 'off',
    // With `auth: 'on'` too: local processes without a sandbox are refused then, unless allowed.
    allowUnsandboxed: true,
    ...overrides,
  };
  const tessera = await createTessera(config);
  const url = await tessera.listen();
  const userToken = async (name: string, roles: Record<string, ProjectRole>, admin = false): Promise<string> => {
    const store = tessera.access.store;
    const user = (await store.userByName(name)) ?? (await store.insertUser({
      name, display_name: null, password_hash: null, admin: admin ? 1 : 0, source: 'local', oidc_issuer: null, oidc_subject: null, disabled: 0, must_change_password: 0,
    }));
    for (const [project, role] of Object.entries(roles)) await store.setMembership((await tessera.projects.require(project)).id, user.id, role);
    tessera.access.control.invalidate();
    const secret = newSecret('tsr');
    await store.insertCredential(secret, { kind: 'api', user_id: user.id, name: 'test', project_id: null, role: null, subject: null, expires_at: null });
    return secret;
  };
  const token = config.auth === 'on' ? await userToken('test-admin', {}, true) : undefined;
  return {
    tessera,
    url,
    home,
    extRoot,
    token,
    userToken,
    call: async (method, path, body, as = token) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(as ? { authorization: `Bearer ${as}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
    },
    close: async () => {
      await tessera.close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

/** Writes an extension folder with JSON DAG specs (tasks are shell scripts run as processes). */
export async function writeShellExtension(
  root: string,
  name: string,
  workflows: { id: string; tasks: (Record<string, unknown> & { id: string; sh?: string })[]; workflow_form?: Record<string, unknown>; task_form?: Record<string, unknown> }[],
): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const wf of workflows) {
    const file = `${wf.id}.json`;
    files.push(file);
    const spec = {
      spec_version: 1,
      id: wf.id,
      workflow_form: wf.workflow_form ?? { type: 'object' },
      data_form: { type: 'object' },
      ...(wf.task_form ? { task_form: wf.task_form } : {}),
      tasks: wf.tasks.map(({ sh, ...t }) => ({
        operator: t.id,
        output_dir: t.id,
        ...(sh !== undefined ? { process: { command: ['sh', '-c', sh] } } : {}),
        ...t,
      })),
    };
    await writeFile(join(dir, file), JSON.stringify(spec, null, 2));
  }
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'workflow', workflows: files }));
  return dir;
}

export async function waitFor<T>(check: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

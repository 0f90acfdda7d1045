import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTessera, type Tessera } from '../create-tessera.ts';
import { loadConfig, type ServerConfig } from '../config.ts';

export interface TestServer {
  tessera: Tessera;
  url: string;
  home: string;
  extRoot: string;
  /** JSON helper over fetch: returns status and parsed body. */
  call: <T = any>(method: string, path: string, body?: unknown) => Promise<{ status: number; body: T }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  close: () => Promise<void>;
}

/**
 * A real server on a free port over a temp TESSERA_HOME, with the default built-in
 * extensions installed and a temp linked extension root. Access control is off here
 * (TESSERA_AUTH=off, a loopback bind) unless `auth: 'on'` is passed: these servers test
 * what the domains do; the access-control suites (src/auth/) pass `auth: 'on'`. So is the
 * sandbox of local processes (TESSERA_SANDBOX=off), so that a test's tasks may leave marks
 * in its own folders; the sandbox suites (src/sandbox/) pass `sandbox: 'bwrap'`.
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
    runners: ['process'],
    logLevel: 'silent',
    dicomPort: 0,
    seriesQuietSeconds: 0.3,
    checkAnswers: true,
    auth: 'off',
    sandbox: 'off',
    ...overrides,
  };
  const tessera = await createTessera(config);
  const url = await tessera.listen();
  return {
    tessera,
    url,
    home,
    extRoot,
    call: async (method, path, body) => {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
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
  workflows: { id: string; tasks: (Record<string, unknown> & { id: string; sh?: string })[]; workflow_form?: Record<string, unknown> }[],
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

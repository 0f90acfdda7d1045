import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'undici';
import { pydicomFile } from '../../../dicom/src/__fixtures__/dicom-env.ts';
import { requireSandbox, skipSandbox } from '../../../engine/src/__fixtures__/sandbox-env.ts';
import { addUser, adminOf } from '../__fixtures__/access-fixture.ts';
import { loadConfig } from '../config.ts';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

/**
 * What a process task or application must not read: the server's database, a runtime token
 * file (XDG_STATE_HOME/tessera/servers/<port>.json), another run's workflow dir, another
 * project's result bucket, the server user's home. Each line of the probe says `read` or
 * `denied`; `own` lines are what it must be able to use.
 */
const PROBE = [
  'for f in $TARGETS; do if cat "$f" >/dev/null 2>&1; then echo "read $f"; else echo "denied $f"; fi; done',
  'if ls /root >/dev/null 2>&1; then echo "read /root"; else echo "denied /root"; fi',
  // A secret of /etc (only root may read it) is there, empty; the rest of /etc is readable.
  'if [ -s /etc/shadow ]; then echo "read /etc/shadow"; else echo "denied /etc/shadow"; fi',
  'test -s /etc/passwd && echo "own /etc/passwd"',
  // The network is shared: the platform's API answers.
  'python3 -c "import os, urllib.request; print(\'own api\', urllib.request.urlopen(os.environ[\'TESSERA_API_URL\'] + \'/api/health\').status)"',
].join('\n');

const JUPYTER = '/usr/bin/jupyter-notebook';

describe.skipIf(skipSandbox)('the sandbox of local processes, on a real server (bubblewrap)', () => {
  let s: TestServer;
  let state: string;
  let targets: string[];

  beforeAll(async () => {
    requireSandbox();
    // A runtime token file where a loopback server keeps it, under this test's XDG_STATE_HOME.
    state = await mkdtemp(join(tmpdir(), 'tessera-state-'));
    const { stateDir } = loadConfig({ XDG_STATE_HOME: state });
    await mkdir(join(stateDir, 'servers'), { recursive: true });
    const tokenFile = join(stateDir, 'servers', '1234.json');
    await writeFile(tokenFile, JSON.stringify({ pid: 1234, url: 'http://127.0.0.1:1234', token: 'tsr_not-for-tasks' }));
    s = await startTestServer({ sandbox: 'bwrap', stateDir });
    expect(s.tessera.runners.find((r) => r.name === 'process')?.detail).toMatch(/^local processes \(native launcher\), sandboxed with bubblewrap/);

    // Another run, whose workflow dir holds its output, and another project, whose bucket holds a result.
    await writeShellExtension(s.extRoot, 'sandbox-probe', [
      { id: 'writer', tasks: [{ id: 'write', level: 'batch', sh: 'echo "run secret" > "$WORKFLOW_DIR/secret.txt"' }] },
      {
        id: 'prober',
        workflow_form: { type: 'object', properties: { targets: { type: 'string' } } },
        tasks: [{
          id: 'probe', level: 'batch',
          sh: `{\n${PROBE}\ncat "$WORKFLOW_DIR/conf/conf.json" >/dev/null && echo "own conf"\n} > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/probe.txt"`,
        }],
      },
    ]);
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const writer = await runToEnd(s, 'writer');
    expect(writer.state).toBe('success');
    const other = await s.call('POST', '/api/projects', { name: 'other' });
    expect(other.status).toBe(201);
    const bucket = join(s.home, 'buckets', other.body.id);
    await mkdir(bucket, { recursive: true });
    await writeFile(join(bucket, 'secret.txt'), 'project secret\n');
    targets = [join(s.home, 'tessera.db'), tokenFile, join(writer.workflow_dir, 'secret.txt'), join(bucket, 'secret.txt')];
    for (const t of targets) expect(existsSync(t), t).toBe(true);
  }, 60_000);

  afterAll(async () => {
    await s?.close();
    await rm(state, { recursive: true, force: true });
  });

  /** What a probe must say: every target denied, and its own folder, /etc and the API usable. */
  function expectConfined(lines: string[]): void {
    for (const t of targets) expect(lines, t).toContain(`denied ${t}`);
    expect(lines).toContain('denied /root');
    // On a system whose /etc/shadow only root reads (Debian's is 640 root:shadow).
    if (existsSync('/etc/shadow') && (statSync('/etc/shadow').mode & 0o004) === 0) expect(lines).toContain('denied /etc/shadow');
    expect(lines).toContain('own /etc/passwd');
    expect(lines).toContain('own api 200');
    expect(lines.filter((l) => l.startsWith('read '))).toEqual([]);
  }

  it('a process task reads and writes its own workflow dir, and none of the server\'s database, tokens, other runs or other projects', { timeout: 30_000 }, async () => {
    const run = await runToEnd(s, 'prober', { targets: targets.join(' ') });
    const log = (await s.call('GET', `/api/runs/${run.id}/tasks/probe/log`)).body as string;
    expect(run.state, log).toBe('success');
    const lines = (await readFile(join(run.workflow_dir, 'probe', 'probe.txt'), 'utf8')).trim().split('\n');
    expectConfined(lines);
    expect(lines).toContain('own conf');
  });

  it('a task that rewrites conf/conf.json to name another project still has its results put in its own project', { timeout: 30_000 }, async () => {
    const other = (await s.call('GET', '/api/projects')).body.items.find((p: { name: string }) => p.name === 'other');
    await writeShellExtension(s.extRoot, 'sandbox-conf', [{
      id: 'rewrite-conf',
      tasks: [
        {
          id: 'rewrite', level: 'batch',
          // The workflow dir is the task's to write: conf.json included.
          sh: `python3 - <<'EOF'\nimport json, os\np = os.path.join(os.environ['WORKFLOW_DIR'], 'conf', 'conf.json')\nc = json.load(open(p))\nc['project_form'] = {'id': '${other.id}', 'name': 'other'}\njson.dump(c, open(p, 'w'))\nEOF\necho result > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/result.txt"`,
        },
        { id: 'put', operator: 'put-files', builtin: 'put-files', upstream: ['rewrite'], level: 'batch', input_dir: 'rewrite' },
      ],
    }]);
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const run = await runToEnd(s, 'rewrite-conf');
    expect(run.state, JSON.stringify(run.tasks)).toBe('success');
    expect(JSON.parse(await readFile(join(run.workflow_dir, 'conf', 'conf.json'), 'utf8')).project_form.name, 'the task did rewrite it').toBe('other');
    expect((await s.call('GET', `/api/results/${run.id}?project=admin`)).body.items.map((x: { path: string }) => x.path)).toEqual(['rewrite/result.txt']);
    expect(existsSync(join(s.home, 'buckets', other.id, run.id))).toBe(false);
  });

  it('a task that makes its output dir a link to another project\'s bucket gets nothing out of it: the platform does not follow the link', { timeout: 30_000 }, async () => {
    const other = (await s.call('GET', '/api/projects')).body.items.find((p: { name: string }) => p.name === 'other');
    const bucket = join(s.home, 'buckets', other.id);
    await writeShellExtension(s.extRoot, 'sandbox-link', [{
      id: 'link-out',
      tasks: [
        // The target is not in the sandbox, but a link may name any path: the server would follow it.
        { id: 'leak', level: 'batch', sh: `rm -r "$WORKFLOW_DIR/$OPERATOR_OUT_DIR" && ln -s ${bucket} "$WORKFLOW_DIR/$OPERATOR_OUT_DIR"` },
        { id: 'put', operator: 'put-files', builtin: 'put-files', upstream: ['leak'], level: 'batch', input_dir: 'leak' },
      ],
    }]);
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const run = await runToEnd(s, 'link-out');
    expect(run.state).toBe('failed');
    const put = run.tasks.find((t: { id: string }) => t.id === 'put');
    expect(put.reason).toContain(`put-files: leak/ leads out of the run's workflow dir (a symbolic link to ${bucket}, made by a task of the run)`);
    expect((await s.call('GET', `/api/results/${run.id}?project=admin`)).body.items).toEqual([]);
  });

  it('the built-in extensions run in it: hello-world, and collect-metadata with dcmjs and yazl from the repository\'s node_modules', { timeout: 60_000 }, async () => {
    const hello = await runToEnd(s, 'hello-world');
    expect(hello.state, JSON.stringify(hello.tasks)).toBe('success');
    const dicom = pydicomFile('CT_small.dcm');
    expect(existsSync(dicom), `${dicom} (apt-get install python3-pydicom)`).toBe(true);
    const imported = await fetch(`${s.url}/api/dicom/import?project=admin&dataset=sandboxed`, { method: 'POST', headers: { 'content-type': 'application/dicom' }, body: new Uint8Array(await readFile(dicom)) });
    expect(imported.status, await imported.clone().text()).toBe(200);
    const collected = await runToEnd(s, 'collect-metadata', {}, { dataset_name: 'sandboxed' });
    expect(collected.state, JSON.stringify(collected.tasks)).toBe('success');
    const results = await s.call('GET', `/api/results/${collected.id}?project=admin`);
    expect(results.body.items.map((x: { path: string }) => x.path)).toEqual(['zip-json/metadata.zip']);
  });

  it('a process application sees its instance dir (its HOME) and its project\'s bucket, none of the rest, and is served through the proxy', { timeout: 30_000 }, async () => {
    const ext = join(s.extRoot, 'sandbox-probe-app');
    await mkdir(ext, { recursive: true });
    await writeFile(join(ext, 'probe.sh'), [
      'set -e',
      `TARGETS="${targets.join(' ')}"`,
      `{\n${PROBE}\necho "ok" > "$RESULTS_DIR/from-app.txt" && echo "own bucket"\necho "home=$HOME"\n} > "$HOME/probe.txt" 2>&1`,
      'if touch "$EXTENSION_DIR/written" 2>/dev/null; then echo "read-write extension" >> "$HOME/probe.txt"; fi',
      'cd "$HOME"',
      'exec python3 -m http.server "$PORT" --bind 127.0.0.1',
    ].join('\n'));
    await writeFile(join(ext, 'tessera-extension.json'), JSON.stringify({
      name: 'sandbox-probe-app', version: '1.0.0', kind: 'application',
      app: { process: { command: ['sh', 'probe.sh'] }, ingress: 'strip', health: { path: '/probe.txt', timeout_s: 20 }, instances: 'single', mounts: { results: true } },
    }));
    expect((await s.call('POST', '/api/workflows/reload')).status).toBe(200);
    const launched = await s.call('POST', '/api/applications', { extension: 'sandbox-probe-app' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    const app = await running(s, 'sandbox-probe-app');
    try {
      // Read through the proxy: the sandboxed app listens where the platform expects it.
      const served = await fetch(`${s.url}${app.url}probe.txt`);
      expect(served.status).toBe(200);
      const lines = (await served.text()).trim().split('\n');
      expectConfined(lines);
      const instanceHome = join(s.home, 'apps', app.id, 'home');
      expect(lines).toContain(`home=${instanceHome}`);
      expect(lines).toContain('own bucket');
      expect(lines).not.toContain('read-write extension');
      expect(await readFile(join(instanceHome, 'probe.txt'), 'utf8')).toBe(`${lines.join('\n')}\n`);
      const admin = (await s.call('GET', '/api/projects')).body.items.find((p: { name: string }) => p.name === 'admin');
      expect(await readFile(join(s.home, 'buckets', admin.id, 'from-app.txt'), 'utf8')).toBe('ok\n');
    } finally {
      await s.call('POST', '/api/applications/sandbox-probe-app/stop');
    }
  });

  it.skipIf(!existsSync(JUPYTER) && process.env.CI !== 'true')('Jupyter Notebook starts in the sandbox, is served through the proxy, and its kernel cannot read the database', { timeout: 90_000 }, async () => {
    expect(existsSync(JUPYTER), 'jupyter-notebook (apt-get install jupyter-notebook)').toBe(true);
    expect((await s.call('POST', '/api/extensions/jupyter-notebook/install?wait=true', {})).status).toBe(200);
    const launched = await s.call('POST', '/api/applications', { extension: 'jupyter-notebook' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    const app = await running(s, 'jupyter-notebook', 60_000);
    try {
      const base = `${s.url}${app.url}`;
      expect(await (await fetch(`${base}api`)).json()).toMatchObject({ version: expect.stringMatching(/^6\./) });
      const tree = await fetch(`${base}tree`);
      expect(tree.status).toBe(200);
      const xsrf = /_xsrf=([^;]+)/.exec(tree.headers.getSetCookie().join('; '))?.[1];
      expect(xsrf, 'an _xsrf cookie').toBeDefined();
      const code = [
        'import os',
        `for f in ${JSON.stringify(targets)}:`,
        '    try:',
        '        open(f, "rb").read(1)',
        '        print("read", f)',
        '    except OSError:',
        '        print("denied", f)',
        'print("home=" + os.environ["HOME"])',
      ].join('\n');
      const lines = (await execute(base, xsrf!, code)).trim().split('\n');
      expect(lines).toEqual([...targets.map((t) => `denied ${t}`), `home=${join(s.home, 'apps', app.id, 'home')}`]);
      // Its own state is kept in its instance dir (HOME), not in the server user's home.
      expect(existsSync(join(s.home, 'apps', app.id, 'home', '.ipython')) || existsSync(join(s.home, 'apps', app.id, 'home', '.local'))).toBe(true);
    } finally {
      await s.call('POST', '/api/applications/jupyter-notebook/stop');
    }
  });
});

async function runToEnd(s: TestServer, workflow: string, form: Record<string, unknown> = {}, data: Record<string, unknown> = {}) {
  const job = await s.call('POST', '/api/jobs', { workflow, conf: { workflow_form: form, data_form: data } });
  expect(job.status, JSON.stringify(job.body)).toBe(201);
  const runId: string = job.body.runs[0].id;
  return waitFor(async () => {
    const r = await s.call('GET', `/api/runs/${runId}`);
    return ['success', 'failed', 'canceled'].includes(r.body.state) ? r.body : undefined;
  }, 40_000, `run ${runId} to end`);
}

async function running(s: TestServer, name: string, ms = 20_000) {
  return waitFor(async () => {
    const a = (await s.call('GET', `/api/applications/${name}`)).body;
    if (a.state === 'failed') throw new Error(a.reason);
    return a.state === 'running' ? a : undefined;
  }, ms, `${name} to run`);
}

/** Runs `code` in a new python3 kernel of the Jupyter at `base` over its WebSocket (through the proxy); its stdout. */
async function execute(base: string, xsrf: string, code: string): Promise<string> {
  const auth = { cookie: `_xsrf=${xsrf}`, 'x-xsrftoken': xsrf };
  const kernel = (await (await fetch(`${base}api/kernels`, { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: '{"name":"python3"}' })).json()) as { id: string };
  const ws = new WebSocket(`${base.replace('http:', 'ws:')}api/kernels/${kernel.id}/channels?session_id=${randomUUID()}`, { headers: auth } as never);
  const msgId = randomUUID();
  try {
    const output = new Promise<string>((resolve, reject) => {
      let text = '';
      ws.addEventListener('error', () => reject(new Error('the kernel channel failed')));
      ws.addEventListener('message', (e) => {
        const m = JSON.parse(String(e.data)) as { header: { msg_type: string }; parent_header: { msg_id?: string }; content: Record<string, unknown> };
        if (m.parent_header.msg_id !== msgId) return;
        if (m.header.msg_type === 'stream') text += String(m.content.text);
        if (m.header.msg_type === 'error') reject(new Error(String(m.content.evalue)));
        if (m.header.msg_type === 'status' && m.content.execution_state === 'idle') resolve(text);
      });
    });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('could not open the kernel channel through the proxy')));
    });
    ws.send(JSON.stringify({
      header: { msg_id: msgId, msg_type: 'execute_request', username: 'test', session: randomUUID(), date: new Date().toISOString(), version: '5.3' },
      parent_header: {}, metadata: {}, channel: 'shell',
      content: { code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false },
    }));
    return await output;
  } finally {
    ws.close();
  }
}

describe.skipIf(skipSandbox)('the sandbox with access control on, as a server runs by default', () => {
  let s: TestServer | undefined;
  afterAll(async () => {
    await s?.close();
  });

  it('a scientist\'s process task calls the API with its scoped token and cannot read the database or the server\'s runtime file', { timeout: 60_000 }, async () => {
    // The defaults of a server: access control on, nobody allowed unsandboxed processes.
    s = await startTestServer({ auth: 'on', sandbox: 'auto', allowUnsandboxed: false });
    expect(s.tessera.runners.find((r) => r.name === 'process')?.detail).toMatch(/^local processes \(native launcher\), sandboxed with bubblewrap/);
    const runtimeFile = s.tessera.runtimeFile!;
    expect(existsSync(runtimeFile), 'the runtime file with the admin token').toBe(true);
    const admin = await adminOf(s);
    expect((await admin.call('POST', '/api/projects', { name: 'lab' })).status).toBe(201);
    const sci = await addUser(s, admin, 'sci', { lab: 'scientist' });
    await writeShellExtension(s.extRoot, 'sandbox-scoped', [{
      id: 'scoped-probe',
      tasks: [{
        id: 'probe', level: 'batch',
        sh: [
          'out="$WORKFLOW_DIR/$OPERATOR_OUT_DIR/probe.txt"',
          `for f in ${join(s.home, 'tessera.db')} ${runtimeFile}; do if cat "$f" >/dev/null 2>&1; then echo "read $f"; else echo "denied $f"; fi; done > "$out"`,
          'python3 -c "import json, os, urllib.request; r = urllib.request.urlopen(urllib.request.Request(os.environ[\'TESSERA_API_URL\'] + \'/api/auth/me\', headers={\'Authorization\': \'Bearer \' + os.environ[\'TESSERA_API_TOKEN\']})); print(\'me\', r.status, json.load(r)[\'user\'][\'name\'])" >> "$out"',
        ].join('\n'),
      }],
    }]);
    expect((await admin.call('POST', '/api/workflows/reload')).status).toBe(200);
    const job = await sci.call('POST', '/api/jobs', { workflow: 'scoped-probe', project: 'lab' });
    expect(job.status, JSON.stringify(job.body)).toBe(201);
    const runId: string = job.body.runs[0].id;
    const run = await waitFor(async () => {
      const r = await sci.call('GET', `/api/runs/${runId}`);
      return ['success', 'failed', 'canceled'].includes(r.body.state) ? r.body : undefined;
    }, 30_000, 'the run to end');
    const log = (await sci.call('GET', `/api/runs/${runId}/tasks/probe/log`)).body as string;
    expect(run.state, log).toBe('success');
    expect((await readFile(join(run.workflow_dir, 'probe', 'probe.txt'), 'utf8')).trim().split('\n')).toEqual([
      `denied ${join(s.home, 'tessera.db')}`,
      `denied ${runtimeFile}`,
      'me 200 sci',
    ]);
  });
});

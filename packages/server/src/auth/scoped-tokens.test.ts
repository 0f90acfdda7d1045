import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSyntheticCt } from '../../../dicom/src/__fixtures__/synthetic-ct.ts';
import { BASE_IMAGE, dockerProblem, dockerSocket, skipDocker } from '../../../engine/src/__fixtures__/docker-env.ts';
import { addUser, adminOf, withToken, type Caller } from '../__fixtures__/access-fixture.ts';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';
import { loadConfig, type ServerConfig } from '../config.ts';
import { createTessera, type Tessera } from '../create-tessera.ts';

/** A Node script an operator or app runs: GET $TESSERA_API_URL/api/auth/me and /api/series with $TESSERA_API_TOKEN, as JSON on stdout. */
const WHOAMI_MJS = `
const url = process.env.TESSERA_API_URL;
const headers = { authorization: 'Bearer ' + process.env.TESSERA_API_TOKEN };
const me = await fetch(url + '/api/auth/me', { headers });
const series = await fetch(url + '/api/series?project=lab', { headers });
process.stdout.write(JSON.stringify({ url, me: { status: me.status, body: await me.json() }, series: { status: series.status, body: await series.json() } }));
`;

/** The same in Python, for the test image (debootstrap minbase + python3: no curl, no wget). */
const WHOAMI_PY = `
import json, os, urllib.error, urllib.request
url = os.environ['TESSERA_API_URL']
def get(path):
    req = urllib.request.Request(url + path, headers={'Authorization': 'Bearer ' + os.environ['TESSERA_API_TOKEN']})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return {'status': r.status, 'body': json.load(r)}
    except urllib.error.HTTPError as e:
        return {'status': e.code, 'body': json.load(e)}
out = os.environ.get('WHOAMI_OUT') or os.path.join(os.environ['WORKFLOW_DIR'], os.environ['OPERATOR_OUT_DIR'], 'whoami.json')
with open(out, 'w') as f:
    json.dump({'url': url, 'token': os.environ['TESSERA_API_TOKEN'], 'me': get('/api/auth/me'), 'series': get('/api/series?project=lab')}, f)
`;

interface World {
  s: TestServer;
  admin: Caller;
  sci: Caller;
  pi: Caller;
  /** A series of project lab, and one of project other. */
  labSeries: string;
  otherSeries: string;
}

/** A server with access control on; projects lab and other; a scientist and a principal investigator of lab; a series in each project. */
async function world(overrides: Parameters<typeof startTestServer>[0] = {}): Promise<World> {
  const s = await startTestServer({ auth: 'on', ...overrides });
  const admin = await adminOf(s);
  for (const name of ['lab', 'other']) expect((await admin.call('POST', '/api/projects', { name })).status).toBe(201);
  const sci = await addUser(s, admin, 'sci', { lab: 'scientist' });
  const pi = await addUser(s, admin, 'pi', { lab: 'principal-investigator' });
  const upload = async (project: string, key: number): Promise<string> => {
    const ct = await writeSyntheticCt(join(s.home, `ct-${key}`), 1, key);
    const res = await fetch(`${s.url}/api/dicom/import?project=${project}`, {
      method: 'POST', headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/dicom' }, body: new Uint8Array(await readFile(ct.files[0]!)),
    });
    expect(res.status, await res.clone().text()).toBe(200);
    return ct.series;
  };
  return { s, admin, sci, pi, labSeries: await upload('lab', 71), otherSeries: await upload('other', 72) };
}

async function runOf(w: World, caller: Caller, workflow: string, conf: Record<string, unknown> = {}): Promise<{ id: string; job: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const job = await caller.call('POST', '/api/jobs', { workflow, project: 'lab', conf });
  expect(job.status, JSON.stringify(job.body)).toBe(201);
  return { id: job.body.runs[0].id, job: job.body };
}

async function logOf(w: World, runId: string, task: string): Promise<string> {
  return (await w.admin.call('GET', `/api/runs/${runId}/tasks/${task}/log`)).body as string;
}

describe('runs and application instances act with their starter\'s rights (access control on, local processes)', () => {
  let w: World;
  beforeAll(async () => {
    w = await world();
    const dir = await writeShellExtension(w.s.extRoot, 'scoped', [
      {
        // Calls the API with its token, then hands the token to the test and waits, so that the test can use it while the run runs.
        id: 'hold-token',
        tasks: [{ id: 'hold', level: 'batch', sh: 'node whoami.mjs > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/whoami.json" && printf %s "$TESSERA_API_TOKEN" > "$WORKFLOW_DIR/token" && while [ ! -e "$WORKFLOW_DIR/go" ]; do sleep 0.05; done' }],
      },
      { id: 'fails', tasks: [{ id: 'boom', level: 'batch', sh: 'exit 3' }] },
      {
        // A built-in data operator after a task that waits for the test.
        id: 'wait-then-read',
        tasks: [
          { id: 'wait', level: 'batch', sh: 'while [ ! -e "$WORKFLOW_DIR/go" ]; do sleep 0.05; done' },
          { id: 'get-input', operator: 'get-input', builtin: 'get-input', upstream: ['wait'], level: 'batch', output_dir: 'get-input' },
        ],
      },
    ]);
    await writeFile(join(dir, 'whoami.mjs'), WHOAMI_MJS);
    const app = join(w.s.extRoot, 'whoami-app');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'app.mjs'), `
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
writeFileSync('token-' + process.env.TESSERA_APP_ID, process.env.TESSERA_API_TOKEN ?? '');
createServer((req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
`);
    await writeFile(join(app, 'tessera-extension.json'), JSON.stringify({
      name: 'whoami-app', version: '1.0.0', kind: 'application',
      app: { process: { command: ['node', 'app.mjs'] }, ingress: 'strip', health: { path: '/', timeout_s: 30 }, instances: 'single' },
    }));
    expect((await w.admin.call('POST', '/api/workflows/reload')).status).toBe(200);
  }, 60_000);
  afterAll(async () => {
    await w?.s.close();
  });

  it("gives a scientist's run a token of its project with the scientist's role: it reads the project's series, gets 404 elsewhere and 403 for deleting, and stops working when the run ends", { timeout: 60_000 }, async () => {
    const { id, job } = await runOf(w, w.sci, 'hold-token');
    expect({ by: job.started_by, role: job.started_role, run: job.runs[0].started_by }).toEqual({ by: 'sci', role: 'scientist', run: 'sci' });
    const run = (await w.sci.call('GET', `/api/runs/${id}`)).body;
    const token = await waitFor(() => readFile(join(run.workflow_dir, 'token'), 'utf8').catch(() => undefined), 30_000, 'the task to hand over its token');
    expect(token).toMatch(/^tsk_[A-Za-z0-9_-]{43}$/);
    // What the task itself saw, calling TESSERA_API_URL as it is (a local process reaches the loopback URL).
    const seen = JSON.parse(await readFile(join(run.workflow_dir, 'hold', 'whoami.json'), 'utf8'));
    expect(seen.url).toBe(w.s.url);
    expect(seen.me.status).toBe(200);
    expect({ user: seen.me.body.user.name, via: seen.me.body.via, projects: seen.me.body.projects }).toEqual({ user: 'sci', via: 'run', projects: [{ project: 'lab', role: 'scientist' }] });
    expect(seen.series.body.items.map((x: { series_instance_uid: string }) => x.series_instance_uid)).toEqual([w.labSeries]);

    const asRun = withToken(w.s.url, token);
    expect((await asRun('GET', `/api/series/${w.labSeries}?project=lab`)).status).toBe(200);
    // Another project does not exist for it, even one its starter's admin could see.
    const elsewhere = await asRun('GET', `/api/series?project=other`);
    expect(elsewhere.status).toBe(404);
    expect((await asRun('GET', `/api/series/${w.otherSeries}?project=other`)).status).toBe(404);
    const del = await asRun('DELETE', `/api/series/${w.labSeries}?project=lab`);
    expect(del.status).toBe(403);
    expect(del.body.error.message).toMatch(/your role in project "lab" is scientist \(this run's token acts with its starter's role\).*principal investigator/);
    // No admin rights, and no minting of tokens that would outlive the run.
    expect((await asRun('GET', '/api/users')).status).toBe(403);
    expect((await asRun('POST', '/api/tokens', { name: 'escape' })).status).toBe(403);
    // Only a hash of it is stored.
    const stored = await w.s.tessera.access.store.db.selectFrom('credentials').selectAll().where('kind', '=', 'run').execute();
    expect(stored.map((c) => ({ subject: c.subject, role: c.role, revoked: c.revoked_at !== null }))).toEqual([{ subject: id, role: 'scientist', revoked: false }]);
    expect(JSON.stringify(stored)).not.toContain(token.slice(4));

    await writeFile(join(run.workflow_dir, 'go'), '');
    const ended = await w.s.tessera.scheduler.waitForRun(id);
    expect(ended.state).toBe('success');
    const after = await asRun('GET', `/api/series?project=lab`);
    expect(after.status, 'the token of an ended run').toBe(401);
    expect((await logOf(w, id, 'hold'))).not.toContain(token);
  });

  it("runs built-in operators with the starter's rights: a run whose starter left the project reads none of its series", { timeout: 60_000 }, async () => {
    const conf = { data_form: { identifiers: [w.labSeries] } };
    const [bySci, byPi] = [await runOf(w, w.sci, 'wait-then-read', conf), await runOf(w, w.pi, 'wait-then-read', conf)];
    expect((await w.admin.call('DELETE', '/api/projects/lab/members/sci')).status).toBe(204);
    try {
      for (const r of [bySci, byPi]) {
        const dir = join(w.s.home, 'workflows', r.id);
        await waitFor(() => readFile(join(dir, 'conf', 'conf.json')).then(() => true, () => false), 15_000, `the workflow dir of ${r.id}`);
        await writeFile(join(dir, 'go'), '');
      }
      const [refused, read] = [await w.s.tessera.scheduler.waitForRun(bySci.id), await w.s.tessera.scheduler.waitForRun(byPi.id)];
      expect(refused.state).toBe('failed');
      const task = (await w.admin.call('GET', `/api/runs/${bySci.id}`)).body.tasks.find((t: { id: string }) => t.id === 'get-input');
      expect(task.reason).toBe('this run acts with the rights of "sci", who is no longer a member of project "lab" (or was disabled or deleted): it may not read its series');
      expect(read.state, await logOf(w, byPi.id, 'get-input')).toBe('success');
      expect(await logOf(w, byPi.id, 'get-input')).toContain(`get-input: ${w.labSeries}: 1 file(s)`);
    } finally {
      expect((await w.admin.call('PUT', '/api/projects/lab/members/sci', { role: 'scientist' })).status).toBe(200);
    }
  });

  it("runs the built-in delete-series extension with its starter's rights: a scientist's run deletes nothing and says which role it takes; a principal investigator's deletes", { timeout: 60_000 }, async () => {
    const conf = { data_form: { identifiers: [w.labSeries] } };
    const bySci = await runOf(w, w.sci, 'delete-series', conf);
    const failed = await w.s.tessera.scheduler.waitForRun(bySci.id);
    expect(failed.state).toBe('failed');
    const log = await logOf(w, bySci.id, 'delete-series');
    expect(log).toContain(`delete-series: ${w.labSeries}: not deleted (HTTP 403)`);
    expect(log).toMatch(/your role in project "lab" is scientist .*takes a principal investigator of the project/);
    expect((await w.sci.call('GET', `/api/series/${w.labSeries}?project=lab`)).status, 'the series is still there').toBe(200);
    // The audit log names who the run acted for, and the run.
    const audit = (await w.admin.call('GET', '/api/audit?action=data-deleted')).body.items;
    expect(audit.filter((e: { details: { subject?: string } }) => e.details.subject === bySci.id).map((e: Record<string, unknown>) => ({ actor: e.actor, outcome: e.outcome, project: e.project })))
      .toEqual([{ actor: 'sci', outcome: 'refused', project: 'lab' }, { actor: 'sci', outcome: 'refused', project: 'lab' }]);

    const byPi = await runOf(w, w.pi, 'delete-series', conf);
    expect(byPi.job.started_role).toBe('principal-investigator');
    const done = await w.s.tessera.scheduler.waitForRun(byPi.id);
    expect(done.state, await logOf(w, byPi.id, 'delete-series')).toBe('success');
    expect(await logOf(w, byPi.id, 'delete-series')).toContain(`delete-series: ${w.labSeries}: deleted (1 instances)`);
    expect((await w.sci.call('GET', `/api/series/${w.labSeries}?project=lab`)).status, 'the series is gone').toBe(404);
  });

  it('acts, after a retry, with the rights of whoever retried: a principal investigator\'s failed run retried by a scientist runs as the scientist', { timeout: 30_000 }, async () => {
    const { id } = await runOf(w, w.pi, 'fails');
    expect((await w.s.tessera.scheduler.waitForRun(id)).state).toBe('failed');
    const retried = await w.sci.call('POST', `/api/runs/${id}/retry`);
    expect(retried.status).toBe(200);
    expect({ by: retried.body.started_by, role: retried.body.started_role, attempt: retried.body.attempt }).toEqual({ by: 'sci', role: 'scientist', attempt: 2 });
    await w.s.tessera.scheduler.waitForRun(id);
    const job = (await w.pi.call('GET', `/api/jobs/${retried.body.job_id}`)).body;
    expect({ job: job.started_by, run: job.runs[0].started_by }, 'the job keeps who triggered it').toEqual({ job: 'pi', run: 'sci' });
  });

  it('runs what an arrival trigger starts as no user, a scientist of the series\' project', { timeout: 60_000 }, async () => {
    const dir = await writeShellExtension(w.s.extRoot, 'on-arrival', [
      { id: 'arrival-whoami', tasks: [{ id: 'whoami', level: 'batch', sh: 'node whoami.mjs > "$WORKFLOW_DIR/$OPERATOR_OUT_DIR/whoami.json"' }] },
    ]);
    await writeFile(join(dir, 'whoami.mjs'), WHOAMI_MJS);
    const manifest = JSON.parse(await readFile(join(dir, 'tessera-extension.json'), 'utf8'));
    await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ ...manifest, triggers: [{ workflow: 'arrival-whoami', when: { Modality: 'CT' }, projects: ['lab'] }] }));
    expect((await w.admin.call('POST', '/api/workflows/reload')).status).toBe(200);
    const ct = await writeSyntheticCt(join(w.s.home, 'ct-arrival'), 1, 73);
    const upload = await fetch(`${w.s.url}/api/dicom/import?project=lab`, {
      method: 'POST', headers: { authorization: `Bearer ${w.pi.token}`, 'content-type': 'application/dicom' }, body: new Uint8Array(await readFile(ct.files[0]!)),
    });
    expect(upload.status).toBe(200);
    const run = await waitFor(async () => (await w.admin.call('GET', '/api/runs?workflow=arrival-whoami')).body.items[0], 30_000, 'the arrival trigger to start a run');
    expect({ by: run.started_by, role: run.started_role }, 'no user started it').toEqual({ by: null, role: null });
    const ended = await w.s.tessera.scheduler.waitForRun(run.id);
    expect(ended.state, await logOf(w, run.id, 'whoami')).toBe('success');
    const seen = JSON.parse(await readFile(join(ended.workflow_dir, 'whoami', 'whoami.json'), 'utf8'));
    expect({ status: seen.me.status, user: seen.me.body.user.name, admin: seen.me.body.user.admin, via: seen.me.body.via, projects: seen.me.body.projects }).toEqual({
      status: 200, user: 'arrival trigger', admin: false, via: 'run', projects: [{ project: 'lab', role: 'scientist' }],
    });
    expect(seen.series.body.items.map((x: { series_instance_uid: string }) => x.series_instance_uid)).toContain(ct.series);
  });

  it("gives an application instance a token of its project with its launcher's role, that works while it runs and not after it stops", { timeout: 60_000 }, async () => {
    const launched = await w.sci.call('POST', '/api/applications', { extension: 'whoami-app', project: 'lab' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    await waitFor(async () => {
      const a = (await w.sci.call('GET', '/api/applications/whoami-app?project=lab')).body;
      if (a.state === 'failed') throw new Error(a.reason);
      return a.state === 'running';
    }, 30_000, 'whoami-app to run');
    const token = await readFile(join(w.s.extRoot, 'whoami-app', `token-${launched.body.id}`), 'utf8');
    expect(token).toMatch(/^tsa_/);
    const asApp = withToken(w.s.url, token);
    const me = await asApp('GET', '/api/auth/me');
    expect({ status: me.status, via: me.body.via, user: me.body.user?.name, projects: me.body.projects }).toEqual({
      status: 200, via: 'application', user: 'sci', projects: [{ project: 'lab', role: 'scientist' }],
    });
    expect((await asApp('GET', '/api/series?project=lab')).status).toBe(200);
    expect((await asApp('GET', '/api/series?project=other')).status).toBe(404);
    expect((await asApp('DELETE', `/api/series/${w.otherSeries}?project=lab`)).status).toBe(403);

    expect((await w.sci.call('DELETE', '/api/applications/whoami-app?project=lab')).body.state).toBe('stopped');
    expect((await asApp('GET', '/api/auth/me')).status, 'the token of a stopped instance').toBe(401);
  });
});

describe('scoped tokens across a server restart', () => {
  it('revokes at the next start the token of a try that ended with the server, and gives the try that runs again a new one', { timeout: 60_000 }, async () => {
    const home = await mkdtemp(join(tmpdir(), 'tessera-scoped-restart-'));
    const extRoot = join(home, 'linked');
    await writeShellExtension(extRoot, 'holder', [{
      id: 'hold-tokens',
      tasks: [{ id: 'hold', level: 'batch', sh: 'echo "$TESSERA_API_TOKEN" >> "$WORKFLOW_DIR/tokens" && while [ ! -e "$WORKFLOW_DIR/go" ]; do sleep 0.05; done' }],
    }]);
    const config: ServerConfig = {
      ...loadConfig({}), port: 0, home, extensionRoots: [extRoot], runners: ['process'], logLevel: 'silent', dicomPort: 'off', checkAnswers: true, auth: 'on', stateDir: join(home, 'state'),
    };
    let t: Tessera = await createTessera(config);
    try {
      let s = { tessera: t, url: await t.listen() } as TestServer;
      const sci = await addUser(s, await adminOf(s), 'sci', { admin: 'scientist' });
      const run = (await sci.call('POST', '/api/jobs', { workflow: 'hold-tokens', project: 'admin' })).body.runs[0];
      const tokens = join(home, 'workflows', run.id, 'tokens');
      const lines = async (n: number): Promise<string[]> => waitFor(async () => {
        const got = (await readFile(tokens, 'utf8').catch(() => '')).split('\n').filter(Boolean);
        return got.length >= n ? got : undefined;
      }, 30_000, `${n} token(s) handed over`);
      const [first] = await lines(1);
      expect((await withToken(s.url, first!)('GET', '/api/auth/me')).status).toBe(200);
      // The local process stops with the server, and runs again as a new try at the next start.
      await t.close();
      t = await createTessera(config);
      s = { tessera: t, url: await t.listen() } as TestServer;
      const [, second] = await lines(2);
      expect(second).not.toBe(first);
      expect((await withToken(s.url, first!)('GET', '/api/auth/me')).status, 'the stopped try\'s token').toBe(401);
      expect((await withToken(s.url, second!)('GET', '/api/auth/me')).status, 'the new try\'s token').toBe(200);
      await writeFile(join(home, 'workflows', run.id, 'go'), '');
      expect((await t.scheduler.waitForRun(run.id)).state).toBe('success');
      expect((await withToken(s.url, second!)('GET', '/api/auth/me')).status).toBe(401);
    } finally {
      await t.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});

describe.skipIf(skipDocker)('tasks and applications in containers reach the API with their token (access control on, Docker)', () => {
  let w: World;
  beforeAll(async () => {
    expect(dockerProblem, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeUndefined();
    w = await world({ runners: ['docker', 'process'], dockerSocket });
    await writeShellExtension(w.s.extRoot, 'in-container', [
      { id: 'container-whoami', tasks: [{ id: 'whoami', level: 'batch', container: { image: BASE_IMAGE, command: ['python3', '-c', WHOAMI_PY] } }] },
    ]);
    const app = join(w.s.extRoot, 'container-app');
    await mkdir(app, { recursive: true });
    await writeFile(join(app, 'whoami.py'), WHOAMI_PY);
    await writeFile(join(app, 'tessera-extension.json'), JSON.stringify({
      name: 'container-app', version: '1.0.0', kind: 'application',
      app: {
        // What the app sees goes to its project's result bucket, mounted at $RESULTS_DIR.
        container: { image: BASE_IMAGE, command: ['sh', '-c', `WHOAMI_OUT="$RESULTS_DIR/app-whoami.json" python3 -c "$WHOAMI" && exec python3 -c "$SERVE"`], port: 8000 },
        // As PID 1 a process ignores SIGTERM unless it handles it: this one stops at once.
        env: { WHOAMI: WHOAMI_PY, SERVE: "import http.server, os, signal, sys\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\nhttp.server.ThreadingHTTPServer(('', int(os.environ['PORT'])), http.server.SimpleHTTPRequestHandler).serve_forever()\n" },
        ingress: 'strip', health: { timeout_s: 30 }, mounts: { results: true },
      },
    }));
    expect((await w.admin.call('POST', '/api/workflows/reload')).status).toBe(200);
  }, 60_000);
  afterAll(async () => {
    await w?.s.close();
  });

  it('serves containers at http://tessera.internal on the Docker bridge, where a task reads its project with its token', { timeout: 60_000 }, async () => {
    expect(w.s.tessera.runnerNotes.join('\n')).toMatch(/containers reach the API at http:\/\/tessera\.internal:\d+ \(a listener on the Docker bridge/);
    const { id } = await runOf(w, w.sci, 'container-whoami');
    const run = await w.s.tessera.scheduler.waitForRun(id);
    expect(run.state, await logOf(w, id, 'whoami')).toBe('success');
    const seen = JSON.parse(await readFile(join(run.workflow_dir, 'whoami', 'whoami.json'), 'utf8'));
    expect(seen.url).toMatch(/^http:\/\/tessera\.internal:\d+$/);
    expect(seen.me.status, JSON.stringify(seen.me.body)).toBe(200);
    expect({ user: seen.me.body.user.name, via: seen.me.body.via, projects: seen.me.body.projects }).toEqual({ user: 'sci', via: 'run', projects: [{ project: 'lab', role: 'scientist' }] });
    expect(seen.series.body.items.map((x: { series_instance_uid: string }) => x.series_instance_uid)).toEqual([w.labSeries]);
    // Revoked with the run's end.
    expect((await withToken(w.s.url, seen.token)('GET', '/api/auth/me')).status).toBe(401);
    // Without a token, the bridge listener answers nothing but the public routes (its address is an allowed Host).
    const anonymous = await fetch(`http://${bridgeAddress(w)}:${new URL(seen.url).port}/api/series?project=lab`);
    expect(anonymous.status).toBe(401);
  });

  it('gives an application container its token and the same way to the API; stopping it revokes the token', { timeout: 60_000 }, async () => {
    const launched = await w.sci.call('POST', '/api/applications', { extension: 'container-app', project: 'lab' });
    expect(launched.status, JSON.stringify(launched.body)).toBe(202);
    await waitFor(async () => {
      const a = (await w.sci.call('GET', '/api/applications/container-app?project=lab')).body;
      if (a.state === 'failed') throw new Error(a.reason);
      return a.state === 'running';
    }, 30_000, 'container-app to run');
    const lab = (await w.admin.call('GET', '/api/projects/lab')).body;
    const seen = JSON.parse(await readFile(join(w.s.home, 'buckets', lab.id, 'app-whoami.json'), 'utf8'));
    expect(seen.url).toMatch(/^http:\/\/tessera\.internal:\d+$/);
    expect({ status: seen.me.status, via: seen.me.body.via, projects: seen.me.body.projects }).toEqual({ status: 200, via: 'application', projects: [{ project: 'lab', role: 'scientist' }] });
    expect((await withToken(w.s.url, seen.token)('GET', '/api/auth/me')).status).toBe(200);
    expect((await w.sci.call('DELETE', '/api/applications/container-app?project=lab')).body.state).toBe('stopped');
    expect((await withToken(w.s.url, seen.token)('GET', '/api/auth/me')).status).toBe(401);
  });
});

/** The address of the server's listener on the Docker bridge, from the start note. */
function bridgeAddress(w: World): string {
  const m = /a listener on the Docker bridge, ([\d.]+):\d+/.exec(w.s.tessera.runnerNotes.join('\n'));
  if (!m) throw new Error('no bridge listener');
  return m[1]!;
}

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSampleCt } from '../../../dicom/src/samples/sample-ct.ts';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

let s: TestServer;
const series: Record<string, string> = {};
let runIds: string[] = [];
let adminId = '';

beforeAll(async () => {
  s = await startTestServer();
  // Three series of three patients, in one dataset.
  for (const patient of ['P-B', 'P-C', 'P-A']) {
    const { files, series: uid } = await writeSampleCt(join(s.home, 'samples', patient), { slices: 2, size: 8, patientId: patient });
    series[patient] = uid;
    const fd = new FormData();
    for (const f of files) fd.append('file', new Blob([new Uint8Array(await readFile(f))]), f);
    const res = await fetch(`${s.url}/api/dicom/import?dataset=three`, { method: 'POST', body: fd });
    expect(res.status).toBe(200);
  }
  for (const name of ['beta', 'alpha', 'gamma']) expect((await s.call('POST', '/api/datasets', { name, series: [series['P-A']] })).status).toBe(201);
  for (const name of ['zeta', 'eta']) expect((await s.call('POST', '/api/projects', { name })).status).toBe(201);
  adminId = (await s.call('GET', '/api/projects/admin')).body.id;
  await writeShellExtension(s.extRoot, 'pg', [{ id: 'pg-a', tasks: [{ id: 't', sh: 'exit 0' }] }, { id: 'pg-b', tasks: [{ id: 't', sh: 'exit 1' }] }]);
  await s.call('POST', '/api/workflows/reload');
  runIds = [];
  for (const wf of ['pg-b', 'pg-a', 'pg-b']) {
    const job = await s.call('POST', '/api/jobs', { workflow: wf });
    runIds.push(job.body.runs[0].id);
    await new Promise((r) => setTimeout(r, 5)); // distinct created_at
  }
  await waitFor(async () => (await s.call('GET', '/api/runs?state=queued,running')).body.total === 0, 15_000, 'runs to end');
}, 60_000);
afterAll(async () => {
  await s?.close();
});

const get = async (path: string) => s.call('GET', path);

/** Expects a 400 whose message names the parameter and the bad value. */
async function expectBad(path: string, param: string, value: string): Promise<void> {
  const r = await get(path);
  expect(r.status, `${path}: ${JSON.stringify(r.body)}`).toBe(400);
  expect(r.body.error.code).toBe('TESSERA_INVALID_REQUEST');
  expect(r.body.error.details.map((d: { where: string }) => d.where)).toContain(param);
  expect(r.body.error.message).toContain(value);
}

describe('paging and sorting', () => {
  it('GET /api/series: sort=field and -field, order, limit, offset, total; 400 naming a bad value', async () => {
    const byPatient = await get('/api/series?sort=patient_id&order=asc');
    expect(byPatient.body.items.map((x: { patient_id: string }) => x.patient_id)).toEqual(['P-A', 'P-B', 'P-C']);
    const desc = await get('/api/series?sort=-patient_id');
    expect(desc.body.items.map((x: { patient_id: string }) => x.patient_id)).toEqual(['P-C', 'P-B', 'P-A']);
    // A bare field keeps the old default order of this list (descending).
    expect((await get('/api/series?sort=patient_id')).body.items[0].patient_id).toBe('P-C');
    const page = await get('/api/series?sort=patient_id&order=asc&limit=1&offset=1');
    expect(page.body).toMatchObject({ total: 3, limit: 1, offset: 1 });
    expect(page.body.items.map((x: { patient_id: string }) => x.patient_id)).toEqual(['P-B']);
    // Newest first by default.
    expect((await get('/api/series')).body.items[0].patient_id).toBe('P-A');
    await expectBad('/api/series?sort=bogus', 'querystring.sort', '"bogus"');
    await expectBad('/api/series?sort=-', 'querystring.sort', '"-"');
    await expectBad('/api/series?limit=0', 'querystring.limit', '0');
    await expectBad('/api/series?limit=20000', 'querystring.limit', '20000');
    await expectBad('/api/series?offset=-1', 'querystring.offset', '-1');
    await expectBad('/api/series?limit=ten', 'querystring.limit', '"ten"');
    await expectBad('/api/series?order=up', 'querystring.order', '"up"');
    const msg = (await get('/api/series?sort=bogus')).body.error.message as string;
    expect(msg).toContain('patient_id');
    expect(msg).toContain('-patient_id');
  });

  it("GET /api/series/{uid}/instances and /api/datasets/{name}/series page with a total", async () => {
    const inst = await get(`/api/series/${series['P-A']}/instances?limit=1`);
    expect(inst.body).toMatchObject({ total: 2, limit: 1, offset: 0 });
    expect(inst.body.items).toHaveLength(1);
    const members = await get('/api/datasets/three/series?sort=-patient_id&limit=2');
    expect(members.body).toMatchObject({ total: 3, limit: 2, offset: 0 });
    expect(members.body.items.map((x: { patient_id: string }) => x.patient_id)).toEqual(['P-C', 'P-B']);
    await expectBad('/api/datasets/three/series?sort=name', 'querystring.sort', '"name"');
  });

  it('GET /api/datasets', async () => {
    const names = (q: string) => get(`/api/datasets?${q}`).then((r) => r.body.items.map((d: { name: string }) => d.name));
    expect(await names('')).toEqual(['alpha', 'beta', 'gamma', 'three']);
    expect(await names('sort=-name')).toEqual(['three', 'gamma', 'beta', 'alpha']);
    expect(await names('sort=-series_count&limit=1')).toEqual(['three']);
    const page = await get('/api/datasets?limit=2&offset=3');
    expect(page.body).toMatchObject({ total: 4, limit: 2, offset: 3 });
    expect(page.body.items).toHaveLength(1);
    await expectBad('/api/datasets?sort=size', 'querystring.sort', '"size"');
    await expectBad('/api/datasets?limit=1001', 'querystring.limit', '1001');
  });

  it('GET /api/runs and /api/jobs', async () => {
    const ids = (r: { body: { items: { id: string }[] } }) => r.body.items.map((x) => x.id);
    expect(ids(await get('/api/runs'))).toEqual([...runIds].reverse());
    expect(ids(await get('/api/runs?sort=created_at'))).toEqual(runIds);
    const byWorkflow = (await get('/api/runs?sort=workflow')).body.items.map((x: { workflow: string }) => x.workflow);
    expect(byWorkflow).toEqual(['pg-a', 'pg-b', 'pg-b']);
    const byState = (await get('/api/runs?sort=-state')).body.items.map((x: { state: string }) => x.state);
    expect(byState).toEqual(['success', 'failed', 'failed']);
    const page = await get('/api/runs?sort=created_at&limit=1&offset=2');
    expect(page.body).toMatchObject({ total: 3, limit: 1, offset: 2 });
    expect(ids(page)).toEqual([runIds[2]]);
    await expectBad('/api/runs?sort=duration', 'querystring.sort', '"duration"');
    await expectBad('/api/runs?state=done', 'querystring.state', 'done');
    const jobs = await get('/api/jobs?sort=created_at&limit=2');
    expect(jobs.body).toMatchObject({ total: 3, limit: 2, offset: 0 });
    expect(jobs.body.items.map((j: { runs: { id: string }[] }) => j.runs[0]!.id)).toEqual(runIds.slice(0, 2));
    expect((await get('/api/jobs')).body.items[0].runs[0].id).toBe(runIds[2]);
  });

  it('GET /api/workflows, /api/extensions, /api/projects', async () => {
    const wf = await get('/api/workflows?sort=-id&limit=2');
    expect(wf.body.total).toBeGreaterThanOrEqual(5);
    expect(wf.body).toMatchObject({ limit: 2, offset: 0, problems: [] });
    const allIds = (await get('/api/workflows')).body.items.map((w: { id: string }) => w.id);
    expect(allIds).toEqual([...allIds].sort());
    expect(wf.body.items.map((w: { id: string }) => w.id)).toEqual([...allIds].sort().reverse().slice(0, 2));
    expect((await get('/api/workflows?q=PG-&sort=-id')).body.items.map((w: { id: string }) => w.id)).toEqual(['pg-b', 'pg-a']);
    expect((await get('/api/workflows?extension=pg')).body.total).toBe(2);
    await expectBad('/api/workflows?sort=name', 'querystring.sort', '"name"');

    const ext = await get('/api/extensions');
    const names = ext.body.items.map((e: { name: string }) => e.name);
    expect(names).toEqual([...names].sort());
    expect(ext.body.total).toBe(names.length);
    const installedFirst = await get('/api/extensions?sort=state&limit=3&offset=1');
    expect(installedFirst.body).toMatchObject({ total: names.length, limit: 3, offset: 1 });
    expect(installedFirst.body.items.map((e: { state: string }) => e.state)).toEqual(['installed', 'installed', 'installed']);
    expect((await get('/api/extensions?sort=-name&limit=1')).body.items[0].name).toBe([...names].sort().at(-1));
    await expectBad('/api/extensions?state=broken', 'querystring.state', 'broken');
    await expectBad('/api/extensions?sort=version', 'querystring.sort', '"version"');
    await expectBad('/api/extensions?kind=plugin', 'querystring.kind', '"plugin"');

    const projects = await get('/api/projects?sort=-name&limit=2');
    expect(projects.body).toMatchObject({ total: 3, limit: 2, offset: 0 });
    expect(projects.body.items.map((p: { name: string }) => p.name)).toEqual(['zeta', 'eta']);
  });

  it('GET /api/results', async () => {
    const dir = join(s.home, 'buckets', adminId);
    for (const [run, file, bytes] of [['r1', 'b.txt', 30], ['r2', 'a.txt', 10], ['r2', 'c.txt', 20]] as const) {
      await mkdir(join(dir, run), { recursive: true });
      await writeFile(join(dir, run, file), Buffer.alloc(bytes));
    }
    const list = (q: string) => get(`/api/results?${q}`).then((r) => r.body.items.map((o: { run_id: string; path: string }) => `${o.run_id}/${o.path}`));
    expect(await list('')).toEqual(['r2/a.txt', 'r2/c.txt', 'r1/b.txt']);
    expect(await list('sort=-size_bytes')).toEqual(['r1/b.txt', 'r2/c.txt', 'r2/a.txt']);
    expect(await list('sort=path&limit=2')).toEqual(['r2/a.txt', 'r1/b.txt']);
    expect((await get('/api/results?limit=1&offset=1')).body).toMatchObject({ total: 3, limit: 1, offset: 1 });
    await expectBad('/api/results?sort=name', 'querystring.sort', '"name"');
  });

  it('GET /api/applications', async () => {
    expect((await s.call('POST', '/api/extensions/hello-world-app/install?wait=true', {})).status).toBe(200);
    for (const [name, project] of [['b-app', 'admin'], ['a-app', 'zeta'], ['c-app', 'admin']]) {
      expect((await s.call('POST', '/api/applications', { extension: 'hello-world-app', name, project })).status).toBe(202);
    }
    const names = (q: string) => get(`/api/applications?${q}`).then((r) => r.body.items.map((a: { name: string }) => a.name));
    expect(await names('')).toEqual(['b-app', 'c-app', 'a-app']);
    expect(await names('sort=name')).toEqual(['a-app', 'b-app', 'c-app']);
    expect(await names('sort=-name&limit=2')).toEqual(['c-app', 'b-app']);
    expect(await names('project=admin&sort=-name')).toEqual(['c-app', 'b-app']);
    expect((await get('/api/applications?limit=1&offset=2')).body).toMatchObject({ total: 3, limit: 1, offset: 2 });
    await waitFor(async () => (await get('/api/applications?state=running')).body.total === 3, 20_000, 'apps running');
    await expectBad('/api/applications?state=up', 'querystring.state', 'up');
    await expectBad('/api/applications?sort=url', 'querystring.sort', '"url"');
    for (const [name, project] of [['b-app', 'admin'], ['a-app', 'zeta'], ['c-app', 'admin']]) await s.call('DELETE', `/api/applications/${name}?project=${project}`);
  }, 30_000);

  it('documents sort, limit and offset in the OpenAPI document', async () => {
    const doc = (await get('/api/openapi.json')).body;
    for (const path of ['/api/series', '/api/datasets', '/api/runs', '/api/jobs', '/api/workflows', '/api/extensions', '/api/applications', '/api/results', '/api/projects']) {
      const params = doc.paths[path].get.parameters as { name: string; schema: { enum?: string[] } }[];
      const names = params.map((p) => p.name);
      expect(names, path).toEqual(expect.arrayContaining(['sort', 'limit', 'offset']));
      expect(params.find((p) => p.name === 'sort')!.schema.enum!.some((v) => v.startsWith('-')), path).toBe(true);
    }
  });
});

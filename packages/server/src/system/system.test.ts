import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_VERSION } from '@tessera/model';
import { writeSampleCt } from '../../../dicom/src/samples/sample-ct.ts';
import { startTestServer, type TestServer } from '../__fixtures__/test-server.ts';

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ diskUsageMaxAgeMs: 200, dockerSocket: '/nonexistent/docker.sock', runners: 'auto' });
}, 30_000);
afterAll(async () => {
  await s?.close();
});

describe('GET /api/system', () => {
  it('says what was found: runners, Docker, the DICOM listener, DICOMweb, versions, uptime', async () => {
    const r = await s.call('GET', '/api/system');
    expect(r.status).toBe(200);
    const b = r.body;
    expect(b.version).toMatchObject({ tessera: PLATFORM_VERSION, node: process.version, platform: process.platform, arch: process.arch });
    expect(b.version.sqlite).toMatch(/^3\.\d+\.\d+$/);
    expect(b.uptime_s).toBeGreaterThanOrEqual(0);
    expect(Date.parse(b.started_at)).toBeLessThanOrEqual(Date.now());
    expect(b.home).toBe(s.home);
    expect(b.runners.map((x: { name: string }) => x.name)).toEqual(['builtin', 'process']);
    expect(b.components.process).toEqual({ available: true });
    expect(b.components.docker).toMatchObject({ available: false, version: null, socket: null });
    expect(b.components.docker.reason).toContain('/nonexistent/docker.sock');
    expect(b.runner_notes.join(' ')).toContain('no container runner');
    expect(b.components.kubernetes.configured).toBe(false);
    expect(b.components.dimse).toEqual({ enabled: true, ae_title: 'TESSERA', host: '127.0.0.1', port: s.tessera.dicomPort });
    expect(b.components.dimse.port).toBeGreaterThan(0);
    expect(b.components.dicomweb).toEqual({ path: '/dicom-web', url: `${s.url}/dicom-web`, project_path: '/projects/{project}/dicom-web' });
    const python = b.components.tools.find((t: { name: string }) => t.name === 'python3');
    expect(python).toMatchObject({ used_for: expect.any(String) });
    expect(typeof python.found).toBe('boolean');
  });

  it('reports disk use: the filesystem, the database, the DICOM store from its index, folder sizes walked in the background', async () => {
    const before = (await s.call('GET', '/api/system?wait=true')).body.disk;
    expect(before.filesystem.path).toBe(s.home);
    expect(before.filesystem.total_bytes).toBeGreaterThan(0);
    expect(before.filesystem.available_bytes).toBeLessThanOrEqual(before.filesystem.total_bytes);
    expect(before.database.bytes).toBeGreaterThan(0);
    expect(before.dicom).toMatchObject({ bytes: 0, series: 0, instances: 0, source: 'index' });
    expect(before.computed_at).not.toBeNull();
    expect(Object.keys(before.folders).sort()).toEqual(['apps', 'extensions', 'logs', 'results', 'workflows']);

    const { files } = await writeSampleCt(join(s.home, 'sample'), { slices: 3, size: 16 });
    const fd = new FormData();
    const { readFile } = await import('node:fs/promises');
    for (const f of files) fd.append('file', new Blob([new Uint8Array(await readFile(f))]), f);
    expect((await fetch(`${s.url}/api/dicom/import`, { method: 'POST', body: fd })).status).toBe(200);
    await mkdir(join(s.home, 'buckets', 'p', 'run-1'), { recursive: true });
    await writeFile(join(s.home, 'buckets', 'p', 'run-1', 'result.bin'), Buffer.alloc(12_345));
    await new Promise((r) => setTimeout(r, 250)); // older than diskUsageMaxAgeMs
    await s.call('GET', '/api/system'); // starts a walk
    const after = (await s.call('GET', '/api/system?wait=true')).body.disk;
    expect(after.dicom.series).toBe(1);
    expect(after.dicom.instances).toBe(3);
    expect(after.dicom.bytes).toBeGreaterThan(3 * 16 * 16 * 2);
    expect(after.folders.results.bytes).toBe(before.folders.results.bytes + 12_345);
    expect(after.folders.results.files).toBe(before.folders.results.files + 1);
    expect(Date.parse(after.computed_at)).toBeGreaterThan(Date.parse(before.computed_at));
  });

  it('is in the OpenAPI document', async () => {
    const doc = (await s.call('GET', '/api/openapi.json')).body;
    const ref = doc.paths['/api/system'].get.responses['200'].content['application/json'].schema.$ref as string;
    expect(doc.components.schemas[ref.split('/').pop()!].properties.disk).toBeDefined();
    expect(doc.paths['/api/events'].get.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['project', 'types']);
  });
});

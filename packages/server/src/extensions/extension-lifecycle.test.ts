import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '@tessera/extension-packages';
import { createTessera, type Tessera } from '../create-tessera.ts';
import { loadConfig, type ServerConfig } from '../config.ts';
import { startTestServer, waitFor, writeShellExtension, type TestServer } from '../__fixtures__/test-server.ts';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'tessera-ext-lifecycle-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Builds a package of a one-task shell workflow; `sh` is the task's script. */
async function shellPackage(name: string, version: string, sh: string, manifest: Record<string, unknown> = {}): Promise<string> {
  const root = await mkdtemp(join(work, 'src-'));
  const dir = await writeShellExtension(root, name, [{ id: name, tasks: [{ id: 'work', level: 'batch', sh }] }]);
  const path = join(dir, 'tessera-extension.json');
  const m = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  await writeFile(path, JSON.stringify({ ...m, version, ...manifest }));
  const built = await buildPackage(dir, { out: join(work, `${name}-${version}-${Math.random().toString(36).slice(2)}.tgz`) });
  return built.file;
}

async function upload(s: TestServer, file: string): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: await readFile(file) });
  return { status: res.status, body: await res.json() };
}

async function runToEnd(s: TestServer, workflow: string): Promise<{ id: string; state: string; workflow_dir: string }> {
  const job = await s.call('POST', '/api/jobs', { workflow });
  expect(job.status, JSON.stringify(job.body)).toBe(201);
  const id = job.body.runs[0].id as string;
  return waitFor(async () => {
    const r = await s.call('GET', `/api/runs/${id}`);
    return ['success', 'failed', 'canceled'].includes(r.body.state) ? r.body : undefined;
  }, 20_000, `run ${id} to end`);
}

describe('the catalog at first start', () => {
  let home: string;
  let t: Tessera | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const start = async (): Promise<{ t: Tessera; url: string }> => {
    const config: ServerConfig = { ...loadConfig({}), port: 0, home, extensionRoots: [], runners: ['process'], logLevel: 'silent', dicomPort: 'off', auth: 'off', appsPort: 'same' };
    t = await createTessera(config);
    return { t, url: await t.listen() };
  };

  it('installs hello-world, collect-metadata and delete-series once; the others wait in the catalog; state survives restarts', async () => {
    home = await mkdtemp(join(work, 'home-'));
    let { url } = await start();
    const catalog = (await (await fetch(`${url}/api/extensions`)).json()) as { items: { name: string; state: string; versions: { source: string }[] }[] };
    const state = Object.fromEntries(catalog.items.map((e) => [e.name, e.state]));
    expect(state).toMatchObject({
      'hello-world': 'installed', 'collect-metadata': 'installed', 'delete-series': 'installed',
      dcm2nifti: 'not_installed', 'otsu-segmentation': 'not_installed',
    });
    expect(catalog.items.every((e) => e.versions.some((v) => v.source === 'builtin'))).toBe(true);
    const workflows = (await (await fetch(`${url}/api/workflows`)).json()) as { items: { id: string }[] };
    expect(workflows.items.map((w) => w.id).sort()).toEqual(['collect-metadata', 'delete-series', 'hello-world']);

    expect((await fetch(`${url}/api/extensions/hello-world`, { method: 'DELETE' })).status).toBe(200);
    expect((await fetch(`${url}/api/workflows/hello-world`)).status).toBe(404);
    await t!.close();
    t = undefined;

    ({ url } = await start()); // the defaults come only at the first start: an uninstall stays
    const after = (await (await fetch(`${url}/api/extensions`)).json()) as { items: { name: string; state: string }[] };
    expect(Object.fromEntries(after.items.map((e) => [e.name, e.state]))).toMatchObject({ 'hello-world': 'not_installed', 'collect-metadata': 'installed' });
    expect((await fetch(`${url}/api/workflows/collect-metadata`)).status).toBe(200);
  });
});

describe('installing uploaded packages', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s.close();
  });

  it('uploads a package into the catalog, installs it (workflows at once), runs it, uninstalls it', async () => {
    const file = await shellPackage('pkg-basic', '1.0.0', 'echo basic > "$WORKFLOW_DIR/out.txt"', { title: 'Basic', keywords: ['experimental'] });
    const up = await upload(s, file);
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect(up.body).toMatchObject({ name: 'pkg-basic', version: '1.0.0', kind: 'workflow' });

    const listed = await s.call('GET', '/api/extensions?keyword=experimental');
    expect(listed.body.items.map((e: { name: string }) => e.name)).toEqual(['pkg-basic']);
    expect(listed.body.items[0]).toMatchObject({ state: 'not_installed', latest: '1.0.0', title: 'Basic' });
    expect((await s.call('GET', '/api/workflows/pkg-basic')).status).toBe(404);

    const installed = await s.call('POST', '/api/extensions/pkg-basic/install?wait=true', {});
    expect(installed.status, JSON.stringify(installed.body)).toBe(200);
    expect(installed.body).toMatchObject({ state: 'installed', installed: { version: '1.0.0', source: 'package' }, workflows: ['pkg-basic'] });
    // Triggerable the moment the install answers: no polling interval.
    const run = await runToEnd(s, 'pkg-basic');
    expect(run.state).toBe('success');
    expect((await readFile(join(run.workflow_dir, 'out.txt'), 'utf8')).trim()).toBe('basic');

    const gone = await s.call('DELETE', '/api/extensions/pkg-basic');
    expect(gone.status).toBe(200);
    expect(gone.body.state).toBe('not_installed');
    expect((await s.call('POST', '/api/jobs', { workflow: 'pkg-basic' })).status).toBe(404);
    // The package stays in the catalog, to install again.
    expect((await s.call('GET', '/api/extensions/pkg-basic')).body.versions.map((v: { version: string }) => v.version)).toEqual(['1.0.0']);
  });

  it('upgrades and downgrades; a run already going finishes on the version it started with', async () => {
    await upload(s, await shellPackage('pkg-versions', '1.0.0', 'sleep 1.5; echo v1 > "$WORKFLOW_DIR/out.txt"'));
    await upload(s, await shellPackage('pkg-versions', '2.0.0', 'echo v2 > "$WORKFLOW_DIR/out.txt"'));
    const entry = (await s.call('GET', '/api/extensions/pkg-versions')).body;
    expect(entry.versions.map((v: { version: string }) => v.version)).toEqual(['2.0.0', '1.0.0']);
    expect(entry.latest).toBe('2.0.0');

    expect((await s.call('POST', '/api/extensions/pkg-versions/install?wait=true', { version: '1.0.0' })).body.installed.version).toBe('1.0.0');
    const job = await s.call('POST', '/api/jobs', { workflow: 'pkg-versions' });
    const first = job.body.runs[0].id as string;
    await waitFor(async () => (await s.call('GET', `/api/runs/${first}`)).body.state === 'running', 10_000, 'the v1 run to start');

    const upgraded = await s.call('POST', '/api/extensions/pkg-versions/install?wait=true', {}); // no version: the newest
    expect(upgraded.body).toMatchObject({ state: 'installed', installed: { version: '2.0.0' }, error: null });
    const second = await runToEnd(s, 'pkg-versions');
    const firstRun = await waitFor(async () => {
      const r = (await s.call('GET', `/api/runs/${first}`)).body;
      return r.state === 'success' ? r : undefined;
    }, 20_000, 'the v1 run to end');
    expect((await readFile(join(firstRun.workflow_dir, 'out.txt'), 'utf8')).trim()).toBe('v1');
    expect((await readFile(join(second.workflow_dir, 'out.txt'), 'utf8')).trim()).toBe('v2');

    const downgraded = await s.call('POST', '/api/extensions/pkg-versions/install?wait=true', { version: '1.0.0' });
    expect(downgraded.body.installed.version).toBe('1.0.0');
    expect((await s.call('GET', '/api/workflows/pkg-versions')).body.extension.version).toBe('1.0.0');
  });

  it('keeps a replaced package while it is installed, and removes it once the new one is', async () => {
    await upload(s, await shellPackage('pkg-replaced', '1.0.0', 'echo first > "$WORKFLOW_DIR/out.txt"'));
    expect((await s.call('POST', '/api/extensions/pkg-replaced/install?wait=true', {})).status).toBe(200);
    const store = join(s.home, 'extensions', 'store');
    const first = (await readdir(store)).filter((d) => d.startsWith('pkg-replaced@'));
    expect(first).toHaveLength(1);
    const again = await upload(s, await shellPackage('pkg-replaced', '1.0.0', 'echo second > "$WORKFLOW_DIR/out.txt"'));
    expect(again.body.replaced).toBe(true);
    await s.tessera.extensions.sweep();
    expect((await readdir(store)).filter((d) => d.startsWith('pkg-replaced@')).sort()).toHaveLength(2); // the first is still installed
    expect((await readFile(join((await runToEnd(s, 'pkg-replaced')).workflow_dir, 'out.txt'), 'utf8')).trim()).toBe('first');

    expect((await s.call('POST', '/api/extensions/pkg-replaced/install?wait=true', {})).status).toBe(200);
    await s.tessera.extensions.sweep();
    const left = (await readdir(store)).filter((d) => d.startsWith('pkg-replaced@'));
    expect(left).toHaveLength(1);
    expect(left).not.toEqual(first);
    expect((await readFile(join((await runToEnd(s, 'pkg-replaced')).workflow_dir, 'out.txt'), 'utf8')).trim()).toBe('second');
  });

  it('checks install parameters against the manifest and gives them to every task as environment variables', async () => {
    await upload(s, await shellPackage('pkg-params', '1.0.0', 'echo "$MODE $VERBOSE $LABELS" > "$WORKFLOW_DIR/out.txt"', {
      parameters: {
        mode: { type: 'list_single', options: ['fast', 'slow'], default: 'fast' },
        verbose: { type: 'boolean', default: false },
        labels: { type: 'list_multi', options: ['lung', 'liver', 'heart'] },
        token: { type: 'string', required: true },
      },
    }));
    const bad = await s.call('POST', '/api/extensions/pkg-params/install?wait=true', { params: { mode: 'turbo', colour: 'red' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('TESSERA_INVALID_REQUEST');
    const where = bad.body.error.details.map((d: { where: string }) => d.where).sort();
    expect(where).toEqual(['params.colour', 'params.mode', 'params.token']);
    expect(bad.body.error.message).toMatch(/params\.mode must be one of fast, slow, not "turbo"/);
    expect((await s.call('GET', '/api/extensions/pkg-params')).body.state).toBe('not_installed'); // nothing written

    const ok = await s.call('POST', '/api/extensions/pkg-params/install?wait=true', { params: { mode: 'slow', verbose: 'true', labels: 'lung,heart', token: 'x' } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(ok.body.installed.params).toEqual({ mode: 'slow', verbose: true, labels: ['lung', 'heart'], token: 'x' });
    const run = await runToEnd(s, 'pkg-params');
    expect((await readFile(join(run.workflow_dir, 'out.txt'), 'utf8')).trim()).toBe("slow True ['lung', 'heart']");
  });

  it('refuses what depends on a missing extension, and an uninstall that would break a dependent', async () => {
    await upload(s, await shellPackage('pkg-app', '1.0.0', 'true', { dependencies: { 'pkg-lib': '^1.2.0' } }));
    const missing = await s.call('POST', '/api/extensions/pkg-app/install?wait=true', {});
    expect(missing.status).toBe(409);
    expect(missing.body.error.code).toBe('TESSERA_EXTENSION_INCOMPATIBLE');
    expect(missing.body.error.message).toContain('needs extension "pkg-lib" ^1.2.0, which is not installed');

    await upload(s, await shellPackage('pkg-lib', '1.1.0', 'true'));
    const old = await s.call('POST', '/api/extensions/pkg-app/install?wait=true', {});
    expect(old.status).toBe(409);
    expect(old.body.error.message).toContain('the catalog has no matching version of "pkg-lib"');

    await upload(s, await shellPackage('pkg-lib', '1.3.0', 'true'));
    const hint = await s.call('POST', '/api/extensions/pkg-app/install?wait=true', {});
    expect(hint.body.error.message).toContain('install it first: tessera ext install pkg-lib@1.3.0');
    expect((await s.call('POST', '/api/extensions/pkg-lib/install?wait=true', {})).status).toBe(200);
    expect((await s.call('POST', '/api/extensions/pkg-app/install?wait=true', {})).status).toBe(200);

    const blocked = await s.call('DELETE', '/api/extensions/pkg-lib');
    expect(blocked.status).toBe(409);
    expect(blocked.body.error.message).toBe('extension "pkg-lib" is needed by pkg-app; uninstall it first');
    const downgrade = await s.call('POST', '/api/extensions/pkg-lib/install?wait=true', { version: '1.1.0' });
    expect(downgrade.status).toBe(409);
    expect(downgrade.body.error.message).toContain('pkg-app@1.0.0 needs "pkg-lib" ^1.2.0');
    expect((await s.call('DELETE', '/api/extensions/pkg-app')).status).toBe(200);
    expect((await s.call('DELETE', '/api/extensions/pkg-lib')).status).toBe(200);
  });

  it('refuses an uninstall while the manifest of another installed extension cannot be read, naming it and why', async () => {
    expect((await upload(s, await shellPackage('pkg-base', '1.0.0', 'true'))).status).toBe(201);
    const user = await upload(s, await shellPackage('pkg-user', '1.0.0', 'true', { dependencies: { 'pkg-base': '^1.0.0' } }));
    expect(user.status).toBe(201);
    expect((await s.call('POST', '/api/extensions/pkg-base/install?wait=true', {})).status).toBe(200);
    expect((await s.call('POST', '/api/extensions/pkg-user/install?wait=true', {})).status).toBe(200);
    // Its files are damaged after it was installed: whether it needs pkg-base is unknown.
    const manifest = join(s.home, 'extensions', 'store', `pkg-user@1.0.0+${(user.body.sha256 as string).slice(0, 12)}`, 'extension', 'tessera-extension.json');
    await writeFile(manifest, '{ "name": "pkg-user", ');

    const refused = await s.call('DELETE', '/api/extensions/pkg-base');
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('TESSERA_EXTENSION_INCOMPATIBLE');
    expect(refused.body.error.message).toContain('cannot uninstall "pkg-base": whether the installed extension "pkg-user"@1.0.0 needs it is unknown, because its manifest cannot be read');
    expect(refused.body.error.message).toContain('uninstall pkg-user first (tessera ext uninstall pkg-user)');
    expect(refused.body.error.details).toEqual([{ where: manifest, message: expect.stringContaining('cannot read the manifest') }]);
    expect((await s.call('GET', '/api/extensions/pkg-base')).body.state).toBe('installed');

    // What the message says to do works.
    expect((await s.call('DELETE', '/api/extensions/pkg-user')).status).toBe(200);
    const gone = await s.call('DELETE', '/api/extensions/pkg-base');
    expect(gone.status, JSON.stringify(gone.body)).toBe(200);
    expect(gone.body.state).toBe('not_installed');
  });

  it('answers unknown names and versions, wrong content types and broken packages clearly, keeping nothing and serving on', async () => {
    const unknown = await s.call('POST', '/api/extensions/no-such-ext/install', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain('tessera ext list');
    await upload(s, await shellPackage('pkg-known', '1.0.0', 'true'));
    const version = await s.call('POST', '/api/extensions/pkg-known/install', { version: '9.9.9' });
    expect(version.status).toBe(404);
    expect(version.body.error.message).toBe('extension "pkg-known" has no version 9.9.9; it has 1.0.0');

    const storeDir = join(s.home, 'extensions', 'store');
    const before = (await readdir(storeDir)).sort();
    const json = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(415);
    const garbage = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: Buffer.from('this is not a package') });
    expect(garbage.status).toBe(400);
    const body = (await garbage.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('TESSERA_INVALID_PACKAGE');
    expect(body.error.message).toContain('not a gzipped tar archive');
    expect(body.error.message).toContain('nothing of it was kept');
    const good = await readFile(await shellPackage('pkg-cut', '1.0.0', 'true'));
    const cut = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: good.subarray(0, Math.floor(good.length / 2)) });
    expect(cut.status).toBe(400);
    expect((await readdir(storeDir)).sort()).toEqual(before);
    expect(await readdir(join(s.home, 'extensions', '.staging'))).toEqual([]);
    expect((await s.call('GET', '/api/extensions/pkg-cut')).status).toBe(404);
    expect((await s.call('GET', '/api/health')).status).toBe(200);
  });

  it('takes one install of a name at a time: the others are refused with 409, not interleaved', async () => {
    await upload(s, await shellPackage('pkg-race', '1.0.0', 'true'));
    const answers = await Promise.all([1, 2, 3, 4].map(() => s.call('POST', '/api/extensions/pkg-race/install', {})));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((x) => x === 202 || x === 200)).toHaveLength(1);
    expect(statuses.filter((x) => x === 409)).toHaveLength(3);
    expect(answers.find((a) => a.status === 409)!.body.error.message).toContain('is being installed right now');
    await waitFor(async () => (await s.call('GET', '/api/extensions/pkg-race')).body.state === 'installed', 10_000, 'the install');
  });

  it('refuses an install whose workflow id another extension provides, keeping that one', async () => {
    const root = await mkdtemp(join(work, 'dup-'));
    const dir = await writeShellExtension(root, 'pkg-dup', [{ id: 'hello-world', tasks: [{ id: 'work', level: 'batch', sh: 'true' }] }]);
    await upload(s, (await buildPackage(dir, { out: join(work, 'pkg-dup.tgz') })).file);
    const res = await s.call('POST', '/api/extensions/pkg-dup/install?wait=true', {});
    expect(res.status).toBe(409);
    expect(res.body.error.message).toBe('workflow "hello-world" is already provided by extension "hello-world"; workflow ids are unique across extensions: rename it, or uninstall hello-world');
    expect((await s.call('GET', '/api/extensions/pkg-dup')).body.state).toBe('error');
    expect((await s.call('GET', '/api/workflows/hello-world')).body.extension.name).toBe('hello-world');
  });

  it('answers a refusal found early in a large upload to a client still sending it', async () => {
    const { pack } = await import('tar-stream');
    const { createGzip } = await import('node:zlib');
    const { randomBytes } = await import('node:crypto');
    const tar = pack();
    tar.entry({ name: 'not-the-meta.txt' }, 'x');
    tar.entry({ name: 'big.bin' }, randomBytes(24 * 1024 * 1024));
    tar.finalize();
    const chunks: Buffer[] = [];
    for await (const c of tar.pipe(createGzip({ level: 1 }))) chunks.push(c as Buffer);
    const file = join(work, 'early.tgz');
    await writeFile(file, Buffer.concat(chunks));
    const res = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: (await import('node:fs')).createReadStream(file) as unknown as BodyInit, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('its first entry is "not-the-meta.txt", not tessera-package.json');
  });

  it('refuses a package over the size limit with 413', async () => {
    const small = await startTestServer({ extensionMaxPackageMb: 1 });
    try {
      const root = await mkdtemp(join(work, 'big-'));
      const dir = await writeShellExtension(root, 'pkg-big', [{ id: 'pkg-big', tasks: [{ id: 'work', level: 'batch', sh: 'true' }] }]);
      const { randomBytes } = await import('node:crypto');
      await writeFile(join(dir, 'weights.bin'), randomBytes(1536 * 1024)); // random: does not compress below 1 MB
      const built = await buildPackage(dir, { out: join(work, 'pkg-big.tgz') });
      const res = await upload(small, built.file);
      expect(res.status).toBe(413);
      expect(res.body.error.message).toContain('larger than the limit of 1 MB (TESSERA_EXTENSION_MAX_PACKAGE_MB)');
      expect(existsSync(join(small.home, 'extensions', 'store'))).toBe(true);
      expect(await readdir(join(small.home, 'extensions', 'store'))).toEqual([]);
    } finally {
      await small.close();
    }
  });
});

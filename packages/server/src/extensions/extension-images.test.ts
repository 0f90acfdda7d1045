import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '@tessera/extension-packages';
import { BASE_IMAGE, docker, dockerProblem, dockerSocket, skipDocker } from '../../../engine/src/__fixtures__/docker-env.ts';
import { killHard, startServerProcess, type ServerProcess } from '../__fixtures__/server-process.ts';
import { startTestServer, waitFor, type TestServer } from '../__fixtures__/test-server.ts';

/** An extension folder whose one task runs in its own image (`tag`), built FROM the test base image. */
async function imageExtension(root: string, name: string, version: string, tag: string, dockerfileExtra = ''): Promise<string> {
  const dir = join(root, `${name}-${version}`);
  await mkdir(join(dir, 'processing'), { recursive: true });
  await writeFile(join(dir, 'processing', 'nonce.txt'), randomBytes(8).toString('hex'));
  await writeFile(join(dir, 'processing', 'Dockerfile'), `FROM ${BASE_IMAGE}\nCOPY nonce.txt /nonce.txt\n${dockerfileExtra}RUN echo 'import os; open(os.environ["WORKFLOW_DIR"] + "/out.txt", "w").write("from the image\\\\n")' > /run.py\nCMD ["python3", "/run.py"]\n`);
  await writeFile(join(dir, `${name}.json`), JSON.stringify({
    spec_version: 1,
    id: name,
    workflow_form: { type: 'object' },
    data_form: { type: 'object' },
    tasks: [{ id: 'work', operator: 'work', output_dir: 'work', level: 'batch', container: { image: tag } }],
  }));
  await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version, kind: 'workflow', workflows: [`${name}.json`], images: [{ name: tag, context: 'processing' }] }));
  return dir;
}

const imageExists = async (tag: string): Promise<boolean> => docker!.getImage(tag).inspect().then(() => true, () => false);

describe.skipIf(skipDocker)('extension images', () => {
  let work: string;
  beforeAll(async () => {
    expect(dockerProblem, 'a Docker engine with the test images (scripts/docker-test-env.sh)').toBeUndefined();
    work = await mkdtemp(join(tmpdir(), 'tessera-ext-images-'));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('carries its image inside the package: loaded at install, used by the run, removed at uninstall', { timeout: 120_000 }, async () => {
    const tag = `tessera-test/ext-image-${randomBytes(4).toString('hex')}:1.0.0`;
    const dir = await imageExtension(work, 'img-carried', '1.0.0', tag);
    const built = await buildPackage(dir, { out: join(work, 'img-carried.tgz') });
    expect(built.meta.images).toEqual([{ name: tag, id: expect.stringMatching(/^sha256:/), file: 'images/0.tar' }]);
    await docker!.getImage(tag).remove(); // as on a machine that never built it
    expect(await imageExists(tag)).toBe(false);

    const s: TestServer = await startTestServer({ runners: ['docker', 'process'], dockerSocket });
    try {
      const res = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: await readFile(built.file) });
      expect(res.status, await res.clone().text()).toBe(201);
      const installed = await s.call('POST', '/api/extensions/img-carried/install?wait=true', {});
      expect(installed.status, JSON.stringify(installed.body)).toBe(200);
      expect((await docker!.getImage(tag).inspect()).Id).toBe(built.meta.images[0]!.id);

      const job = await s.call('POST', '/api/jobs', { workflow: 'img-carried' });
      const run = await waitFor(async () => {
        const r = (await s.call('GET', `/api/runs/${job.body.runs[0].id}`)).body;
        return ['success', 'failed'].includes(r.state) ? r : undefined;
      }, 60_000, 'the run');
      expect(run.tasks[0]).toMatchObject({ state: 'success', runner: 'docker' });
      expect(await readFile(join(run.workflow_dir, 'out.txt'), 'utf8')).toBe('from the image\n');

      expect((await s.call('DELETE', '/api/extensions/img-carried')).status).toBe(200);
      await waitFor(async () => !(await imageExists(tag)), 10_000, 'the image to be removed');
    } finally {
      await s.close();
      await docker!.getImage(tag).remove().catch(() => {});
    }
  });

  it('a failed upgrade that reused an image name points the name back at the installed version\'s image', { timeout: 120_000 }, async () => {
    const tag = `tessera-test/ext-retag-${randomBytes(4).toString('hex')}:1`;
    const v1 = await buildPackage(await imageExtension(work, 'img-retag', '1.0.0', tag), { out: join(work, 'retag-1.tgz') });
    // 2.0.0 reuses the tag, and fails after its image is loaded: its workflow id is hello-world's.
    const dir2 = await imageExtension(work, 'img-retag', '2.0.0', tag);
    const wf = join(dir2, 'img-retag.json');
    await writeFile(wf, (await readFile(wf, 'utf8')).replace('"id":"img-retag"', '"id":"hello-world"'));
    const v2 = await buildPackage(dir2, { out: join(work, 'retag-2.tgz') });
    expect(v2.meta.images[0]!.id).not.toBe(v1.meta.images[0]!.id);
    const s: TestServer = await startTestServer({ runners: ['docker', 'process'], dockerSocket });
    try {
      for (const p of [v1, v2]) {
        expect((await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: await readFile(p.file) })).status).toBe(201);
      }
      expect((await s.call('POST', '/api/extensions/img-retag/install?wait=true', { version: '1.0.0' })).status).toBe(200);
      const failed = await s.call('POST', '/api/extensions/img-retag/install?wait=true', { version: '2.0.0' });
      expect(failed.status).toBe(409);
      const entry = (await s.call('GET', '/api/extensions/img-retag')).body;
      expect(entry).toMatchObject({ state: 'installed', installed: { version: '1.0.0' } });
      expect(entry.error).toMatch(/^installing 2\.0\.0 failed: workflow "hello-world" is already provided/);
      expect((await docker!.getImage(tag).inspect()).Id).toBe(v1.meta.images[0]!.id);
    } finally {
      await s.close();
      await docker!.getImage(tag).remove({ force: true }).catch(() => {});
      await docker!.getImage(v2.meta.images[0]!.id).remove({ force: true }).catch(() => {});
    }
  });

  it('an install cut short by a crash ends in error, or in the version installed before, never half-installed', { timeout: 120_000 }, async () => {
    const collection = join(work, 'collection');
    const tag = `tessera-test/ext-crash-${randomBytes(4).toString('hex')}:2.0.0`;
    // The built-in collection's 2.0.0 builds its image at install: slowly, so that the server dies during it.
    await imageExtension(collection, 'crashy', '2.0.0', tag, 'RUN sleep 30\n');
    const home = join(work, 'crash-home');
    const env = { TESSERA_HOME: home, TESSERA_BUILTIN_EXTENSIONS_DIR: collection, TESSERA_DEFAULT_EXTENSIONS: 'none', TESSERA_RUNNERS: 'docker,process', DOCKER_HOST: `unix://${dockerSocket}` };
    const get = async (p: ServerProcess): Promise<any> => (await fetch(`${p.url}/api/extensions/crashy`)).json(); // eslint-disable-line @typescript-eslint/no-explicit-any
    const crashDuringInstall = async (p: ServerProcess, body: object): Promise<void> => {
      const res = await fetch(`${p.url}/api/extensions/crashy/install`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status, await res.clone().text()).toBe(202);
      await waitFor(async () => /building image/.test((await get(p)).progress ?? ''), 30_000, 'the image build to start');
      await killHard(p);
    };

    let p = await startServerProcess(env);
    try {
      await crashDuringInstall(p, {});
      p = await startServerProcess(env);
      const failed = await get(p);
      expect(failed).toMatchObject({ state: 'error', installed: null });
      expect(failed.error).toBe('installing 2.0.0 was interrupted (the server stopped); install it again, or uninstall it');
      expect((await fetch(`${p.url}/api/workflows/crashy`)).status).toBe(404);

      // 1.0.0 from a package (no image), then an upgrade to the built-in 2.0.0, cut short.
      const v1 = join(work, 'v1');
      await mkdir(v1, { recursive: true });
      await writeFile(join(v1, 'crashy.json'), JSON.stringify({ spec_version: 1, id: 'crashy', workflow_form: { type: 'object' }, data_form: { type: 'object' }, tasks: [{ id: 'work', operator: 'work', output_dir: 'work', level: 'batch', process: { command: ['true'] } }] }));
      await writeFile(join(v1, 'tessera-extension.json'), JSON.stringify({ name: 'crashy', version: '1.0.0', kind: 'workflow', workflows: ['crashy.json'] }));
      const pkg = await buildPackage(v1, { out: join(work, 'crashy-1.tgz') });
      expect((await fetch(`${p.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: await readFile(pkg.file) })).status).toBe(201);
      const ok = await fetch(`${p.url}/api/extensions/crashy/install?wait=true`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ version: '1.0.0' }) });
      expect(ok.status, await ok.clone().text()).toBe(200);

      await crashDuringInstall(p, { version: '2.0.0' });
      p = await startServerProcess(env);
      const kept = await get(p);
      expect(kept).toMatchObject({ state: 'installed', installed: { version: '1.0.0', source: 'package' } });
      expect(kept.error).toBe('installing 2.0.0 was interrupted (the server stopped); 1.0.0 stays installed');
      const wf = (await (await fetch(`${p.url}/api/workflows/crashy`)).json()) as { extension: { version: string } };
      expect(wf.extension.version).toBe('1.0.0');
    } finally {
      await killHard(p);
      await docker!.getImage(tag).remove().catch(() => {});
    }
  });
});

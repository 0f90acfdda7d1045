import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { domainView, migrate, openDatabase, type Kysely } from '@tessera/db';
import { detectDocker, ensureImage } from '@tessera/engine';
import { forgetImage, freePort, pushImage, registryProblem, startRegistry, type TestRegistry } from '@tessera/engine/test-registry';
import { buildPackage } from '../package/package-build.ts';
import { ImageTool } from '../package/docker-images.ts';
import { WorkflowRegistry } from '../workflow-registry.ts';
import { ExtensionManager } from './extension-manager.ts';
import { extensionMigrations, type ExtensionTables } from './extension-migrations.ts';

const BASE_IMAGE = 'tessera-test/python:bookworm';
const detected = await detectDocker();
const problem = !detected.available ? detected.reason : registryProblem;
// In CI (CI=true) a missing engine or registry binary fails these tests; elsewhere they are skipped.
const skip = problem !== undefined && process.env.CI !== 'true';

describe('registry install prerequisites', () => {
  it.skipIf(skip)('has a Docker engine and docker-registry', () => {
    expect(problem, problem).toBeUndefined();
  });
});

describe.skipIf(skip)('installing an extension that references registry images', () => {
  let registry: TestRegistry;
  let work: string;
  let db: Kysely<unknown>;
  let manager: ExtensionManager;
  let images: ImageTool;
  let image: string;
  let unreachable: string;
  const warnings: string[] = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tessera-reg-install-'));
    registry = await startRegistry();
    image = `${registry.host}/tessera-test/op:1`;
    images = new ImageTool(detected.available ? detected.socketPath : undefined, { pull: (d, i, o) => ensureImage(d, i, o) });
    const Dockerode = (await import('dockerode')).default;
    await pushImage(new Dockerode({ socketPath: images.socketPath }), BASE_IMAGE, image);
    // The built-in catalog is read at start: the extensions are there before it.
    unreachable = `127.0.0.1:${await freePort()}`;
    await extension('never', image, { image_pull_policy: 'Never' });
    await extension('pulls', image);
    await extension('unreachable', `${unreachable}/x:1`);
    db = openDatabase<unknown>({ file: join(work, 'tessera.db') });
    await migrate(db, extensionMigrations);
    manager = new ExtensionManager({
      db: domainView<ExtensionTables>(db),
      home: join(work, 'home'),
      builtinDir: join(work, 'builtin'),
      registry: new WorkflowRegistry({ roots: [] }),
      images,
      maxPackageBytes: 10 * 1024 * 1024,
      defaults: [],
      activeRunDirs: async () => new Set(),
      log: { info: () => {}, warn: (m) => warnings.push(m) },
    });
    await manager.start();
  }, 120_000);
  afterAll(async () => {
    await manager?.close();
    await db?.destroy();
    await registry?.stop();
    if (image) await images.remove(image);
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A built-in extension whose one task runs `ref`. */
  async function extension(name: string, ref: string, manifest: Record<string, unknown> = {}, root = join(work, 'builtin')): Promise<string> {
    const dir = join(root, name);
    await mkdir(dir, { recursive: true });
    const spec = { spec_version: 1, id: name, workflow_form: { type: 'object' }, data_form: { type: 'object' }, tasks: [{ id: 'op', operator: 'op', output_dir: 'op', container: { image: ref } }] };
    await writeFile(join(dir, `${name}.json`), JSON.stringify(spec));
    await writeFile(join(dir, 'tessera-extension.json'), JSON.stringify({ name, version: '1.0.0', kind: 'workflow', workflows: [`${name}.json`], ...manifest }));
    return dir;
  }
  async function install(name: string): Promise<{ state: string; error: string | null; progress: string[] }> {
    const progress: string[] = [];
    const { done } = await manager.install(name, {});
    const poll = setInterval(() => void manager.get(name).then((e) => e.progress && progress.push(e.progress)), 20);
    await done.catch(() => undefined);
    clearInterval(poll);
    const entry = await manager.get(name);
    return { state: entry.state, error: entry.error, progress };
  }

  it('ext build lists what it embeds and what it references', async () => {
    const dir = await extension('listed', image, {}, join(work, 'folders'));
    const lines: string[] = [];
    const built = await buildPackage(dir, { out: join(work, 'listed.tgz'), onProgress: (l) => lines.push(l) });
    expect(built.embedded).toEqual([]);
    expect(built.referenced).toEqual([{ name: image, image_pull_policy: 'IfNotPresent', embed: false, used_by: ['workflow listed task op'] }]);
    expect(lines).toContain('embeds 0 images');
    expect(lines).toContain(`references 1 registry image (pulled at install and run, not in the package): ${image} (IfNotPresent)`);
    expect(built.meta.references).toEqual([{ name: image, image_pull_policy: 'IfNotPresent' }]);
  });

  it('refuses an install under Never when the image is absent, and leaves nothing installed', async () => {
    await forgetImage(new (await import('dockerode')).default({ socketPath: images.socketPath }), image);
    const r = await install('never');
    expect(r.state).toBe('error');
    expect(r.error).toMatch(new RegExp(`^never uses image ${image} \\(workflow never task op\\): image "${image}" is not on the Docker engine at .*, and its image_pull_policy is Never`));
    expect(await images.imageId(image)).toBeUndefined();
  }, 60_000);

  it('pulls a missing image (IfNotPresent) with progress before saying it is installed', async () => {
    const r = await install('pulls');
    expect(r.state, r.error ?? '').toBe('installed');
    expect(await images.imageId(image)).toMatch(/^sha256:/);
    expect(r.progress.some((p) => p.startsWith(`image ${image}: `) || p.startsWith(`checking image ${image}`))).toBe(true);
  }, 60_000);

  it('fails the install when the registry cannot be reached, naming it', async () => {
    const host = unreachable;
    const r = await install('unreachable');
    expect(r.state).toBe('error');
    expect(r.error).toContain(`registry ${host} cannot be reached to pull ${host}/x:1 (connection refused)`);
  }, 60_000);
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE, docker, dockerProblem } from '../../__fixtures__/docker-env.ts';
import { makeTestLaunch } from '../../__fixtures__/task-launch.ts';
import { forgetImage, freePort, pushImage, registryProblem, startRegistry, type TestRegistry } from '../../__fixtures__/test-registry.ts';
import { DockerRunner } from './docker-runner.ts';
import { ensureImage, explainPullFailure, registryAuthFor } from './image-pull.ts';

const problem = dockerProblem ?? registryProblem;
// In CI (CI=true) a missing engine or registry binary fails these tests; elsewhere they are skipped.
const skip = problem !== undefined && process.env.CI !== 'true';
const homeId = `test-pull-${process.pid}`;
const USER = { name: 'tessera', password: 's3cret-Pa55word' };
const WRONG = 'wr0ng-Pa55word-xyz';

describe('registry image prerequisites', () => {
  it.skipIf(skip)('has a Docker engine, docker-registry and htpasswd', () => {
    expect(problem, problem).toBeUndefined();
  });
});

describe('registry credentials and messages', () => {
  it('reads config.json-style credentials for one registry, and says which setting when they are unusable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-auth-'));
    try {
      const file = join(dir, 'auth.json');
      await writeFile(file, JSON.stringify({ auths: { 'https://reg.example:5000/v1/': { auth: Buffer.from('u:p:w').toString('base64') }, other: { username: 'a', password: 'b' } } }));
      expect(registryAuthFor('reg.example:5000', { authFile: file })).toEqual({ username: 'u', password: 'p:w', serveraddress: 'reg.example:5000' });
      expect(registryAuthFor('elsewhere:1', { authFile: file })).toBeUndefined();
      await writeFile(file, '{ "auths": { "reg.example:5000": { "auth": "c2VjcmV0' );
      expect(() => registryAuthFor('reg.example:5000', { authFile: file })).toThrow(`the registry credentials file TESSERA_REGISTRY_AUTH_FILE (${file}) cannot be read: not valid JSON`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('tells a refused credential, a missing image and an unreachable registry apart', () => {
    expect(explainPullFailure('r:5/x:1', 'r:5', 'unauthorized: authentication required', false, {})).toMatch(/^registry r:5 asks for credentials to pull r:5\/x:1 \(401 unauthorized\), and none are configured for r:5: set TESSERA_REGISTRY_AUTH_FILE/);
    expect(explainPullFailure('r:5/x:1', 'r:5', 'manifest for r:5/x:1 not found: manifest unknown', false, {})).toMatch(/^image r:5\/x:1 does not exist in registry r:5 \(manifest unknown\)/);
    expect(explainPullFailure('r:5/x:1', 'r:5', 'Get "http://r:5/v2/": dial tcp 1.2.3.4:5: connect: connection refused', false, {})).toMatch(/^registry r:5 cannot be reached to pull r:5\/x:1 \(connection refused\)/);
  });
});

describe.skipIf(skip)('registry images on a real registry (docker-registry on loopback)', () => {
  let open: TestRegistry;
  let locked: TestRegistry;
  let dir: string;
  let authFile: string;
  let image: string;
  let lockedImage: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tessera-pull-'));
    open = await startRegistry();
    // The same storage behind a registry that asks for credentials: one push serves both.
    locked = await startRegistry({ storage: open.storage, user: USER });
    image = `${open.host}/tessera-test/pulled:1`;
    lockedImage = `${locked.host}/tessera-test/pulled:1`;
    await pushImage(docker!, BASE_IMAGE, image);
    authFile = join(dir, 'auth.json');
  }, 120_000);
  afterAll(async () => {
    for (const name of [image, lockedImage]) if (name) await forgetImage(docker!, name).catch(() => undefined);
    await open?.stop();
    await locked?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function run(task: Record<string, unknown>, credentials: { authFile?: string } = {}): Promise<{ state: string; reason?: string; log: string }> {
    const runner = new DockerRunner({ homeId, killGraceSeconds: 1, registryCredentials: () => credentials });
    const l = await makeTestLaunch({ dir, dagId: 'pull', task });
    const outcome = await (await runner.start(l)).done;
    return { state: outcome.state, ...(outcome.reason ? { reason: outcome.reason } : {}), log: await readFile(l.logFile, 'utf8') };
  }
  const onEngine = (name: string): Promise<boolean> => docker!.getImage(name).inspect().then(() => true, () => false);

  it('runs an operator whose image is only in the registry: pulled (IfNotPresent), with the pull in the task log', async () => {
    await forgetImage(docker!, image);
    const r = await run({ container: { image, command: ['sh', '-c', 'echo ran from the registry'] } });
    expect(r.state, r.log).toBe('success');
    expect(r.log).toContain(`tessera: pulling ${image} from ${open.host}`);
    expect(r.log).toMatch(/tessera: Status: Downloaded newer image/);
    expect(r.log).toContain('ran from the registry');
    expect(await onEngine(image)).toBe(true);
    // Present now: IfNotPresent does not pull again.
    const again = await run({ container: { image, command: ['true'] } });
    expect(again.state).toBe('success');
    expect(again.log).not.toContain('pulling');
    // Always asks the registry again.
    const always = await run({ container: { image, command: ['true'], image_pull_policy: 'Always' } });
    expect(always.state, always.log).toBe('success');
    expect(always.log).toContain(`pulling ${image}`);
  }, 120_000);

  it('fails clearly under Never when the engine lacks the image, and pulls nothing', async () => {
    await forgetImage(docker!, image);
    const r = await run({ container: { image, command: ['true'], image_pull_policy: 'Never' } });
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(new RegExp(`^image "${image}" is not on the Docker engine at .*, and its image_pull_policy is Never: load or build it there`));
    expect(r.log).toContain(r.reason);
    expect(await onEngine(image)).toBe(false);
  }, 60_000);

  it('says when the image does not exist in the registry', async () => {
    const r = await run({ container: { image: `${open.host}/tessera-test/pulled:no-such-tag`, command: ['true'] } });
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(new RegExp(`^image ${open.host}/tessera-test/pulled:no-such-tag does not exist in registry ${open.host} \\(manifest unknown\\)`));
  }, 60_000);

  it('names the registry that cannot be reached', async () => {
    const host = `127.0.0.1:${await freePort()}`;
    const r = await run({ container: { image: `${host}/x:1`, command: ['true'] } });
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(new RegExp(`^registry ${host} cannot be reached to pull ${host}/x:1 \\(connection refused\\)`));
  }, 60_000);

  it('with credentials: none configured, wrong ones (never shown), then right ones', async () => {
    await forgetImage(docker!, lockedImage);
    const none = await run({ container: { image: lockedImage, command: ['true'] } });
    expect(none.state).toBe('failed');
    expect(none.reason).toMatch(new RegExp(`^registry ${locked.host} asks for credentials to pull ${lockedImage} \\(401 unauthorized\\), and none are configured for ${locked.host}: set TESSERA_REGISTRY_AUTH_FILE`));

    await writeFile(authFile, JSON.stringify({ auths: { [locked.host]: { auth: Buffer.from(`${USER.name}:${WRONG}`).toString('base64') } } }));
    const wrong = await run({ container: { image: lockedImage, command: ['true'] } }, { authFile });
    expect(wrong.state).toBe('failed');
    expect(wrong.reason).toBe(`registry ${locked.host} refused the credentials for pulling ${lockedImage} (401 unauthorized): the credentials for ${locked.host} in TESSERA_REGISTRY_AUTH_FILE (${authFile}) are wrong; correct them there`);
    for (const text of [wrong.reason!, wrong.log]) {
      expect(text).not.toContain(WRONG);
      expect(text).not.toContain(Buffer.from(`${USER.name}:${WRONG}`).toString('base64'));
    }

    await writeFile(authFile, JSON.stringify({ auths: { [`http://${locked.host}`]: { auth: Buffer.from(`${USER.name}:${USER.password}`).toString('base64') } } }));
    const right = await run({ container: { image: lockedImage, command: ['sh', '-c', 'echo pulled with credentials'] } }, { authFile });
    expect(right.state, right.log).toBe('success');
    expect(right.log).toContain('pulled with credentials');
    expect(right.log).not.toContain(USER.password);
  }, 120_000);

  it('ensureImage reports whether it pulled and whether the image was absent', async () => {
    await forgetImage(docker!, image);
    const lines: string[] = [];
    expect(await ensureImage(docker!, image, { onLine: (l) => lines.push(l) })).toEqual({ pulled: true, wasAbsent: true });
    expect(lines[0]).toBe(`pulling ${image} from ${open.host}`);
    expect(await ensureImage(docker!, image)).toEqual({ pulled: false, wasAbsent: false });
    await expect(ensureImage(docker!, 'Not/A Valid:ref')).rejects.toThrow('is not a valid image reference');
  }, 60_000);
});

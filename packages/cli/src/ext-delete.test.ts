import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildPackage } from '@tessera/extension-packages';
import { startTestServer, writeShellExtension, type TestServer } from '../../server/src/__fixtures__/test-server.ts';
import { ApiClient } from './api-client.ts';
import { extDeleteCommand } from './commands/ext-command.ts';
import { runCli } from './__fixtures__/run-cli.ts';

describe('tessera ext delete', () => {
  let work: string;
  let s: TestServer;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'tessera-ext-delete-cli-'));
    s = await startTestServer();
  }, 30_000);
  afterAll(async () => {
    await s?.close();
    await rm(work, { recursive: true, force: true });
  });
  const cli = (...args: string[]) => runCli({ url: s.url, cwd: work, args });

  const uploadVersion = async (name: string, version: string): Promise<void> => {
    const root = await mkdtemp(join(work, 'src-'));
    const dir = await writeShellExtension(root, name, [{ id: name, tasks: [{ id: 'work', level: 'batch', sh: 'exit 0' }] }]);
    const path = join(dir, 'tessera-extension.json');
    await writeFile(path, JSON.stringify({ ...(JSON.parse(await readFile(path, 'utf8')) as object), version }));
    const built = await buildPackage(dir, { out: join(work, `${name}-${version}.tgz`) });
    const res = await fetch(`${s.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip' }, body: await readFile(built.file) });
    expect(res.status).toBe(201);
  };
  const versions = async (name: string): Promise<string[]> => ((await s.call('GET', `/api/extensions/${name}`)).body.versions as { version: string }[]).map((v) => v.version);
  const stored = async (prefix: string): Promise<string[]> => (await readdir(join(s.home, 'extensions', 'store'))).filter((d) => d.startsWith(prefix));

  it('asks first (refuses without a terminal), deletes with --yes, and says why the server refuses', async () => {
    await uploadVersion('cli-del', '1.0.0');
    await uploadVersion('cli-del', '2.0.0');

    const usage = await cli('ext', 'delete', 'cli-del');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('name the version to delete as <name>@<version> (got "cli-del")');

    const refused = await cli('ext', 'delete', 'cli-del@1.0.0');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('refusing to delete cli-del@1.0.0 without confirmation: there is no terminal to ask on. Add --yes');
    expect(await versions('cli-del')).toEqual(['2.0.0', '1.0.0']);

    // On a terminal (streams that say they are one), in process: a "no" keeps it, a "yes" deletes it.
    const api = new ApiClient(s.url);
    const answer = async (text: string): Promise<number> => {
      const input = Object.assign(new PassThrough(), { isTTY: true });
      const output = Object.assign(new PassThrough(), { isTTY: true });
      output.resume();
      setTimeout(() => input.write(text), 50);
      return extDeleteCommand(api, 'cli-del@1.0.0', {}, { input, output });
    };
    expect(await answer('n\n')).toBe(1);
    expect(await versions('cli-del')).toEqual(['2.0.0', '1.0.0']);
    expect(await answer('y\n')).toBe(0);
    expect(await versions('cli-del')).toEqual(['2.0.0']);
    expect(await stored('cli-del@1.0.0+')).toEqual([]);

    // The installed version: the server's reason, exit 1.
    expect((await cli('ext', 'install', 'cli-del@2.0.0')).code).toBe(0);
    const installed = await cli('ext', 'delete', 'cli-del@2.0.0', '--yes');
    expect(installed.code).toBe(1);
    expect(installed.stderr).toContain('cli-del@2.0.0 is installed: uninstall it first (tessera ext uninstall cli-del');
    expect(await stored('cli-del@2.0.0+')).toHaveLength(1);

    expect((await cli('ext', 'uninstall', 'cli-del')).code).toBe(0);
    const deleted = await cli('ext', 'delete', 'cli-del@2.0.0', '--yes');
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(deleted.stdout).toMatch(/^deleted cli-del@2\.0\.0 \(.+\) from the catalog\n$/);
    expect(await stored('cli-del@')).toEqual([]);

    const gone = await cli('ext', 'delete', 'cli-del@2.0.0', '--yes', '--json');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('extension "cli-del" is not in the catalog');

    const builtin = await cli('ext', 'delete', `hello-world@${(await versions('hello-world'))[0]}`, '--yes');
    expect(builtin.code).toBe(1);
    expect(builtin.stderr).toMatch(/is built in .*it cannot be deleted; uninstall it/);
  }, 90_000);
});

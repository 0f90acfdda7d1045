import { randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { MB, crafted, extensionFiles, metaEntry, metaFor, refused, refusedWith, removeTemps, tgz, type Entry } from './__fixtures__/package-archives.ts';

afterEach(removeTemps);

// Archive entries that would reach outside the package or past a size limit: refused before anything is kept.
describe('unpackPackage', () => {
  it('refuses an entry with an absolute path', async () => {
    const files = [...extensionFiles(), { name: '/etc/evil.sh', data: Buffer.from('rm -rf /') }];
    await refused(await crafted(files), 'TESSERA_INVALID_PACKAGE', 'entry "/etc/evil.sh" has an absolute path');
  });

  it('refuses an entry whose name or path is longer than a file system takes, with 400, not ENAMETOOLONG', async () => {
    const longName = [...extensionFiles(), { name: `extension/${'n'.repeat(300)}.txt`, data: Buffer.from('x') }];
    await refused(await crafted(longName), 'TESSERA_INVALID_PACKAGE', /has a name of 304 bytes \(at most 255\)/);
    const longPath = [...extensionFiles(), { name: `extension/${'dir/'.repeat(1100)}f.txt`, data: Buffer.from('x') }];
    await refused(await crafted(longPath), 'TESSERA_INVALID_PACKAGE', /has a path of \d+ bytes \(at most 4096\)/);
  });

  it('refuses an entry that climbs out with ".."', async () => {
    const files = [...extensionFiles(), { name: 'extension/../../evil.sh', data: Buffer.from('x') }];
    await refused(await tgz([metaEntry(metaFor(extensionFiles())), ...files]), 'TESSERA_INVALID_PACKAGE', 'entry "extension/../../evil.sh" climbs out of the archive with ".."');
  });

  it('refuses a symlink entry', async () => {
    const archive = await tgz([metaEntry(metaFor(extensionFiles())), ...extensionFiles(), { name: 'extension/passwd', type: 'symlink', linkname: '/etc/passwd' }]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', 'entry "extension/passwd" is a link (to "/etc/passwd")');
  });

  it('refuses a hardlink entry', async () => {
    const archive = await tgz([metaEntry(metaFor(extensionFiles())), ...extensionFiles(), { name: 'extension/copy.json', type: 'link', linkname: 'extension/tessera-extension.json' }]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', 'entry "extension/copy.json" is a link (to "extension/tessera-extension.json")');
  });

  it('refuses an entry that tessera-package.json does not list', async () => {
    const files = extensionFiles();
    const archive = await tgz([metaEntry(metaFor(files)), ...files, { name: 'extension/stowaway.sh', data: Buffer.from('echo hi') }]);
    await refused(archive, 'TESSERA_INVALID_PACKAGE', 'entry "extension/stowaway.sh" is not listed in tessera-package.json');
  });

  it('refuses a listed entry outside extension/ and images/', async () => {
    const files = [...extensionFiles(), { name: 'elsewhere/x.txt', data: Buffer.from('x') }];
    await refused(await crafted(files), 'TESSERA_INVALID_PACKAGE', 'entry "elsewhere/x.txt" is outside extension/ and images/');
  });

  it('refuses an entry that is in the archive twice', async () => {
    const files = extensionFiles();
    await refused(await tgz([metaEntry(metaFor(files)), ...files, files[0]!]), 'TESSERA_INVALID_PACKAGE', 'entry "extension/tessera-extension.json" is in the archive twice');
  });

  it('refuses an archive larger than maxBytes', async () => {
    const big = randomBytes(64 * 1024); // does not compress
    const files = [...extensionFiles(), { name: 'extension/big.bin', data: big }];
    const a = await crafted(files);
    expect(a.length).toBeGreaterThan(32 * 1024);
    await refusedWith(a, 32 * 1024, 'TESSERA_PAYLOAD_TOO_LARGE', 'it is larger than the limit of', 'TESSERA_EXTENSION_MAX_PACKAGE_MB');
  });

  it('refuses an archive that unpacks to more than maxBytes (a gzip bomb)', async () => {
    const zeros = Buffer.alloc(8 * MB);
    const bomb = await crafted([...extensionFiles(), { name: 'extension/zeros.bin', data: zeros }]);
    expect(bomb.length).toBeLessThan(64 * 1024);
    await refusedWith(bomb, 1 * MB, 'TESSERA_PAYLOAD_TOO_LARGE', 'it unpacks to more than the limit of 1 MB');
  });

  it('refuses an entry that is both a file and a folder with 400, not a server error', async () => {
    const files: Entry[] = [...extensionFiles(), { name: 'extension/a', data: Buffer.from('file') }, { name: 'extension/a/b', data: Buffer.from('below a file') }];
    await refused(await crafted(files), 'TESSERA_INVALID_PACKAGE', 'both a file and a folder');
  });

  it('refuses damaged gzip data (a bad checksum, a bad code table) with 400, not a 500', async () => {
    const good = await crafted(extensionFiles());
    // The CRC-32 in the gzip trailer: the data inflates, then fails "incorrect data check".
    const badCrc = Buffer.from(good);
    badCrc[badCrc.length - 6] = badCrc[badCrc.length - 6]! ^ 0xff;
    await refusedWith(badCrc, MB, 'TESSERA_INVALID_PACKAGE', 'gzip data is damaged');
    // The first block's header: "invalid block type" or a bad code lengths set.
    const badBlock = Buffer.from(good);
    badBlock[10] = badBlock[10]! ^ 0x06;
    await refusedWith(badBlock, MB, 'TESSERA_INVALID_PACKAGE', '');
  });

  it('refuses gzip data that goes on inflating after the end of the tar', async () => {
    const good = gunzipSync(await crafted(extensionFiles()));
    const archive = gzipSync(Buffer.concat([good, Buffer.alloc(4 * MB)]));
    expect(archive.length).toBeLessThan(MB);
    await refusedWith(archive, MB / 2, 'TESSERA_PAYLOAD_TOO_LARGE', 'unpacks to more than the limit');
  });

  it.each([
    ['tagged with another name', { RepoTags: ['tessera/base-python:bookworm'] }, undefined, 'it is tagged tessera/base-python:bookworm, not tessera-ext/convert:1.2.3'],
    ['tagged with two names', { RepoTags: ['tessera-ext/convert:1.2.3', 'victim:1'] }, undefined, 'it is tagged tessera-ext/convert:1.2.3, victim:1'],
    ['of another id', { RepoTags: ['tessera-ext/convert:1.2.3'], Config: `${'b'.repeat(64)}.json` }, undefined, `its id is sha256:${'b'.repeat(64)}`],
    ['naming another image in its repositories file', { RepoTags: ['tessera-ext/convert:1.2.3'] }, { victim: { '1': 'x' } }, 'its repositories file also names victim:1'],
  ])('refuses an image archive %s (docker load would move that tag)', async (_what, manifestEntry, repositories, message) => {
    const id = `sha256:${'a'.repeat(64)}`;
    const imageTar = await tgz([
      { name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: `${'a'.repeat(64)}.json`, Layers: [], ...manifestEntry }])) },
      ...(repositories ? [{ name: 'repositories', data: Buffer.from(JSON.stringify(repositories)) }] : []),
    ]);
    const files: Entry[] = [...extensionFiles({ images: [{ name: 'tessera-ext/convert:1.2.3', context: '.compiled' }] }), { name: 'images/0.tar', data: gunzipSync(imageTar) }];
    await refused(await crafted(files, { images: [{ name: 'tessera-ext/convert:1.2.3', id, file: 'images/0.tar' }] }), 'TESSERA_INVALID_PACKAGE', `image tessera-ext/convert:1.2.3: ${message}`);
  });
});

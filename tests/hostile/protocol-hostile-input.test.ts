/**
 * The hostile-input suite (issue 13), beyond DICOM files: raw DIMSE PDU streams and
 * extension packages, mutated with a seed, sent to a real server process. The server
 * must answer each with a refusal (never a 5xx), close what it cannot read, leave
 * nothing half-written, and go on serving well-behaved clients.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { associateRqPdu, pDataPdu, rawPdu, requestCommand } from '../../packages/dicom/src/dimse/__fixtures__/raw-dimse-peer.ts';
import { dagSpec, extensionFiles, crafted } from '../../packages/extension-packages/src/package/__fixtures__/package-archives.ts';
import { freePort, killHard, signedInTokens, startServerProcess, type ServerProcess } from '../../packages/server/src/__fixtures__/server-process.ts';
import { layoutOf } from './lib/dicom-layout.ts';
import { PYDICOM_CORPUS } from './lib/dicom-mutator.ts';
import { Prng } from './lib/prng.ts';

const run = promisify(execFile);
const missing = !existsSync(join(PYDICOM_CORPUS, 'CT_small.dcm'));
const skip = missing && process.env.CI !== 'true';

let home: string | undefined;
let servers: ServerProcess[] = [];
afterEach(async () => {
  for (const s of servers) await killHard(s);
  servers = [];
  if (home) await rm(home, { recursive: true, force: true });
  home = undefined;
});

const CT_IMAGE = '1.2.840.10008.5.1.4.1.1.2';
const VERIFICATION = '1.2.840.10008.1.1';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

/** A well-behaved association as bytes: associate, C-ECHO, C-STORE of CT_small (in 4 KB PDUs), release. */
function goodStream(sopInstanceUid: string): Buffer[] {
  const ct = readFileSync(join(PYDICOM_CORPUS, 'CT_small.dcm'));
  const dataset = ct.subarray(layoutOf(ct).datasetStart);
  const pdus = [
    associateRqPdu({ contexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_LE] }, { id: 3, abstractSyntax: CT_IMAGE, transferSyntaxes: [EXPLICIT_LE] }] }),
    pDataPdu([{ contextId: 1, command: true, last: true, data: requestCommand({ commandField: 0x0030, messageId: 1, sopClassUid: VERIFICATION, hasDataset: false }) }]),
    pDataPdu([{ contextId: 3, command: true, last: true, data: requestCommand({ commandField: 0x0001, messageId: 2, sopClassUid: CT_IMAGE, sopInstanceUid, hasDataset: true }) }]),
  ];
  for (let at = 0; at < dataset.length; at += 4096) {
    pdus.push(pDataPdu([{ contextId: 3, command: false, last: at + 4096 >= dataset.length, data: dataset.subarray(at, at + 4096) }]));
  }
  pdus.push(rawPdu({ type: 0x05, body: Buffer.alloc(4) }));
  return pdus;
}

/** One seeded mutation of the PDU stream, and its name. */
function mutatePdus(pdus: Buffer[], prng: Prng): { bytes: Buffer; mutation: string } {
  const list = pdus.map((p) => Buffer.from(p));
  const i = prng.int(0, list.length - 1);
  const pdu = list[i]!;
  const kind = prng.pick(['flip', 'truncate', 'length', 'type', 'garbage', 'repeat', 'drop', 'early-data', 'huge-length']);
  switch (kind) {
    case 'flip':
      for (let n = prng.int(1, 6); n > 0; n--) {
        const at = prng.int(0, pdu.length - 1);
        pdu[at] = pdu[at]! ^ (1 << prng.int(0, 7));
      }
      break;
    case 'truncate':
      list.splice(i, list.length - i, pdu.subarray(0, prng.int(0, pdu.length - 1)));
      break;
    case 'length':
      pdu.writeUInt32BE(prng.pick([0, 1, 5, pdu.length - 7, pdu.length + 100, prng.int(0, 1 << 20)]), 2);
      break;
    case 'huge-length':
      pdu.writeUInt32BE(prng.pick([0xffffffff, 0x7fffffff, 0x10000000]), 2);
      break;
    case 'type':
      pdu[0] = prng.pick([0, 3, 6, 7, 8, 0x41, 0xff]);
      break;
    case 'garbage': {
      const junk = Buffer.alloc(prng.int(1, 300));
      for (let k = 0; k < junk.length; k++) junk[k] = prng.int(0, 255);
      list.splice(i, 0, junk);
      break;
    }
    case 'repeat':
      list.splice(i, 0, Buffer.from(pdu), Buffer.from(pdu));
      break;
    case 'drop':
      list.splice(i, 1);
      break;
    case 'early-data':
      list.unshift(list[prng.int(1, list.length - 1)]!);
      break;
  }
  return { bytes: Buffer.concat(list), mutation: `${kind} at PDU ${i}` };
}

/** Sends the bytes, half-closes, and waits for the server to close: 'closed', or 'hang' past the timeout. */
function sendRaw(port: number, bytes: Buffer, timeoutMs: number): Promise<'closed' | 'hang' | 'refused'> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('hang');
    }, timeoutMs);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') {
        clearTimeout(timer);
        resolve('refused');
      }
    });
    socket.on('data', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    socket.once('connect', () => socket.end(bytes));
  });
}

async function storeFilesOtherThanInstances(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && !entry.name.endsWith('.dcm')) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe.skipIf(skip)('hostile DIMSE PDU streams', () => {
  it('400 mutated association streams: each is closed promptly, nothing half-written stays, and dcmtk still echoes and stores', { timeout: 180_000 }, async () => {
    expect(missing, `${PYDICOM_CORPUS} is missing (apt-get install python3-pydicom)`).toBe(false);
    home = await mkdtemp(join(tmpdir(), 'tessera-pdu-fuzz-'));
    const dicomPort = await freePort();
    const server = await startServerProcess({ TESSERA_HOME: join(home, 'home'), DICOM_PORT: String(dicomPort), TESSERA_LOG_LEVEL: 'error', TESSERA_DEFAULT_EXTENSIONS: 'none' });
    servers.push(server);
    const prng = new Prng(4242);
    const outcomes: Record<string, number> = {};
    const hangs: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < 400) {
        const n = next++;
        const { bytes, mutation } = mutatePdus(goodStream(`1.2.826.0.1.3680043.9.7133.${n + 1}`), prng);
        const outcome = await sendRaw(dicomPort, bytes, 10_000);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        if (outcome !== 'closed') hangs.push(`stream ${n} (${mutation}): ${outcome}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    expect(hangs, JSON.stringify(outcomes)).toEqual([]);
    expect(server.child.exitCode, server.output()).toBeNull();

    const env = { ...process.env, TCP_NODELAY: '1' };
    await run('echoscu', ['-aec', 'TESSERA', '127.0.0.1', String(dicomPort)], { env });
    await run('storescu', ['-aec', 'TESSERA', '127.0.0.1', String(dicomPort), join(PYDICOM_CORPUS, 'MR_small.dcm')], { env });
    const listed = (await (await fetch(`${server.url}/dicom-web/instances?SOPInstanceUID=1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457`)).json()) as unknown[];
    expect(listed).toHaveLength(1);
    expect(await storeFilesOtherThanInstances(join(home, 'home', 'dicom'))).toEqual([]);
  });
});

function flipBit(b: Buffer, prng: Prng): void {
  const at = prng.int(0, b.length - 1);
  b[at] = b[at]! ^ (1 << prng.int(0, 7));
}

/** The entries of a valid package as tar bytes (not yet gzipped). */
async function validPackageTar(): Promise<Buffer> {
  return gunzipSync(await crafted(extensionFiles()));
}

describe('hostile extension packages', () => {
  it('150 mutated packages (gzip, tar and manifest level): a 4xx naming the fault for each, never a 5xx, nothing left in the store; a good package still goes in', { timeout: 180_000 }, async () => {
    home = await mkdtemp(join(tmpdir(), 'tessera-pkg-fuzz-'));
    // Signed in as an admin (installing packages is an admin's), access control on.
    const server = await startServerProcess({ TESSERA_HOME: join(home, 'home'), DICOM_PORT: 'off', TESSERA_LOG_LEVEL: 'error', TESSERA_DEFAULT_EXTENSIONS: 'none', TESSERA_AUTH: 'on', XDG_STATE_HOME: join(home, 'state') });
    const { admin } = await signedInTokens(server, join(home, 'state'));
    const auth = { authorization: `Bearer ${admin}` };
    servers.push(server);
    const prng = new Prng(777);
    const tar = await validPackageTar();
    const good = gzipSync(tar);
    const statuses: Record<string, number> = {};
    const faults: string[] = [];
    const accepted: string[] = [];
    for (let n = 0; n < 150; n++) {
      let body: Buffer;
      let mutation: string;
      const kind = prng.pick(['gzip-flip', 'gzip-truncate', 'tar-flip', 'tar-header', 'tar-truncate', 'manifest', 'spec']);
      if (kind === 'gzip-flip' || kind === 'gzip-truncate') {
        body = Buffer.from(good);
        if (kind === 'gzip-flip') for (let k = prng.int(1, 4); k > 0; k--) flipBit(body, prng);
        else body = body.subarray(0, prng.int(0, body.length - 1));
        mutation = kind;
      } else if (kind.startsWith('tar')) {
        const t = Buffer.from(tar);
        if (kind === 'tar-flip') for (let k = prng.int(1, 8); k > 0; k--) flipBit(t, prng);
        else if (kind === 'tar-header') {
          // A header field of a later entry: name, mode, size, checksum, type or link name.
          const header = 512 * prng.int(1, Math.max(1, Math.floor(t.length / 512) - 3));
          const [at, len] = prng.pick([[0, 100], [100, 8], [124, 12], [148, 8], [156, 1], [157, 100], [345, 155]] as const);
          for (let k = 0; k < len; k++) t[header + at + k] = prng.pick([0, 0x2e, 0x2f, 0x37, 0xff, 0x41]);
        }
        body = gzipSync(kind === 'tar-truncate' ? t.subarray(0, prng.int(0, t.length - 1)) : t);
        mutation = kind;
      } else {
        const manifest: Record<string, unknown> = kind === 'manifest'
          ? prng.pick([{ name: '../escape' }, { name: 'x'.repeat(10_000) }, { version: 'not-semver' }, { kind: 'virus' }, { workflows: ['../../etc/passwd'] }, { name: 42 }, { version: { a: 1 } }, { workflows: 'x' }, { name: 'NUL\0name' }])
          : {};
        const spec = kind === 'spec'
          ? prng.pick([
              { ...dagSpec('convert'), tasks: 'x' },
              dagSpec('convert', [{ id: 'a', upstream: ['b'] }, { id: 'b', upstream: ['a'] }]),
              dagSpec('convert', [{ id: 'a', upstream: ['missing'] }]),
              dagSpec('convert', Array.from({ length: 5000 }, (_, k) => ({ id: `t${k}`, upstream: k ? [`t${k - 1}`] : [] }))),
              { ...dagSpec('convert'), spec_version: 99 },
              null,
            ])
          : dagSpec('convert');
        const version = `1.2.${n + 10}`;
        body = await crafted(extensionFiles({ version, ...manifest }, spec), { version: typeof manifest.version === 'string' ? manifest.version : version });
        mutation = `${kind} ${JSON.stringify(kind === 'manifest' ? manifest : 'spec').slice(0, 80)}`;
      }
      const res = await fetch(`${server.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip', ...auth }, body: new Uint8Array(body), signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status >= 500) faults.push(`package ${n} (${mutation}): ${res.status} ${text.slice(0, 200)}`);
      else if (res.status >= 400) expect((JSON.parse(text) as { error: { message: string } }).error.message.length, text).toBeGreaterThan(10);
      else {
        const pkg = JSON.parse(text) as { name: string; version: string };
        accepted.push(`${pkg.name}@${pkg.version}`);
      }
    }
    expect(faults, JSON.stringify(statuses)).toEqual([]);
    expect(statuses['400'] ?? 0).toBeGreaterThan(50);
    expect(server.child.exitCode, server.output()).toBeNull();
    // Nothing half-written: the store holds only what was accepted.
    const list = (await (await fetch(`${server.url}/api/extensions`, { headers: auth })).json()) as { items: Array<{ name: string; versions: Array<{ version: string; source: string }> }> };
    const listed = list.items.flatMap((e) => e.versions.filter((v) => v.source === 'package').map((v) => `${e.name}@${v.version}`));
    expect(listed.sort()).toEqual([...new Set(accepted)].sort());
    const store = join(home, 'home', 'extensions', 'store');
    const leftovers = existsSync(store) ? (await readdir(store)).filter((n) => n.startsWith('.') || n.includes('tmp')) : [];
    expect(leftovers).toEqual([]);
    const ok = await fetch(`${server.url}/api/extensions/packages`, { method: 'POST', headers: { 'content-type': 'application/gzip', ...auth }, body: new Uint8Array(await crafted(extensionFiles({ version: '9.9.9' }), { version: '9.9.9' })) });
    expect(ok.status, await ok.text()).toBe(201);
  });
});

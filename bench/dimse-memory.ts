/**
 * Hostile C-STORE memory (issue 13): the real server in its own process, and N
 * associations that each send one large dataset slowly (P-DATA-TF of 256 KiB,
 * paced to last --seconds), half of them aborting part way, half completing.
 * The server's RSS is sampled from /proc/<pid>/status (VmRSS, and VmHWM at the end).
 *
 *   npx tsx bench/dimse-memory.ts [--associations 8] [--mb 400] [--seconds 30] [--abort 0.5]
 *       [--repo DIR] [--port 18790] [--dicom-port 14290] [--workdir DIR] [--keep]
 *
 * --repo runs another checkout's server (e.g. an older commit from `git archive`,
 * with its own node_modules) against the same peers, for a before/after figure.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { associateRqPdu, pDataPdu, requestCommand } from '../packages/dicom/src/dimse/__fixtures__/raw-dimse-peer.ts';
import { PduReader, type Pdu } from '../packages/dicom/src/dimse/pdu-reader.ts';
import { element, text } from '../packages/dicom/src/store/part10-writer.ts';
import { newUid } from '../packages/dicom/src/samples/sample-ct.ts';
import { TesseraServer } from './lib/tessera-server.ts';

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    associations: { type: 'string', default: '8' },
    mb: { type: 'string', default: '400' },
    seconds: { type: 'string', default: '30' },
    abort: { type: 'string', default: '0.5' },
    repo: { type: 'string', default: HERE },
    port: { type: 'string', default: '18790' },
    'dicom-port': { type: 'string', default: '14290' },
    workdir: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const ASSOCIATIONS = Number(args.associations);
const DATASET_BYTES = Number(args.mb) * 1024 * 1024;
const SECONDS = Number(args.seconds);
const ABORTING = Math.round(ASSOCIATIONS * Number(args.abort));
const DICOM_PORT = Number(args['dicom-port']);
const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const PDU_DATA_BYTES = 256 * 1024;

const log = (msg: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

function rssOf(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** The dataset's elements before the pixel data, and the pixel data header; the pixel values follow (zeros). */
function datasetHead(sop: string, pixelBytes: number): Buffer {
  const us = (n: number): Buffer => Buffer.from([n & 0xff, n >> 8]);
  const side = Math.floor(Math.sqrt(pixelBytes / 2));
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.write('OW', 4, 'latin1');
  pixelHeader.writeUInt32LE(pixelBytes, 8);
  return Buffer.concat([
    element(0x0008, 0x0016, 'UI', text(CT_STORAGE, '\0')),
    element(0x0008, 0x0018, 'UI', text(sop, '\0')),
    element(0x0008, 0x0060, 'CS', text('CT', ' ')),
    element(0x0010, 0x0010, 'PN', text('Memory^Bench', ' ')),
    element(0x0010, 0x0020, 'LO', text('BENCH-MEM', ' ')),
    element(0x0020, 0x000d, 'UI', text(newUid(), '\0')),
    element(0x0020, 0x000e, 'UI', text(newUid(), '\0')),
    element(0x0020, 0x0013, 'IS', text('1', ' ')),
    element(0x0028, 0x0002, 'US', us(1)),
    element(0x0028, 0x0004, 'CS', text('MONOCHROME2', ' ')),
    element(0x0028, 0x0010, 'US', us(side)),
    element(0x0028, 0x0011, 'US', us(Math.floor(pixelBytes / 2 / side))),
    element(0x0028, 0x0100, 'US', us(16)),
    element(0x0028, 0x0101, 'US', us(16)),
    element(0x0028, 0x0102, 'US', us(15)),
    element(0x0028, 0x0103, 'US', us(0)),
    pixelHeader,
  ]);
}

/** One hostile-but-valid peer: associates, sends its dataset paced over SECONDS, then aborts at `abortAt` or waits for the C-STORE-RSP. */
async function peer(index: number, abortAt: number | undefined): Promise<string> {
  const socket: Socket = await new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port: DICOM_PORT }, () => res(s));
    s.once('error', rej);
  });
  socket.on('error', () => undefined);
  const reader = new PduReader({ maxLength: () => 0xffffffff });
  const waiting: Array<(pdu: Pdu | undefined) => void> = [];
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    for (let pdu = reader.next(); pdu; pdu = reader.next()) waiting.shift()?.(pdu);
  });
  socket.once('close', () => waiting.splice(0).forEach((w) => w(undefined)));
  const next = (): Promise<Pdu | undefined> => new Promise((r) => waiting.push(r));
  const write = (bytes: Buffer): Promise<void> => new Promise((r) => (socket.write(bytes) ? r() : socket.once('drain', () => r())));
  const ac = next();
  socket.write(associateRqPdu({ callingAe: `MEMBENCH${index}`, contexts: [{ id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] }] }));
  const answer = await ac;
  if (answer?.type !== 0x02) {
    socket.destroy();
    return `association ${index}: not accepted (PDU type ${answer?.type ?? 'none'}, ${answer ? [...answer.body.subarray(0, 4)].join(',') : 'closed'})`;
  }
  const sop = newUid();
  const head = datasetHead(sop, DATASET_BYTES);
  const total = head.length + DATASET_BYTES;
  await write(pDataPdu([{ contextId: 1, command: true, last: true, data: requestCommand({ commandField: 1, messageId: 1, sopClassUid: CT_STORAGE, sopInstanceUid: sop, hasDataset: true }) }]));
  const zeros = Buffer.alloc(PDU_DATA_BYTES);
  const started = performance.now();
  const stopAt = abortAt === undefined ? total : Math.floor(total * abortAt);
  let sent = 0;
  while (sent < stopAt) {
    const first = sent === 0;
    const n = Math.min(PDU_DATA_BYTES - (first ? head.length : 0), total - sent - (first ? head.length : 0));
    const data = first ? Buffer.concat([head, zeros.subarray(0, n)]) : zeros.subarray(0, n);
    sent += data.length;
    await write(pDataPdu([{ contextId: 1, command: false, last: sent >= total, data }]));
    // Paced: the whole dataset over SECONDS.
    const due = (sent / total) * SECONDS * 1000 - (performance.now() - started);
    if (due > 5) await sleep(due);
  }
  if (abortAt !== undefined) {
    socket.write(Buffer.from([0x07, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    socket.end();
    return `association ${index}: aborted after ${(sent / 1048576).toFixed(0)} MB`;
  }
  const rsp = await next();
  const body = rsp?.body;
  // The status is the US value of (0000,0900) in the response command.
  const at = body ? body.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x09, 0x02, 0, 0, 0])) : -1;
  const status = body && at >= 0 ? body.readUInt16LE(at + 8) : undefined;
  socket.write(Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
  await next();
  socket.destroy();
  return `association ${index}: sent ${(sent / 1048576).toFixed(0)} MB, C-STORE-RSP status 0x${status?.toString(16).padStart(4, '0') ?? '????'} after ${((performance.now() - started) / 1000).toFixed(1)} s`;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(resolve(args.workdir ?? tmpdir()), 'tessera-dimse-memory-'));
  const home = join(root, 'home');
  mkdirSync(join(root, 'extensions'), { recursive: true });
  log(`server from ${args.repo}; ${ASSOCIATIONS} associations x ${args.mb} MB over ~${SECONDS} s, ${ABORTING} of them aborting part way`);
  const server = await TesseraServer.start({
    repo: resolve(args.repo),
    home,
    extensionsDir: join(root, 'extensions'),
    port: Number(args.port),
    parallelism: 2,
    logFile: join(root, 'server.log'),
    env: { DICOM_PORT: String(DICOM_PORT), TESSERA_WEB_BUILD: 'off', TESSERA_DEFAULT_EXTENSIONS: 'none' },
  });
  const pid = server.pid!;
  const idle = rssOf(pid, 'VmRSS');
  let peak = idle;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(pid, 'VmRSS'));
  }, 100);
  const started = performance.now();
  try {
    // Aborting ones stop at 50% to 90% of their dataset.
    const outcomes = await Promise.all(Array.from({ length: ASSOCIATIONS }, (_, i) => peer(i, i < ABORTING ? 0.5 + (0.4 * i) / Math.max(1, ABORTING) : undefined)));
    const elapsed = (performance.now() - started) / 1000;
    for (const line of outcomes) log(line);
    await sleep(5000);
    const after = rssOf(pid, 'VmRSS');
    const hwm = rssOf(pid, 'VmHWM');
    const leftovers = readdirSync(join(home, 'dicom', '.incoming')).length;
    log(`files left in the store's .incoming: ${leftovers}`);
    console.log('');
    console.log(`| associations x MB | aborted | wall time | server RSS idle | peak RSS (sampled / VmHWM) | RSS 5 s after |`);
    console.log(`| --- | ---: | ---: | ---: | ---: | ---: |`);
    console.log(`| ${ASSOCIATIONS} x ${args.mb} | ${ABORTING} | ${elapsed.toFixed(0)} s | ${idle.toFixed(0)} MB | **${peak.toFixed(0)} / ${hwm.toFixed(0)} MB** | ${after.toFixed(0)} MB |`);
  } finally {
    clearInterval(sampler);
    await server.stop();
    if (!args.keep) rmSync(root, { recursive: true, force: true });
    else log(`kept ${root}`);
  }
}

await main();

/**
 * C-STORE with a sender allowlist on and off (issue 14): the real server in its own
 * process, the same instances sent to a project without a policy ("off") and to one
 * whose list has --entries networks with 127.0.0.1 last ("on": every association scans
 * the whole list before it is allowed). Two ways of sending, since the check is made once
 * per association:
 *
 * - one association: dcmtk's storescu sends every instance over one association;
 * - an association per instance: our own requestor (raw PDUs) opens an association,
 *   sends one instance, releases, and starts over: the check's share is the largest.
 *
 * Each repetition sends to fresh projects (so every store is a new instance); medians of
 * --reps. Both ways measure off and on side by side, so that both meet the same load of
 * the machine (on a shared machine the rate of runs a few seconds apart swings by a factor
 * of two): two storescu at once, one to each project; and, an association per instance, each instance to the open project and to
 * the guarded one, one right after the other, in alternating order; the median difference
 * of those pairs is the allowlist's cost per association. Also the in-process cost of one
 * check against the same list, with no match (the longest path).
 *
 *   npx tsx bench/dicom-senders.ts [--count 500] [--reps 3] [--entries 100]
 *       [--port 18767] [--dicom-port 14245] [--repo DIR] [--data-dir DIR] [--keep]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { associateRqPdu, pDataPdu, requestCommand } from '../packages/dicom/src/dimse/__fixtures__/raw-dimse-peer.ts';
import { PduReader, type Pdu } from '../packages/dicom/src/dimse/pdu-reader.ts';
import { parseSenderNetwork, SenderMatcher, type SenderNetwork } from '../packages/dicom/src/service/sender-address.ts';
import { dcmtkVersion, storeScu } from './lib/dcmtk-peers.ts';
import { generateCtInstances, type GeneratedSet } from './lib/dicom-gen.ts';
import { gitState } from './lib/git-state.ts';
import { median, num, percentile } from './lib/stats.ts';
import { TesseraServer } from './lib/tessera-server.ts';

const HERE = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '500' },
    reps: { type: 'string', default: '3' },
    entries: { type: 'string', default: '100' },
    port: { type: 'string', default: '18767' },
    'dicom-port': { type: 'string', default: '14245' },
    repo: { type: 'string', default: HERE },
    'data-dir': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const COUNT = Number(args.count);
const REPS = Number(args.reps);
const ENTRIES = Number(args.entries);
const DICOM_PORT = Number(args['dicom-port']);
const CT_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

const log = (msg: string): void => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

/** `ENTRIES` networks of which only the last, 127.0.0.1, allows this machine. */
function allowlist(): { address: string; note: string }[] {
  // Half IPv4 /24s, half IPv6 /32s, all different (up to 65,536 of each).
  const list = Array.from({ length: ENTRIES - 1 }, (_, i) => ({ address: i % 2 ? `10.${(i >> 8) & 255}.${i & 255}.0/24` : `fd00:${i.toString(16)}::/32`, note: `site ${i}` }));
  return [...list, { address: '127.0.0.1', note: 'the benchmark' }];
}

/** The dataset of a Part 10 file (what follows the meta group) and its SOP Instance UID (0002,0003). */
function readInstance(file: string): { dataset: Buffer; sop: string } {
  const bytes = readFileSync(file);
  const metaEnd = 144 + bytes.readUInt32LE(140);
  let sop = '';
  for (let pos = 144; pos < metaEnd; ) {
    const element = bytes.readUInt16LE(pos + 2);
    const vr = bytes.toString('latin1', pos + 4, pos + 6);
    const long = ['OB', 'OW', 'SQ', 'UN', 'UT', 'UC', 'UR'].includes(vr);
    const length = long ? bytes.readUInt32LE(pos + 8) : bytes.readUInt16LE(pos + 6);
    const at = pos + (long ? 12 : 8);
    if (element === 0x0003) sop = bytes.toString('latin1', at, at + length).replace(/\0+$/, '');
    pos = at + length;
  }
  if (!sop) throw new Error(`${file}: no Media Storage SOP Instance UID in its meta group`);
  return { dataset: bytes.subarray(metaEnd), sop };
}

/** A requestor on one socket: PDUs in order. */
async function open(): Promise<{ socket: Socket; next: () => Promise<Pdu | undefined> }> {
  const socket: Socket = await new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port: DICOM_PORT }, () => res(s));
    s.once('error', rej);
  });
  socket.setNoDelay(true);
  const reader = new PduReader({ maxLength: () => 0xffffffff });
  const got: Pdu[] = [];
  const waiting: Array<(pdu: Pdu | undefined) => void> = [];
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    for (let pdu = reader.next(); pdu; pdu = reader.next()) {
      const w = waiting.shift();
      if (w) w(pdu);
      else got.push(pdu);
    }
  });
  socket.on('error', () => undefined);
  socket.once('close', () => waiting.splice(0).forEach((w) => w(undefined)));
  return { socket, next: () => (got.length ? Promise.resolve(got.shift()) : new Promise((r) => waiting.push(r))) };
}

/** Sends one instance over an association of its own (associate, C-STORE, release); its wall time in ms. Throws on any refusal or failure status. */
async function storeOne(calledAe: string, inst: { dataset: Buffer; sop: string }): Promise<number> {
  const t0 = performance.now();
  const { socket, next } = await open();
  socket.write(associateRqPdu({ calledAe, callingAe: 'BENCHSCU', maxPduLength: 1 << 20, contexts: [{ id: 1, abstractSyntax: CT_STORAGE, transferSyntaxes: [EXPLICIT_LE] }] }));
  const ac = await next();
  if (ac?.type !== 0x02) throw new Error(`association to ${calledAe}: not accepted (PDU type ${ac?.type ?? 'none'}${ac?.type === 0x03 ? `, result ${ac.body[1]}, source ${ac.body[2]}, reason ${ac.body[3]}` : ''})`);
  socket.write(pDataPdu([{ contextId: 1, command: true, last: true, data: requestCommand({ commandField: 1, messageId: 1, sopClassUid: CT_STORAGE, sopInstanceUid: inst.sop, hasDataset: true }) }]));
  socket.write(pDataPdu([{ contextId: 1, command: false, last: true, data: inst.dataset }]));
  const rsp = await next();
  const body = rsp?.body;
  const at = body ? body.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x09, 0x02, 0, 0, 0])) : -1;
  const status = body && at >= 0 ? body.readUInt16LE(at + 8) : undefined;
  if (status !== 0) throw new Error(`${inst.sop} to ${calledAe}: C-STORE-RSP status ${status === undefined ? 'missing' : `0x${status.toString(16)}`}`);
  socket.write(Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
  await next();
  socket.destroy();
  return performance.now() - t0;
}

async function api(server: TesseraServer, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${server.url}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

/** Nanoseconds of one check that finds no match in a list of ENTRIES (the longest path), in this process. */
function checkCostNs(): number {
  const nets = allowlist().map((e) => parseSenderNetwork(e.address)).map((p) => (p.ok ? p.network : undefined)).filter((n): n is SenderNetwork => n !== undefined);
  const m = new SenderMatcher(nets);
  const n = 200_000;
  let hits = 0;
  for (let i = 0; i < 10_000; i++) if (m.match('192.0.2.1')) hits++;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (m.match(i % 2 ? '192.0.2.1' : '::ffff:192.0.2.1')) hits++;
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (hits !== 0) throw new Error('192.0.2.1 matched a list that does not hold it');
  return ns;
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0]!;
  const root = mkdtempSync(join(tmpdir(), 'tessera-senders-bench-'));
  mkdirSync(join(root, 'extensions'), { recursive: true });
  const set: GeneratedSet = generateCtInstances({ dir: args['data-dir'], count: COUNT, studies: Math.max(1, Math.ceil(COUNT / 100)), label: 'senders' });
  const instances = set.files().map(readInstance);
  const rate = (ms: number): number => COUNT / (ms / 1000);
  log(`data: ${set.count} instances (${set.template}, ${num(set.bytes)} bytes each) at ${set.dir}; allowlist of ${ENTRIES} entries, 127.0.0.1 last`);
  const server = await TesseraServer.start({
    repo: resolve(args.repo),
    home: join(root, 'home'),
    extensionsDir: join(root, 'extensions'),
    port: Number(args.port),
    parallelism: 2,
    logFile: join(root, 'server.log'),
    // A loopback server of the benchmark: no sign-in in the way of its own API calls.
    env: { DICOM_PORT: String(DICOM_PORT), TESSERA_AUTH: 'off', TESSERA_DEFAULT_EXTENSIONS: 'none', TESSERA_WEB_BUILD: 'off' },
  });
  const times: Record<'one' | 'each', Record<'off' | 'on', number[]>> = { one: { off: [], on: [] }, each: { off: [], on: [] } };
  /** Per instance of the interleaved case: the association to the guarded project minus the one to the open project, in ms. */
  const pairs: number[] = [];
  /** Every association of the interleaved case, in ms. */
  const each: Record<'off' | 'on', number[]> = { off: [], on: [] };
  const project = async (name: string, mode: 'off' | 'on'): Promise<string> => {
    await api(server, 'POST', '/api/projects', { name });
    if (mode === 'on') await api(server, 'PUT', `/api/projects/${name}/dicom-senders`, { refuse_unknown: true, allowed: allowlist() });
    return `kp-${name}`;
  };
  const storedIn = async (ae: string): Promise<void> => {
    const stored = (await api(server, 'GET', `/api/series?project=${ae.slice(3)}&limit=1`)) as { total: number };
    if (stored.total === 0) throw new Error(`${ae}: nothing stored`);
  };
  try {
    // Warm-up: the first association and the first stores pay for JIT and the database's first pages.
    const warm = await project('warmup', 'on');
    for (const inst of instances.slice(0, 50)) await storeOne(warm, inst);
    for (let rep = 0; rep < REPS; rep++) {
      // storescu, one association each: off and on at the same time, so that both meet the same load of the machine.
      const [offAe, onAe] = [await project(`off-one-${rep}`, 'off'), await project(`on-one-${rep}`, 'on')];
      const [offRun, onRun] = await Promise.all([offAe, onAe].map((aet) => storeScu({ host: '127.0.0.1', port: DICOM_PORT, aet, dir: set.dir })));
      for (const ae of [offAe, onAe]) await storedIn(ae);
      times.one.off.push(offRun!.ms);
      times.one.on.push(onRun!.ms);
      log(`rep ${rep + 1}, one association each, at once: off ${num(rate(offRun!.ms))} instances/s, on ${num(rate(onRun!.ms))} instances/s`);
      // An association per instance, interleaved: each instance goes to both projects, one right
      // after the other (in alternating order), so that both see the same load of the machine.
      const off = await project(`off-each-${rep}`, 'off');
      const on = await project(`on-each-${rep}`, 'on');
      let offMs = 0;
      let onMs = 0;
      for (const [i, inst] of instances.entries()) {
        let a: number;
        let b: number;
        if (i % 2) {
          b = await storeOne(on, inst);
          a = await storeOne(off, inst);
        } else {
          a = await storeOne(off, inst);
          b = await storeOne(on, inst);
        }
        offMs += a;
        onMs += b;
        each.off.push(a);
        each.on.push(b);
        pairs.push(b - a);
      }
      await storedIn(off);
      await storedIn(on);
      times.each.off.push(offMs);
      times.each.on.push(onMs);
      log(`rep ${rep + 1}, an association per instance, interleaved: off ${num(rate(offMs))} instances/s, on ${num(rate(onMs))} instances/s`);
    }
  } finally {
    await server.stop();
  }
  // A refusal is real: the list without 127.0.0.1 is checked by the tests (packages/server/src/dicom/dicom-senders.test.ts).
  const ns = checkCostNs();
  const lines = [
    `C-STORE of ${COUNT} instances (${set.template}, ${num(set.bytes)} bytes) from 127.0.0.1, medians of ${REPS}; allowlist on = ${ENTRIES} entries, the match last`,
    '',
    '| sending | allowlist off | allowlist on | on / off |',
    '| --- | ---: | ---: | ---: |',
    ...(['one', 'each'] as const).map((how) => {
      const off = rate(median(times[how].off));
      const on = rate(median(times[how].on));
      return `| ${how === 'one' ? 'one association each (two storescu at once)' : 'an association per instance (own requestor), interleaved'} | ${num(off)} /s | ${num(on)} /s | ${(on / off).toFixed(3)} |`;
    }),
    '',
    `An association per instance, ${num(pairs.length)} pairs: the median association takes ${median(each.off).toFixed(3)} ms off, ${median(each.on).toFixed(3)} ms on (${(median(each.off) / median(each.on)).toFixed(3)} as a rate); ` +
      `on minus off, median ${num(median(pairs) * 1000)} µs (p25 ${num(percentile(pairs, 25) * 1000)}, p75 ${num(percentile(pairs, 75) * 1000)}). The sums above carry the machine's stalls (p99 of an association: off ${percentile(each.off, 99).toFixed(1)} ms, on ${percentile(each.on, 99).toFixed(1)} ms).`,
    '',
    `One check against the ${ENTRIES} entries, no match (in process): ${num(ns)} ns.`,
    `Runs (instances/s): ${(['one', 'each'] as const).map((h) => `${h}: off ${times[h].off.map((t) => num(rate(t))).join(', ')}; on ${times[h].on.map((t) => num(rate(t))).join(', ')}`).join('; ')}.`,
    `Load average ${loadBefore.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after; Node ${process.version}, DCMTK ${(await dcmtkVersion()) ?? 'not installed'}; ${gitState(resolve(args.repo))}.`,
  ];
  // Judged by the figures the machine's stalls sway least: the interleaved associations' medians (the rates of whole runs are printed above).
  const ratio = median(each.off) / median(each.on);
  lines.push(`Goal (on within 5% of off, an association per instance, median association): ${ratio >= 0.95 ? 'met' : 'NOT met'} (${ratio.toFixed(3)}).`);
  const report = lines.join('\n');
  console.log(`\n${report}\n`);
  const outDir = join(HERE, 'bench', 'out');
  mkdirSync(outDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  writeFileSync(join(outDir, `dicom-senders-${stamp}.json`), JSON.stringify({ count: COUNT, reps: REPS, entries: ENTRIES, times, pairsMs: pairs, associationsMs: each, checkNs: ns }, null, 1));
  writeFileSync(join(outDir, `dicom-senders-${stamp}.md`), `${report}\n`);
  if (args.keep) log(`kept ${root}`);
  else rmSync(root, { recursive: true, force: true });
}

await main();

/**
 * The hostile-input suite's long run (issue 13): seeded mutations of pydicom's test
 * corpus sent to Tessera and to Orthanc (with its DICOMweb plugin) over C-STORE,
 * STOW-RS and a plain upload, then every stored instance read as a viewer reads it
 * (metadata, rendered JPEG and PNG, thumbnail, first frame). Counts crashes, 5xx,
 * hangs, acknowledged-then-lost instances, and every answer by class, per system.
 *
 *   npx tsx bench/hostile-input.ts [--inputs 100000] [--seed 13] [--only tessera,orthanc]
 *       [--concurrency 4] [--timeout-ms 30000] [--workdir DIR] [--keep]
 *
 * The same generator drives tests/hostile (a bounded run in CI).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, killHard, startServerProcess } from '../packages/server/src/__fixtures__/server-process.ts';
import { checkServable, describeFindings, mergeCampaigns, runCampaign, type CampaignReport, type ServabilityReport } from '../tests/hostile/lib/campaign.ts';
import { loadCorpus } from '../tests/hostile/lib/dicom-mutator.ts';
import { orthancTarget, tesseraTarget, type Target } from '../tests/hostile/lib/targets.ts';
import { startOrthanc } from './lib/orthanc.ts';
import { peakRssMb, rssMb } from './lib/proc.ts';

const { values: args } = parseArgs({
  options: {
    inputs: { type: 'string', default: '100000' },
    seed: { type: 'string', default: '13' },
    only: { type: 'string', default: 'tessera,orthanc' },
    concurrency: { type: 'string', default: '4' },
    'timeout-ms': { type: 'string', default: '30000' },
    workdir: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const inputs = Number(args.inputs);
const seed = Number(args.seed);
const concurrency = Number(args.concurrency);
const timeoutMs = Number(args['timeout-ms']);
const systems = args.only.split(',');
const workdir = args.workdir ?? mkdtempSync(join(tmpdir(), 'tessera-hostile-'));
const corpus = loadCorpus();

interface SystemResult {
  name: string;
  version: string;
  campaign: CampaignReport;
  servable: ServabilityReport | undefined;
  crashes: number;
  peakRssMb: number;
  /** VmRSS when the inputs were sent, and after the reads. */
  rssAfterInputsMb: number;
  rssAfterReadsMb: number;
}

/** A started system under attack. */
interface Running {
  target: Target;
  version: string;
  pid: number | undefined;
  alive: () => boolean;
  stop: () => Promise<void>;
}

function progress(label: string): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (now - last < 1000 && done < total) return;
    last = now;
    const width = 30;
    const filled = Math.round((done / total) * width);
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${done === total ? '\n' : ''}`);
  };
}

/**
 * Sends every input; when the system crashes it is counted, restarted on the same
 * storage, and the run goes on with the next input. Then the reads.
 */
async function attack(start: () => Promise<Running>): Promise<SystemResult> {
  let sys = await start();
  let crashes = 0;
  let peak = 0;
  let campaign: CampaignReport | undefined;
  const notePeak = (): void => {
    peak = Math.max(peak, peakRssMb(sys.pid) || 0);
  };
  while (!campaign || campaign.next < inputs) {
    const part = await runCampaign({ target: sys.target, corpus, seed, inputs, from: campaign?.next ?? 0, concurrency, onProgress: progress(`${sys.target.name}: inputs`), stopAfter: () => !sys.alive() });
    campaign = campaign ? mergeCampaigns(campaign, part) : part;
    notePeak();
    if (sys.alive() && (await sys.target.alive())) continue;
    crashes++;
    process.stderr.write(`\n${sys.target.name} crashed (or stopped answering) near input ${part.next}; restarting it\n`);
    await sys.stop().catch(() => undefined);
    sys = await start();
  }
  const rssAfterInputsMb = rssMb(sys.pid);
  // What was sent is kept whatever the reads come to: a system that dies while being read is restarted and read again.
  writeFileSync(join(workdir, `${sys.target.name}-campaign.json`), JSON.stringify({ ...campaign, acknowledged: campaign.acknowledged.size }, null, 1));
  let servable: ServabilityReport | undefined;
  for (let attempt = 0; attempt < 3 && !servable; attempt++) {
    try {
      servable = await checkServable(sys.target, campaign.acknowledged, { seed, concurrency, onProgress: progress(`${sys.target.name}: reads `) });
    } catch (err) {
      process.stderr.write(`\n${sys.target.name}: reading failed (${(err as Error).message})\n`);
    }
    notePeak();
    if (!sys.alive() || !(await sys.target.alive())) {
      crashes++;
      process.stderr.write(`${sys.target.name} crashed while being read; restarting it\n`);
      await sys.stop().catch(() => undefined);
      sys = await start();
    }
  }
  const rssAfterReadsMb = rssMb(sys.pid);
  await sys.stop().catch(() => undefined);
  return { name: sys.target.name, version: sys.version, campaign, servable, crashes, peakRssMb: peak, rssAfterInputsMb, rssAfterReadsMb };
}

async function runTessera(): Promise<SystemResult> {
  const dicomPort = await freePort();
  const port = await freePort();
  const home = join(workdir, 'tessera');
  return attack(async () => {
    const server = await startServerProcess({ PORT: String(port), TESSERA_HOME: home, DICOM_PORT: String(dicomPort), TESSERA_LOG_LEVEL: 'error', TESSERA_DEFAULT_EXTENSIONS: 'none' });
    const health = (await (await fetch(`${server.url}/api/health`)).json()) as { version?: string };
    return {
      target: tesseraTarget({ baseUrl: server.url, dicomPort, timeoutMs }),
      version: health.version ?? '?',
      pid: server.child.pid,
      alive: () => server.child.exitCode === null && server.child.signalCode === null,
      stop: () => killHard(server),
    };
  });
}

async function runOrthanc(): Promise<SystemResult> {
  const httpPort = await freePort();
  const dicomPort = await freePort();
  return attack(async () => {
    const orthanc = await startOrthanc({ dir: join(workdir, 'orthanc'), httpPort, dicomPort });
    let alive = true;
    const watch = setInterval(() => {
      try {
        if (orthanc.pid !== undefined) process.kill(orthanc.pid, 0);
      } catch {
        alive = false;
      }
    }, 250);
    return {
      target: orthancTarget({ baseUrl: orthanc.url, dicomPort: orthanc.dicomPort, timeoutMs }),
      version: `${orthanc.version} (DICOMweb ${orthanc.dicomWebVersion})`,
      pid: orthanc.pid,
      alive: () => {
        if (orthanc.pid !== undefined) {
          try {
            process.kill(orthanc.pid, 0);
          } catch {
            alive = false;
          }
        }
        return alive;
      },
      stop: async () => {
        clearInterval(watch);
        await orthanc.stop();
      },
    };
  });
}

function sum(record: Record<string, number>): number {
  return Object.values(record).reduce((a, b) => a + b, 0);
}

function histogram(record: Record<string, number>): string {
  return Object.entries(record)
    .sort(([, a], [, b]) => b - a)
    .map(([label, n]) => `${label} ${n}`)
    .join(', ');
}

function report(results: SystemResult[]): string {
  const lines: string[] = [];
  lines.push(`Seed ${seed}, ${inputs.toLocaleString('en')} inputs per system (${corpus.length} corpus files), ${concurrency} clients at once, timeout ${timeoutMs / 1000} s.`);
  lines.push('');
  lines.push('| | ' + results.map((r) => `${r.name} ${r.version}`).join(' | ') + ' |');
  lines.push('|---|' + results.map(() => '---:').join('|') + '|');
  const row = (label: string, f: (r: SystemResult) => string): void => {
    lines.push(`| ${label} | ${results.map(f).join(' | ')} |`);
  };
  row('inputs sent', (r) => r.campaign.inputs.toLocaleString('en'));
  row('seconds (inputs/s)', (r) => `${r.campaign.seconds.toFixed(0)} (${(r.campaign.inputs / r.campaign.seconds).toFixed(0)})`);
  row('crashes (restarted, the run went on)', (r) => (r.crashes ? `**${r.crashes}**` : '0'));
  row('acknowledged as stored', (r) => r.campaign.acknowledged.size.toLocaleString('en'));
  row('5xx, hangs, failed connections, processing-failure statuses (sending)', (r) => String(r.campaign.findings.length));
  row('instances listed afterwards', (r) => (r.servable ? r.servable.instances.toLocaleString('en') : '-'));
  row('reads (metadata, rendered, PNG, frame, thumbnail)', (r) => (r.servable ? r.servable.reads.toLocaleString('en') : '-'));
  row('5xx, hangs, lost or unservable (reading)', (r) => (r.servable ? String(r.servable.findings.length) : '-'));
  row('peak RSS (VmHWM of the last process)', (r) => `${r.peakRssMb.toFixed(0)} MB`);
  row('RSS after the inputs / after the reads', (r) => `${r.rssAfterInputsMb.toFixed(0)} / ${r.rssAfterReadsMb.toFixed(0)} MB`);
  lines.push('');
  for (const r of results) {
    lines.push(`${r.name} answers:`);
    for (const [channel, answers] of Object.entries(r.campaign.answers)) if (sum(answers)) lines.push(`- ${channel}: ${histogram(answers)}`);
    for (const [what, answers] of Object.entries(r.servable?.answers ?? {})) lines.push(`- read ${what}: ${histogram(answers)}`);
    const findings = [...r.campaign.findings, ...(r.servable?.findings ?? [])];
    if (findings.length) lines.push(`- first findings:\n${describeFindings(findings, 10)}`);
    lines.push('');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const results: SystemResult[] = [];
  if (systems.includes('tessera')) results.push(await runTessera());
  if (systems.includes('orthanc')) results.push(await runOrthanc());
  console.log(report(results));
  if (!args.keep && !args.workdir) rmSync(workdir, { recursive: true, force: true });
}

await main();

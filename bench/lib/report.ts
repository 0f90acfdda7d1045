import type { HeapReport } from './heap.ts';
import { median, millis, num, percentile, ratio, seconds } from './stats.ts';
import type { StoreLoad } from './store-load.ts';
import type { Measurement, System } from './systems.ts';
import { taskCount, type Case } from './workloads.ts';

/** Every measurement of the run: case id -> system id -> one entry per repetition. */
export type Results = Map<string, Map<string, Measurement[]>>;

export const GOALS = {
  handoffP50Ms: 1,
  handoffP95Ms: 3,
  /** Tessera's wall time at most this share of the better peer's. */
  peerShare: 0.25,
  /** ... and at most this multiple of the shell loop's. */
  floorMultiple: 1.5,
};

export interface Figures {
  /** Median wall time per system (ms); Tessera's client view under "tessera", its server view under "tessera-server". */
  wall: Map<string, number>;
  runs: Map<string, number>;
  failures: Map<string, string>;
}

export function figures(results: Results, c: Case): Figures {
  const wall = new Map<string, number>();
  const runs = new Map<string, number>();
  const failures = new Map<string, string>();
  for (const [system, list] of results.get(c.id) ?? []) {
    const ok = list.filter((m) => m.ok);
    runs.set(system, ok.length);
    const bad = list.find((m) => !m.ok);
    if (bad) failures.set(system, bad.error ?? 'failed');
    if (ok.length === 0) continue;
    wall.set(system, median(ok.map((m) => m.ms)));
    if (system === 'tessera') wall.set('tessera-server', median(ok.map((m) => m.serverMs ?? Number.NaN)));
  }
  return { wall, runs, failures };
}

function betterPeer(f: Figures): number {
  const peers = ['snakemake', 'cwltool'].map((s) => f.wall.get(s)).filter((v): v is number => v !== undefined);
  return peers.length > 0 ? Math.min(...peers) : Number.NaN;
}

/** Systems that did not run, with why: "not installed", "not run (--only)", ... */
export type Absent = ReadonlyMap<string, string>;

function cell(f: Figures, system: string, absent: Absent): string {
  const why = absent.get(system === 'tessera-server' ? 'tessera' : system);
  if (why) return why;
  const ms = f.wall.get(system);
  const key = system === 'tessera-server' ? 'tessera' : system;
  if (ms === undefined) return f.failures.has(key) ? 'failed' : 'n/a';
  return `${seconds(ms)} s (${f.runs.get(key) ?? 0})`;
}

/** Wall-time table as Markdown: median seconds with the number of runs in parentheses. */
export function wallTable(cases: readonly Case[], results: Results, absent: Absent): string {
  const rows = [
    '| workload | tasks | shell loop (floor) | Tessera, server | Tessera, client | Snakemake | cwltool | Tessera / better peer (server, client) | Tessera / shell (server, client) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const c of cases) {
    const f = figures(results, c);
    const peer = betterPeer(f);
    const shell = f.wall.get('shell') ?? Number.NaN;
    const server = f.wall.get('tessera-server') ?? Number.NaN;
    const client = f.wall.get('tessera') ?? Number.NaN;
    rows.push(
      `| ${describe(c)} | ${taskCount(c)} | ${cell(f, 'shell', absent)} | ${cell(f, 'tessera-server', absent)} | ${cell(f, 'tessera', absent)} | ${cell(f, 'snakemake', absent)} | ${cell(f, 'cwltool', absent)} | ${ratio(server, peer)}, ${ratio(client, peer)} | ${ratio(server, shell)}, ${ratio(client, shell)} |`,
    );
  }
  return rows.join('\n');
}

export function describe(c: Case): string {
  const what = c.shape === 'chain' ? `${c.size}-task chain` : `1 -> ${c.size} -> 1 fan`;
  return c.task === 'stamp' ? `${what} (stamp task)` : what;
}

export interface Handoff {
  gapP50: number;
  gapP95: number;
  p50: number;
  p95: number;
  /** The gap's p95 over the shell loop's own p95: how much a system adds to the tail beyond the machine's. */
  p95OverFloorP95: number;
  gaps: number;
}

/**
 * Hand-off = gap between consecutive task starts minus the shell loop's median
 * gap for the same commands: what remains is the time a system adds between
 * one task's end and the next one's start.
 */
export function handoffs(results: Results, c: Case): Map<string, Handoff> {
  const bySystem = results.get(c.id) ?? new Map<string, Measurement[]>();
  const pooled = (system: string): number[] => (bySystem.get(system) ?? []).filter((m) => m.ok).flatMap((m) => m.gaps ?? []);
  const floor = median(pooled('shell'));
  const floorP95 = percentile(pooled('shell'), 95);
  const out = new Map<string, Handoff>();
  for (const system of bySystem.keys()) {
    const gaps = pooled(system);
    if (gaps.length === 0) continue;
    const gapP50 = percentile(gaps, 50);
    const gapP95 = percentile(gaps, 95);
    out.set(system, { gapP50, gapP95, p50: gapP50 - floor, p95: gapP95 - floor, p95OverFloorP95: gapP95 - floorP95, gaps: gaps.length });
  }
  return out;
}

export function handoffTable(c: Case, results: Results, systems: readonly System[], absent: Absent): string {
  const h = handoffs(results, c);
  const rows = [
    `| system | start-to-start gap p50 | gap p95 | hand-off p50 | hand-off p95 | gap p95 over the floor's p95 | gaps measured |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of systems) {
    const why = absent.get(s.id);
    if (why) {
      rows.push(`| ${s.label} | ${why} | | | | | |`);
      continue;
    }
    const x = h.get(s.id);
    if (!x) {
      rows.push(`| ${s.label} | failed | | | | | |`);
      continue;
    }
    const handoff = s.id === 'shell' ? ['0 (reference)', '—', '—'] : [msText(x.p50), msText(x.p95), msText(x.p95OverFloorP95)];
    rows.push(`| ${s.label} | ${msText(x.gapP50)} | ${msText(x.gapP95)} | ${handoff[0]} | ${handoff[1]} | ${handoff[2]} | ${x.gaps} |`);
  }
  const shell = h.get('shell');
  if (shell) {
    rows.push(
      '',
      `Hand-off p50 and p95 are a system's gap p50 and p95 minus the shell loop's gap p50 (the issue's measure); the shell loop's own gaps spread by ${msText(shell.gapP95 - shell.gapP50)} from p50 to p95 on this machine, which the p95 measure counts against every system. The column before last compares p95 with p95.`,
    );
  }
  return rows.join('\n');
}

/** One line per goal, "met" or "missed" with the factor it is off by. */
export function goalLines(wallCases: readonly Case[], handoffCase: Case | undefined, results: Results): string[] {
  const lines: string[] = [];
  const verdict = (value: number, limit: number, unit: string): string =>
    !Number.isFinite(value) ? 'not measured' : value <= limit ? `met (${fmt(value, unit)} <= ${fmt(limit, unit)})` : `MISSED (${fmt(value, unit)} > ${fmt(limit, unit)}, ${(value / limit).toFixed(1)}x over)`;
  if (handoffCase) {
    const t = handoffs(results, handoffCase).get('tessera');
    lines.push(`- Hand-off p50 <= ${GOALS.handoffP50Ms} ms: ${verdict(t?.p50 ?? Number.NaN, GOALS.handoffP50Ms, 'ms')}`);
    lines.push(`- Hand-off p95 <= ${GOALS.handoffP95Ms} ms: ${verdict(t?.p95 ?? Number.NaN, GOALS.handoffP95Ms, 'ms')}`);
  }
  for (const c of wallCases) {
    const f = figures(results, c);
    const peer = betterPeer(f);
    const shell = f.wall.get('shell') ?? Number.NaN;
    for (const [view, key] of [['server', 'tessera-server'], ['client', 'tessera']] as const) {
      const v = f.wall.get(key) ?? Number.NaN;
      lines.push(`- ${describe(c)}, ${view}: <= 1/4 of the better peer: ${verdict(v / peer, GOALS.peerShare, 'x')}; <= 1.5x the shell loop: ${verdict(v / shell, GOALS.floorMultiple, 'x')}`);
    }
    // 1/4 of the better peer can be close to, or below, what the shell loop takes: say how much room it leaves.
    if (Number.isFinite(peer) && Number.isFinite(shell) && peer * GOALS.peerShare < shell * 1.25) {
      const quarter = peer * GOALS.peerShare;
      const room = quarter < shell ? 'below what starting the processes alone takes here, so no engine can meet it' : `it leaves an engine ${((quarter / shell - 1) * 100).toFixed(0)}% over starting the processes`;
      lines.push(`  (1/4 of the better peer is ${(quarter / 1000).toFixed(2)} s, ${(quarter / shell).toFixed(2)}x the shell loop's ${(shell / 1000).toFixed(2)} s: ${room})`);
    }
  }
  return lines;
}

function msText(v: number): string {
  return Number.isFinite(v) ? `${millis(v)} ms` : 'n/a';
}

function fmt(v: number, unit: string): string {
  return unit === 'x' ? `${v.toFixed(2)}x` : `${v.toFixed(2)} ${unit}`;
}

/** What the Tessera server held during the cases: its heap ballast, its store, its memory. */
export interface ServerState {
  /** --server-heap-mb (0: no ballast). */
  heapMb: number;
  /** --store-instances (0: an empty store). */
  storeInstances: number;
  /** Node's flags that loaded the ballast module. */
  nodeArgs: string[];
  /** The ballast module's report once the server answered (allocation and heap then). */
  ballast?: HeapReport;
  store?: StoreLoad;
  storeError?: string;
  before?: { rssMb: number; heap?: HeapReport };
  after?: { rssMb: number; peakRssMb: number; heap?: HeapReport };
}

const mb = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? `${num(v)} MB` : 'n/a');
const heapText = (h: HeapReport | undefined): string =>
  h ? `V8 heap used ${mb(h.heapUsedMb)} of ${mb(h.heapTotalMb)} allocated (limit ${mb(h.heapLimitMb)})` : 'V8 heap not reported';

/** Lines of the report's "Tessera server during the cases" block. */
export function serverStateLines(s: ServerState): string[] {
  const lines: string[] = [];
  const limit = s.nodeArgs.find((a) => a.startsWith('--max-old-space-size='));
  if (s.heapMb > 0) {
    const b = s.ballast;
    lines.push(
      `- Heap ballast (--server-heap-mb ${s.heapMb}): ${b ? `${num(b.objects)} small live objects, V8's used heap grown by ${mb(b.grownMb)} in ${(b.allocateMs / 1000).toFixed(1)} s as the server started` : 'not reported by the ballast module'}; ${limit ?? 'default heap limit'}`,
    );
  } else lines.push('- Heap ballast: none (--server-heap-mb 0)');
  if (s.store) {
    const t = s.store;
    lines.push(
      `- Store: ${num(t.instances)} instances (${num(t.studies)} studies, ${num(t.series)} series, synthetic instances of ${num(t.bytes / 1024)} KB, 1 study in 5 MR, the others CT) sent by C-STORE (storescu, ${t.associations} associations) in ${(t.loadMs / 1000).toFixed(1)} s (${num(t.perSecond)} instances/s, server CPU ${(t.serverCpuMs / 1000).toFixed(1)} s), counted back over QIDO-RS in ${(t.verifyMs / 1000).toFixed(1)} s; every series complete with its thumbnail ${(t.settleMs / 1000).toFixed(1)} s after the last store; data set ${t.generatedSeconds ? `written in ${t.generatedSeconds.toFixed(1)} s` : 'from the cache'}`,
    );
  } else if (s.storeError) lines.push(`- Store: could not be loaded: ${s.storeError.split('\n')[0]}`);
  else lines.push(`- Store: empty (--store-instances ${s.storeInstances})`);
  if (s.before) lines.push(`- Before the cases: RSS ${mb(s.before.rssMb)} (VmRSS), ${heapText(s.before.heap)}`);
  if (s.after) lines.push(`- After the cases: RSS ${mb(s.after.rssMb)}, ${heapText(s.after.heap)}; peak RSS over the run ${mb(s.after.peakRssMb)} (VmHWM; when the server spawns tasks itself, libuv's fork() costs grow with it)`);
  return lines;
}

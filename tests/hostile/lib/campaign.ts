import { hostileInput, type CorpusFile, type HostileInput } from './dicom-mutator.ts';
import { Prng } from './prng.ts';
import { CHANNELS, type Answer, type Channel, type StoredInstance, type Target } from './targets.ts';

/** One answer worth a look: the server's fault, or an acknowledged instance it cannot serve. */
export interface Finding {
  what: string;
  answer: Answer;
  /** How to make the same input again: the seed and the input's number. */
  input?: { seed: number; id: number; source: string; mutation: string };
}

export interface CampaignReport {
  target: string;
  seed: number;
  inputs: number;
  seconds: number;
  /** The number of the first input not sent (where a run after a crash goes on). */
  next: number;
  /** channel -> answer label -> count */
  answers: Record<Channel, Record<string, number>>;
  acknowledged: Map<string, HostileInput & { channel: Channel }>;
  findings: Finding[];
}

export interface CampaignOptions {
  target: Target;
  corpus: CorpusFile[];
  seed: number;
  inputs: number;
  /** Inputs in flight at once (several clients at a time, as on a real network). */
  concurrency?: number;
  channels?: readonly Channel[];
  onProgress?: (done: number, total: number) => void;
  /** Skip the first inputs (made, not sent): to go on after a crash. */
  from?: number;
  /** Stop early (for a kill in the middle); the report covers what was sent. */
  stopAfter?: () => boolean;
}

const count = (into: Record<string, number>, label: string): void => {
  into[label] = (into[label] ?? 0) + 1;
};

/** Sends `inputs` seeded hostile inputs, round-robin over the channels. */
export async function runCampaign(o: CampaignOptions): Promise<CampaignReport> {
  const channels = o.channels ?? CHANNELS;
  const prng = new Prng(o.seed);
  const report: CampaignReport = {
    target: o.target.name,
    seed: o.seed,
    inputs: 0,
    seconds: 0,
    next: 0,
    answers: { 'c-store': {}, 'stow-rs': {}, upload: {} },
    acknowledged: new Map(),
    findings: [],
  };
  const started = performance.now();
  // The inputs are made one at a time, in order, from one generator (made between two awaits, so
  // that a seed names the same inputs at any concurrency), and only when sent: a long run stays small.
  const uidBase = o.seed * 1_000_000;
  let next = 0;
  for (; next < (o.from ?? 0); next++) hostileInput(o.corpus, prng, next, uidBase);
  const worker = async (): Promise<void> => {
    while (next < o.inputs && !o.stopAfter?.()) {
      const input = hostileInput(o.corpus, prng, next++, uidBase);
      const channel = channels[input.id % channels.length]!;
      const answer = await o.target.send(channel, input);
      report.inputs++;
      count(report.answers[channel], answer.label);
      if (answer.stored) report.acknowledged.set(answer.sop ?? input.sopInstanceUid, { ...input, channel });
      if (answer.fault) {
        report.findings.push({ what: `${channel} of input ${input.id}`, answer, input: { seed: o.seed, id: input.id, source: input.source, mutation: input.mutation } });
      }
      o.onProgress?.(input.id + 1, o.inputs);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 4 }, worker));
  report.seconds = (performance.now() - started) / 1000;
  report.next = next;
  return report;
}

/** Adds a later part of a run (after a restart) to its first part. */
export function mergeCampaigns(a: CampaignReport, b: CampaignReport): CampaignReport {
  const answers = structuredClone(a.answers);
  for (const [channel, labels] of Object.entries(b.answers) as Array<[Channel, Record<string, number>]>) {
    for (const [label, n] of Object.entries(labels)) answers[channel][label] = (answers[channel][label] ?? 0) + n;
  }
  return {
    ...a,
    inputs: a.inputs + b.inputs,
    seconds: a.seconds + b.seconds,
    next: b.next,
    answers,
    acknowledged: new Map([...a.acknowledged, ...b.acknowledged]),
    findings: [...a.findings, ...b.findings],
  };
}

export interface ServabilityReport {
  instances: number;
  reads: number;
  /** read kind -> answer label -> count */
  answers: Record<string, Record<string, number>>;
  findings: Finding[];
  seconds: number;
}

/**
 * What a viewer does next: every instance the server lists is read as metadata,
 * rendered (JPEG and PNG), thumbnailed and its first frame fetched, in a seeded
 * order; every acknowledged instance must be among them and its metadata readable.
 */
export async function checkServable(
  target: Target,
  acknowledged: ReadonlyMap<string, HostileInput & { channel: Channel }>,
  options: { seed: number; concurrency?: number; onProgress?: (done: number, total: number) => void },
): Promise<ServabilityReport> {
  const started = performance.now();
  const listed = await target.instances();
  const report: ServabilityReport = { instances: listed.length, reads: 0, answers: {}, findings: [], seconds: 0 };
  const bySop = new Map<string, StoredInstance>(listed.map((i) => [i.sop, i]));
  for (const [sop, input] of acknowledged) {
    if (!bySop.has(sop)) {
      report.findings.push({
        what: `instance ${sop} was acknowledged over ${input.channel} but is not listed`,
        answer: { label: 'lost', stored: false, fault: true },
        input: { seed: options.seed, id: input.id, source: input.source, mutation: input.mutation },
      });
    }
  }
  const order = new Prng(options.seed ^ 0x5eed).shuffle(listed);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < order.length) {
      const inst = order[next++]!;
      const ack = acknowledged.get(inst.sop);
      for (const [what, answer] of await target.read(inst)) {
        report.reads++;
        count((report.answers[what] ??= {}), answer.label);
        const unservable = what === 'metadata' && ack !== undefined && answer.label !== '200';
        if (answer.fault || unservable) {
          report.findings.push({
            what: `${what} of ${inst.sop}${unservable ? ' (acknowledged, but its metadata cannot be read)' : ''}`,
            answer,
            input: ack ? { seed: options.seed, id: ack.id, source: ack.source, mutation: ack.mutation } : undefined,
          });
        }
      }
      options.onProgress?.(++done, order.length);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/** A short, human-readable list of findings for a failing assertion or a bench log. */
export function describeFindings(findings: Finding[], max = 20): string {
  return findings
    .slice(0, max)
    .map((f) => `- ${f.what}: ${f.answer.label}${f.answer.detail ? ` (${f.answer.detail.slice(0, 200)})` : ''}${f.input ? ` [seed ${f.input.seed} input ${f.input.id}: ${f.input.source}, ${f.input.mutation}]` : ''}`)
    .join('\n');
}

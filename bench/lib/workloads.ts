/**
 * The workloads, written once per system in that system's own idiom (wildcard
 * rules for Snakemake, a scatter for CWL's fan, explicit tasks for Tessera),
 * but always running the very same task command, so that the systems differ
 * only in what they do between tasks.
 */

export interface Case {
  /** Also the Tessera workflow id, so only lower-case letters, digits and "-". */
  id: string;
  shape: 'chain' | 'fan';
  /** Chain: number of tasks. Fan: width of the middle layer (plus a root and a sink). */
  size: number;
  /** touch: `touch <file>`. stamp: `sh -c 'date +%s%N >> <stamps> && touch <file>'`, for hand-off latency. */
  task: 'touch' | 'stamp';
}

export function taskCount(c: Case): number {
  return c.shape === 'chain' ? c.size : c.size + 2;
}

export interface TaskNode {
  name: string;
  upstream: string[];
}

/** Tasks in a topological order; names double as output file names. */
export function taskGraph(c: Case): TaskNode[] {
  if (c.shape === 'chain') {
    return Array.from({ length: c.size }, (_, i) => ({ name: `t${i}`, upstream: i === 0 ? [] : [`t${i - 1}`] }));
  }
  const middle = Array.from({ length: c.size }, (_, i) => ({ name: `m${i}`, upstream: ['root'] }));
  return [{ name: 'root', upstream: [] }, ...middle, { name: 'sink', upstream: middle.map((m) => m.name) }];
}

/** Name of the task that ends the run: its output appearing means the workflow is nearly done. */
export function lastTask(c: Case): string {
  return c.shape === 'chain' ? `t${c.size - 1}` : 'sink';
}

/** Where one system writes for one case. Paths are absolute and free of quotes and spaces. */
export interface CasePaths {
  /** Output files of the tasks. */
  out: string;
  /** Start stamps of the `stamp` tasks, one line per task. */
  stamps: string;
}

/**
 * The shell command line of one task, with `file` the output path as the system
 * spells it. `quote` is how the sh -c script is quoted: the shell loop needs
 * double quotes so that its loop variable expands before sh runs, which leaves
 * the started process exactly the same.
 */
export function shellCommand(c: Case, paths: CasePaths, file: string, quote: "'" | '"' = "'"): string {
  return c.task === 'touch' ? `touch ${file}` : `sh -c ${quote}date +%s%N >> ${paths.stamps} && touch ${file}${quote}`;
}

/** The argv of one task: the same programs as shellCommand, without a shell in front of `touch`. */
export function argv(c: Case, paths: CasePaths, file: string): string[] {
  return c.task === 'touch' ? ['touch', file] : ['sh', '-c', `date +%s%N >> ${paths.stamps} && touch ${file}`];
}

export function assertPlainPath(path: string): void {
  // The paths are pasted into shell, Python and YAML text; refusing odd characters beats quoting each language.
  if (!/^[A-Za-z0-9/._-]+$/.test(path)) throw new Error(`bench: work dir path "${path}" must only hold letters, digits and / . _ -`);
}

// ------------------------------------------------------------------ shell loop (the floor)

/** A POSIX sh script starting the same processes one after another, with no scheduler at all. */
export function shellLoop(c: Case, paths: CasePaths): string {
  const cmd = (name: string): string => shellCommand(c, paths, `${paths.out}/${name}`, '"');
  const loop = (prefix: string, n: number): string[] => [
    'i=0',
    `while [ "$i" -lt ${n} ]; do`,
    `  ${cmd(`${prefix}$i`)}`,
    '  i=$((i + 1))',
    'done',
  ];
  const body = c.shape === 'chain' ? loop('t', c.size) : [cmd('root'), ...loop('m', c.size), cmd('sink')];
  return ['#!/bin/sh', 'set -e', ...body, ''].join('\n');
}

// ------------------------------------------------------------------ Snakemake

export function snakefile(c: Case, paths: CasePaths): string {
  const shell = JSON.stringify(shellCommand(c, paths, '{output}'));
  if (c.shape === 'chain') {
    return [
      `rule all:`,
      `    input: "out/t${c.size - 1}"`,
      ``,
      `rule first:`,
      `    output: "out/t0"`,
      `    shell: ${shell}`,
      ``,
      `rule step:`,
      `    input: lambda w: "out/t{}".format(int(w.i) - 1)`,
      `    output: "out/t{i,[1-9][0-9]*}"`,
      `    shell: ${shell}`,
      ``,
    ].join('\n');
  }
  return [
    `rule all:`,
    `    input: "out/sink"`,
    ``,
    `rule root:`,
    `    output: "out/root"`,
    `    shell: ${shell}`,
    ``,
    `rule middle:`,
    `    input: "out/root"`,
    `    output: "out/m{i,[0-9]+}"`,
    `    shell: ${shell}`,
    ``,
    `rule sink:`,
    `    input: expand("out/m{i}", i=range(${c.size}))`,
    `    output: "out/sink"`,
    `    shell: ${shell}`,
    ``,
  ].join('\n');
}

// ------------------------------------------------------------------ CWL

/** The one CommandLineTool every step runs; `prev` only carries the dependency on the upstream step(s). */
export function cwlTool(c: Case, paths: CasePaths): object {
  const run =
    c.task === 'touch'
      ? { baseCommand: ['touch'], arguments: ['$(inputs.name)'] }
      : { baseCommand: ['sh', '-c'], arguments: [`date +%s%N >> ${paths.stamps} && touch $(inputs.name)`] };
  return {
    cwlVersion: 'v1.2',
    class: 'CommandLineTool',
    ...run,
    inputs: {
      name: { type: 'string' },
      prev: { type: ['null', 'File', { type: 'array', items: 'File' }] },
    },
    outputs: { out: { type: 'File', outputBinding: { glob: '$(inputs.name)' } } },
  };
}

/** The workflow: explicit steps for a chain, a scatter for the fan's middle layer (CWL's way to fan out). */
export function cwlWorkflow(c: Case, toolFile: string): object {
  if (c.shape === 'chain') {
    const steps: Record<string, object> = {};
    for (let i = 0; i < c.size; i++) {
      steps[`s${i}`] = {
        run: toolFile,
        in: { name: { default: `t${i}` }, ...(i > 0 ? { prev: `s${i - 1}/out` } : {}) },
        out: ['out'],
      };
    }
    return {
      cwlVersion: 'v1.2',
      class: 'Workflow',
      inputs: {},
      outputs: { last: { type: 'File', outputSource: `s${c.size - 1}/out` } },
      steps,
    };
  }
  return {
    cwlVersion: 'v1.2',
    class: 'Workflow',
    requirements: { ScatterFeatureRequirement: {} },
    inputs: { names: { type: { type: 'array', items: 'string' }, default: Array.from({ length: c.size }, (_, i) => `m${i}`) } },
    outputs: { last: { type: 'File', outputSource: 'sink/out' } },
    steps: {
      root: { run: toolFile, in: { name: { default: 'root' } }, out: ['out'] },
      middle: { run: toolFile, scatter: 'name', in: { name: 'names', prev: 'root/out' }, out: ['out'] },
      sink: { run: toolFile, in: { name: { default: 'sink' }, prev: 'middle/out' }, out: ['out'] },
    },
  };
}

// ------------------------------------------------------------------ Tessera

export const TESSERA_EXTENSION = 'tessera-bench';

/** A compiled DAG spec (what the SDK would produce), one process task per node. */
export function tesseraSpec(c: Case, paths: CasePaths): object {
  return {
    spec_version: 1,
    id: c.id,
    title: `bench ${c.id}`,
    workflow_form: {},
    data_form: {},
    tasks: taskGraph(c).map((t) => ({
      id: t.name,
      operator: 'noop',
      upstream: t.upstream,
      level: 'batch',
      // Its own, as the SDK gives each task (a task's output dir is emptied before it starts).
      output_dir: t.name,
      process: { command: argv(c, paths, `${paths.out}/${t.name}`) },
    })),
  };
}

export function tesseraManifest(cases: readonly Case[]): object {
  return {
    name: TESSERA_EXTENSION,
    version: '0.1.0',
    kind: 'workflow',
    title: 'Benchmark workloads',
    workflows: cases.map((c) => `workflows/${c.id}.json`),
  };
}

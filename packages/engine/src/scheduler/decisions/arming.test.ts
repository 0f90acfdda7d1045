import { describe, expect, it } from 'vitest';
import { validateDagSpec, type TaskSpec, type TaskState } from '@tessera/model';
import { armable, type ArmingView } from './arming.ts';

type T = Record<string, unknown> & { id: string; state?: TaskState };

/** A run's DAG as arming reads it: the lead `a` is running, the others wait (`scheduled`) unless given a state. */
function run(tasks: T[], identifiers = ['1.2.3']): ArmingView {
  const spec = validateDagSpec({
    spec_version: 1,
    id: 'arming',
    workflow_form: { type: 'object' },
    data_form: { type: 'object' },
    tasks: tasks.map(({ state: _s, ...t }) => ({ operator: t.id, output_dir: t.id, process: { command: ['true'] }, ...t })),
  });
  const specs = new Map<string, TaskSpec>(spec.tasks.map((t) => [t.id, t]));
  const downstream = new Map<string, string[]>(spec.tasks.map((t) => [t.id, []]));
  for (const t of spec.tasks) for (const u of t.upstream) downstream.get(u)!.push(t.id);
  const states = new Map(tasks.map((t) => [t.id, { state: t.state ?? (t.id === 'a' ? 'running' : 'scheduled') }]));
  return { row: { workflow_dir: '/wf' }, identifiers, tasks: states, specs, downstream };
}
const canRun = (): undefined => undefined;

describe('armable: which task may start the moment a running one succeeds (ADR 18)', () => {
  it('the next task of a chain, whatever its trigger rule, once the lead is its last pending upstream', () => {
    expect(armable(run([{ id: 'a' }, { id: 'b', upstream: ['a'] }]), 'a', canRun)).toBe('b');
    expect(armable(run([{ id: 'x', state: 'success' }, { id: 'a' }, { id: 'b', upstream: ['x', 'a'] }]), 'a', canRun)).toBe('b');
    expect(armable(run([{ id: 'x', state: 'failed' }, { id: 'a' }, { id: 'b', upstream: ['x', 'a'], trigger_rule: 'all_done' }]), 'a', canRun)).toBe('b');
  });

  it('nothing while another upstream is still pending, when the lead success would not queue it, or when it can never run', () => {
    expect(armable(run([{ id: 'x', state: 'running' }, { id: 'a' }, { id: 'b', upstream: ['x', 'a'] }]), 'a', canRun)).toBeUndefined();
    // one_success: the lead's success would queue it, but the other upstream's might first.
    expect(armable(run([{ id: 'x', state: 'running' }, { id: 'a' }, { id: 'b', upstream: ['x', 'a'], trigger_rule: 'one_success' }]), 'a', canRun)).toBeUndefined();
    expect(armable(run([{ id: 'x', state: 'failed' }, { id: 'a' }, { id: 'b', upstream: ['x', 'a'], trigger_rule: 'one_success' }]), 'a', canRun)).toBe('b');
    expect(armable(run([{ id: 'a' }, { id: 'b', upstream: ['a'], trigger_rule: 'all_failed' }]), 'a', canRun)).toBeUndefined();
    expect(armable(run([{ id: 'a' }]), 'a', canRun)).toBeUndefined();
    expect(armable(run([{ id: 'a' }, { id: 'b', upstream: ['a'] }]), 'a', () => 'no runner')).toBeUndefined();
  });

  it('nothing for a fan-out: two tasks would take two slots', () => {
    expect(armable(run([{ id: 'a' }, { id: 'b', upstream: ['a'] }, { id: 'c', upstream: ['a'] }]), 'a', canRun)).toBeUndefined();
    // One of them skipped by its rule: only one would start.
    expect(armable(run([{ id: 'a' }, { id: 'b', upstream: ['a'] }, { id: 'c', upstream: ['a'], trigger_rule: 'all_failed' }]), 'a', canRun)).toBe('b');
  });

  it('nothing for a task that needs more RAM or GPU memory than the lead frees, or whose RAM scales with its inputs', () => {
    expect(armable(run([{ id: 'a', resources: { ram_mb: 100 } }, { id: 'b', upstream: ['a'], resources: { ram_mb: 100 } }]), 'a', canRun)).toBe('b');
    expect(armable(run([{ id: 'a', resources: { ram_mb: 100 } }, { id: 'b', upstream: ['a'], resources: { ram_mb: 101 } }]), 'a', canRun)).toBeUndefined();
    expect(armable(run([{ id: 'a' }, { id: 'b', upstream: ['a'], resources: { gpu_mem_mb: 1 } }]), 'a', canRun)).toBeUndefined();
    const scaled = { id: 'b', upstream: ['a'], resources: { ram_mb: 10, ram_scale: [{ source: 'a', factor: 2, mode: 'sum' }] } };
    expect(() => run([{ id: 'a', resources: { ram_mb: 10 } }, scaled])).not.toThrow();
    expect(armable(run([{ id: 'a', resources: { ram_mb: 10 } }, scaled]), 'a', canRun)).toBeUndefined();
  });

  it('nothing when its output dirs, emptied before the lead ends, are a dir the lead reads or writes, or inside one', () => {
    // Its output dir is the lead's output dir.
    expect(armable(run([{ id: 'a', output_dir: 'out', keep_outputs: true }, { id: 'b', upstream: ['a'], output_dir: 'out', keep_outputs: true }]), 'a', canRun)).toBeUndefined();
    // Its output dir is the lead's input dir (per series, and at batch level).
    expect(armable(run([{ id: 'a', input_dir: 'dcm' }, { id: 'b', upstream: ['a'], output_dir: 'dcm' }]), 'a', canRun)).toBeUndefined();
    expect(armable(run([{ id: 'a', input_dir: 'dcm', level: 'batch' }, { id: 'b', upstream: ['a'], output_dir: 'dcm', level: 'batch' }]), 'a', canRun)).toBeUndefined();
    // Apart: a sibling folder of the same series.
    expect(armable(run([{ id: 'a', input_dir: 'dcm' }, { id: 'b', upstream: ['a'], input_dir: 'a' }]), 'a', canRun)).toBe('b');
  });
});
